/**
 * WGSL helper functions that kernels include on demand: the ones WGSL lacks (erf, a pow with
 * NumPy's sign rules, i32 division without UB) and threefry2x32 for counter-based random bits,
 * bit-identical to the CPU backend's.
 */
export const WGSL_HELPERS = {
  // Eigen's float erf (the rational XLA uses too): x·P(x²)/Q(x²) on [-4, 4], within 4e-7 of erf
  // everywhere. Branch-free: the Maclaurin-or-erfc version it replaced diverged within SIMD lanes
  // and made a fused linear + bias + GELU kernel 3 ms slower (13.1 against 9.9 ms on lavapipe).
  // `!(x0 == x0)` keeps NaN (lavapipe folds `x0 != x0` to false).
  erf: /* wgsl */ `
fn erf_(x0: f32) -> f32 {
  let x = clamp(x0, -4.0, 4.0);
  let z = x * x;
  var p = z * -2.72614225801306e-10 + 2.77068142495902e-08;
  p = z * p - 2.10102402082508e-06;
  p = z * p - 5.69250639462346e-05;
  p = z * p - 7.34990630326855e-04;
  p = z * p - 2.95459980854025e-03;
  p = z * p - 1.60960333262415e-02;
  var q = z * -1.45660718464996e-05 - 2.13374055278905e-04;
  q = z * q - 1.68282697438203e-03;
  q = z * q - 7.37332916720468e-03;
  q = z * q - 1.42647390514189e-02;
  return select(x * p / q, x0, !(x0 == x0));
}`,
  pow: /* wgsl */ `
fn pow_(x: f32, y: f32) -> f32 {
  if (x > 0.0) { return pow(x, y); }
  if (y == 0.0) { return 1.0; }
  if (x == 0.0) { return select(f32_bits_(0x7f800000u), 0.0, y > 0.0); }
  if (y != floor(y)) { return f32_bits_(0x7fc00000u); }
  let m = pow(-x, y);
  return select(m, -m, (i32(abs(y)) & 1) == 1);
}`,
  idiv: /* wgsl */ `
fn idiv_(a: i32, b: i32) -> i32 {
  if (b == 0) { return 0; }
  if (b == -1) { return 0 - a; }
  return a / b;
}`,
  // Eigen's float tanh (a 13/6 rational on [-7.9, 7.9]; within 3e-7 of tanh everywhere, relative
  // error under 3e-7). lavapipe's built-in tanh is about twice as slow and loses all relative
  // accuracy near 0 (it returned 3e-8 for tanh(1e-30), and -1 for NaN). Below 4e-4 tanh(x) is x;
  // written `!(abs(x) >= ...)` so that NaN takes that branch and stays NaN.
  tanh: /* wgsl */ `
fn tanh_(x: f32) -> f32 {
  let c = clamp(x, -7.90531110763549805, 7.90531110763549805);
  let z = c * c;
  var p = z * -2.76076847742355e-16 + 2.00018790482477e-13;
  p = z * p - 8.60467152213735e-11;
  p = z * p + 5.12229709037114e-08;
  p = z * p + 1.48572235717979e-05;
  p = z * p + 6.37261928875436e-04;
  p = z * p + 4.89352455891786e-03;
  var q = z * 1.19825839466702e-06 + 1.18534705686654e-04;
  q = z * q + 2.26843463243900e-03;
  q = z * q + 4.89352518554385e-03;
  return select(c * p / q, x, !(abs(x) >= 0.0004));
}`,
  threefry: /* wgsl */ `
fn rotl_(x: u32, r: u32) -> u32 { return (x << r) | (x >> (32u - r)); }
fn threefry_(k0: u32, k1: u32, c0: u32, c1: u32) -> u32 {
  let ks = array<u32, 3>(k0, k1, k0 ^ k1 ^ 0x1bd11bdau);
  var x0 = c0 + ks[0];
  var x1 = c1 + ks[1];
  let r0 = array<u32, 4>(13u, 15u, 26u, 6u);
  let r1 = array<u32, 4>(17u, 29u, 16u, 24u);
  for (var b = 0u; b < 5u; b++) {
    for (var i = 0u; i < 4u; i++) {
      let r = select(r1[i], r0[i], (b & 1u) == 0u);
      x0 = x0 + x1;
      x1 = rotl_(x1, r) ^ x0;
    }
    x0 = x0 + ks[(b + 1u) % 3u];
    x1 = x1 + ks[(b + 2u) % 3u] + b + 1u;
  }
  return x0;
}`,
} as const;

export type WgslHelper = keyof typeof WGSL_HELPERS;

/** The helper literal() uses for values WGSL cannot write as constants (±inf, NaN, subnormals). */
export const F32_BITS = "f32_bits_";
export const F32_BITS_SOURCE = `fn ${F32_BITS}(b: u32) -> f32 { return bitcast<f32>(b); }`;

/** A WGSL literal for a value of `dtype`, exact for f32. */
export function literal(v: number, dtype: "f32" | "i32" | "bool"): string {
  if (dtype === "bool") return v ? "true" : "false";
  if (dtype === "i32") return v === -2147483648 ? "i32(-2147483647 - 1)" : `${v | 0}i`;
  const f = Math.fround(v);
  // WGSL rejects non-finite constant expressions, so these go through a (non-const) function call.
  if (!Number.isFinite(f) || (f !== 0 && Math.abs(f) < 1.1754943508222875e-38)) return `${F32_BITS}(${new Uint32Array(new Float32Array([f]).buffer)[0]}u)`;
  return `${f.toPrecision(9)}f`;
}
