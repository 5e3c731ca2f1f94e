import {
  allocate,
  checkShape,
  coerce,
  describeValue,
  dtypeOfData,
  formatShape,
  sizeOf,
  ArgumentError,
  type DType,
  type HostData,
  type Shape,
} from "../dsl/index.js";

/** Refuses HostTensor data that is not a typed array wgrad stores: a string or null would fail later as a TypeError. */
function checkData(data: unknown): void {
  if (!(data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array || data instanceof Uint8Array))
    throw new ArgumentError(
      "HostTensor",
      `the data must be a Float32Array, Float64Array, Int32Array or Uint8Array, got ${describeValue(data)}; hostTensor(values, shape) converts number lists`,
    );
}

/** fast-check's custom-printing hook (its `fc.toStringMethod` is this registered symbol): no import of fast-check here. */
const FAST_CHECK_TO_STRING: unique symbol = Symbol.for("fast-check/toStringMethod");

/** A tensor's values on the host: a typed array with its shape and dtype (row-major). */
export class HostTensor {
  constructor(
    readonly data: HostData,
    readonly shape: Shape,
    readonly dtype: DType = dtypeOfData(data),
  ) {
    checkData(data);
    checkShape("HostTensor", shape);
    if (data.length !== sizeOf(shape))
      throw new ArgumentError("HostTensor", `${data.length} values do not fill shape ${formatShape(shape)} (${sizeOf(shape)} elements)`);
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** The value of a scalar (or one-element) tensor. */
  item(): number {
    if (this.data.length !== 1) throw new ArgumentError("item", `needs one element, the tensor has ${this.data.length}`);
    return this.data[0];
  }

  /** The values as a nested JS array. */
  toNested(): unknown {
    const go = (axis: number, offset: number): unknown => {
      if (axis === this.shape.length) return this.data[offset];
      const stride = sizeOf(this.shape.slice(axis + 1));
      return Array.from({ length: this.shape[axis] }, (_, i) => go(axis + 1, offset + i * stride));
    };
    return go(0, 0);
  }

  /** The values (the same API as GpuArray's, so that code runs on either backend's results). */
  async toArray(): Promise<HostData> {
    return this.data;
  }

  /** Itself (as GpuArray's `toHost` reads a device array back). */
  async toHost(): Promise<HostTensor> {
    return this;
  }

  /** Nothing to free on the host (GpuArray's frees its buffer); the values stay readable. */
  dispose(): void {}

  toString(): string {
    return `HostTensor<${this.dtype}${formatShape(this.shape)}>`;
  }

  /**
   * How fast-check prints this tensor in a counterexample: up to 64 values as the call that rebuilds
   * it, `hostTensor([...], [2,3], "f64")`; a larger one as its shape, range, mean and first values.
   */
  [FAST_CHECK_TO_STRING](): string {
    const v = Array.from(this.data, (e) => (Object.is(e, -0) ? "-0" : String(e)));
    const shape = formatShape(this.shape);
    if (this.size <= 64) return `hostTensor([${v.join(",")}], ${shape}, "${this.dtype}")`;
    let [min, max, sum] = [Infinity, -Infinity, 0];
    for (const e of this.data) [min, max, sum] = [Math.min(min, e), Math.max(max, e), sum + e];
    const short = (e: number) => String(Number(e.toPrecision(6)));
    return `HostTensor<${this.dtype}${shape}>(${this.size} values in [${short(min)}, ${short(max)}], mean ${short(sum / this.size)}: ${v.slice(0, 8).join(",")},…)`;
  }
}

/** What a run accepts for one argument: a HostTensor, a typed array of the right dtype, or plain numbers. */
export type HostInput = HostTensor | HostData | readonly number[] | number;

export const isHostInput = (x: unknown): x is HostInput =>
  x instanceof HostTensor || ArrayBuffer.isView(x) || typeof x === "number" || (Array.isArray(x) && x.every((v) => typeof v === "number"));

/** Builds a HostTensor from values and a shape, rounding plain numbers to `dtype`. */
export function hostTensor(values: HostData | ArrayLike<number>, shape: Shape, dtype?: DType): HostTensor {
  if (values === null || typeof values !== "object")
    throw new ArgumentError("hostTensor", `the values must be a typed array or a list of numbers, got ${describeValue(values)}`);
  const d = dtype ?? (ArrayBuffer.isView(values) ? dtypeOfData(values as HostData) : "f32");
  if (ArrayBuffer.isView(values) && dtypeOfData(values as HostData) === d) return new HostTensor(values as HostData, shape, d);
  const data = allocate(d, values.length);
  for (let i = 0; i < values.length; i++) data[i] = coerce(d, values[i]);
  return new HostTensor(data, shape, d);
}

/**
 * Checks one run-time argument against what the graph expects and converts plain numbers.
 * `where` names the argument in errors ("argument 0.w").
 */
export function toHostData(x: HostInput, shape: Shape, dtype: DType, where: string): HostData {
  const expect = `${dtype}${formatShape(shape)}`;
  const n = sizeOf(shape);
  if (x instanceof HostTensor) {
    if (x.dtype !== dtype || x.shape.length !== shape.length || x.shape.some((d, i) => d !== shape[i]))
      throw new ArgumentError("run", `${where} expects ${expect}, got ${x.dtype}${formatShape(x.shape)}`);
    return x.data;
  }
  if (typeof x === "number") x = [x];
  if (ArrayBuffer.isView(x)) {
    const got = dtypeOfData(x);
    if (got !== dtype)
      throw new ArgumentError("run", `${where} expects ${expect}, got a ${x.constructor.name} (${got}); pass a ${allocate(dtype, 0).constructor.name}`);
    if (x.length !== n) throw new ArgumentError("run", `${where} expects ${expect} (${n} values), got ${x.length} values`);
    return x;
  }
  if (x.length !== n) throw new ArgumentError("run", `${where} expects ${expect} (${n} values), got ${x.length} values`);
  return hostTensor(x, shape, dtype).data;
}
