/** Element types. `f64` exists for CPU reference evaluation (gradient checks); WebGPU runs f32. */
export type DType = "f32" | "f64" | "i32" | "bool";

/** Every dtype, in a fixed order: f32, f64, i32, bool (for iterating over them, or checking a name). */
export const DTYPES: readonly DType[] = ["f32", "f64", "i32", "bool"];

/** Host storage for one dtype. Booleans are stored as 0/1 bytes. */
export type HostData = Float32Array | Float64Array | Int32Array | Uint8Array;

/** True for the float dtypes (f32, f64); a type guard. */
export const isFloat = (d: DType): d is "f32" | "f64" => d === "f32" || d === "f64";

/** A fresh zeroed array of `n` elements for `dtype`. */
export function allocate(dtype: DType, n: number): HostData {
  switch (dtype) {
    case "f32":
      return new Float32Array(n);
    case "f64":
      return new Float64Array(n);
    case "i32":
      return new Int32Array(n);
    case "bool":
      return new Uint8Array(n);
    default:
      return dtype satisfies never;
  }
}

/** Rounds a JS number to what `dtype` can hold (booleans become 0/1, ints truncate). */
export function coerce(dtype: DType, v: number): number {
  switch (dtype) {
    case "f32":
      return Math.fround(v);
    case "f64":
      return v;
    case "i32":
      return v | 0;
    case "bool":
      return v !== 0 ? 1 : 0;
    default:
      return dtype satisfies never;
  }
}

/** The dtype a host array holds. */
export function dtypeOfData(data: HostData): DType {
  if (data instanceof Float32Array) return "f32";
  if (data instanceof Float64Array) return "f64";
  if (data instanceof Int32Array) return "i32";
  return "bool";
}
