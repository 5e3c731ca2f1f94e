/** Scalar special functions on JS numbers, shared by host-side code and the CPU interpreter. */

/**
 * erf to double precision: the all-positive series 2/√π·e^(−x²)·Σ 2ⁿx^(2n+1)/(2n+1)!! below 4
 * (no cancellation), a continued fraction for erfc above.
 */
export function hostErf(x: number): number {
  const t = Math.abs(x);
  if (!(t < 4)) {
    if (t !== t) return NaN;
    let f = 0;
    for (let k = 60; k >= 1; k--) f = k / 2 / (t + f);
    return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f));
  }
  const t2 = 2 * t * t;
  let term = t;
  let s = t;
  for (let n = 1; n < 200; n++) {
    term *= t2 / (2 * n + 1);
    s += term;
    if (term < 1e-17 * s) break;
  }
  return Math.sign(x) * s * Math.exp(-t * t) * (2 / Math.sqrt(Math.PI));
}
