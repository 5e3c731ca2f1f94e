/**
 * threefry2x32 with 20 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"), the
 * generator JAX uses. All arithmetic is on uint32 held in JS numbers.
 */
const ROT = [
  [13, 15, 26, 6],
  [17, 29, 16, 24],
] as const;

const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;

/** Writes threefry2x32(key, counter) into `out` (two uint32 words). */
export function threefry2x32(k0: number, k1: number, c0: number, c1: number, out: Uint32Array): void {
  const ks = [k0 >>> 0, k1 >>> 0, (k0 ^ k1 ^ 0x1bd11bda) >>> 0];
  let x0 = (c0 + ks[0]) >>> 0;
  let x1 = (c1 + ks[1]) >>> 0;
  for (let block = 0; block < 5; block++) {
    for (const r of ROT[block % 2]) {
      x0 = (x0 + x1) >>> 0;
      x1 = (rotl(x1, r) ^ x0) >>> 0;
    }
    x0 = (x0 + ks[(block + 1) % 3]) >>> 0;
    x1 = (x1 + ks[(block + 2) % 3] + block + 1) >>> 0;
  }
  out[0] = x0;
  out[1] = x1;
}
