/**
 * A fast 32-bit checksum for cache payloads (≈ 25 ms for Fashion-MNIST's 55 MB). It reads
 * 32-bit words, and each step `h ← mix(h ⊕ word)` is a bijection of h, so changing any single
 * word always changes the result. Not cryptographic: it catches corruption, not tampering.
 */

const PRIME = 0x01000193;

/** Continues the checksum `seed` over `bytes` (chain segments by passing the previous result). */
export function checksum(bytes: Uint8Array, seed = 0x811c9dc5): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const words = bytes.byteLength & ~3;
  let h = seed | 0;
  for (let i = 0; i < words; i += 4) {
    h = Math.imul(h ^ view.getUint32(i, true), PRIME);
    h ^= h >>> 15;
  }
  for (let i = words; i < bytes.byteLength; i++) {
    h = Math.imul(h ^ bytes[i], PRIME);
    h ^= h >>> 15;
  }
  return Math.imul(h ^ bytes.byteLength, PRIME) >>> 0;
}

/** The checksum of several segments read one after another. */
export const checksumAll = (segments: readonly Uint8Array[]): number => segments.reduce((h, s) => checksum(s, h), 0x811c9dc5);
