/**
 * Scores for discrete tokens against known truth: normalised mutual information between two
 * labelings, and the area under the ROC curve of anomaly scores.
 */

/**
 * NMI(a, b) = I(a; b) / √(H(a)·H(b)) (the geometric normalisation; 1 when one labeling determines
 * the other up to renaming, 0 when independent). Label values may be any integers.
 */
export function normalizedMutualInformation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`normalizedMutualInformation: ${a.length} labels against ${b.length}`);
  const n = a.length;
  const joint = new Map<string, number>();
  const ca = new Map<number, number>();
  const cb = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    joint.set(`${a[i]},${b[i]}`, (joint.get(`${a[i]},${b[i]}`) ?? 0) + 1);
    ca.set(a[i], (ca.get(a[i]) ?? 0) + 1);
    cb.set(b[i], (cb.get(b[i]) ?? 0) + 1);
  }
  const entropy = (c: Map<number, number>) => [...c.values()].reduce((h, k) => h - (k / n) * Math.log(k / n), 0);
  let mi = 0;
  for (const [key, k] of joint) {
    const [x, y] = key.split(",").map(Number);
    mi += (k / n) * Math.log((k * n) / (ca.get(x)! * cb.get(y)!));
  }
  const ha = entropy(ca);
  const hb = entropy(cb);
  return ha === 0 || hb === 0 ? (ha === hb ? 1 : 0) : Math.max(0, mi / Math.sqrt(ha * hb));
}

/**
 * ROC AUC of `scores` (higher = more anomalous) against binary `labels`: the probability that a
 * random positive outscores a random negative, ties counting half (Mann–Whitney U).
 */
export function auroc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (scores.length !== labels.length) throw new RangeError(`auroc: ${scores.length} scores against ${labels.length} labels`);
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((i, j) => scores[i] - scores[j]);
  let positives = 0;
  let rankSum = 0;
  for (let s = 0; s < order.length;) {
    let e = s;
    while (e + 1 < order.length && scores[order[e + 1]] === scores[order[s]]) e++;
    const midRank = (s + e) / 2 + 1; // ranks are 1-based; ties share their mean rank
    for (let k = s; k <= e; k++)
      if (labels[order[k]]) {
        positives++;
        rankSum += midRank;
      }
    s = e + 1;
  }
  const negatives = scores.length - positives;
  if (positives === 0 || negatives === 0) throw new RangeError("auroc: needs at least one positive and one negative label");
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}
