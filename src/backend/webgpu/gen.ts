/**
 * The WGSL expression generator shared by every kernel template. A kernel computes values of graph
 * nodes at symbolic indices; nodes that are not materialised in a buffer are inlined as
 * expressions, so elementwise chains and movement ops (reshape, permute, broadcast, slice, pad,
 * concat, gather) cost index arithmetic, not memory traffic.
 */
import { sizeOf, stridesOf, type DType, type Shape, type Tensor } from "../../dsl/index.js";
import { literal, WGSL_HELPERS, type WgslHelper } from "./wgslLib.js";

/** WGSL scalar type of a dtype in registers. */
export const regType = (d: DType): string => (d === "f32" ? "f32" : d === "i32" ? "i32" : d === "bool" ? "bool" : unsupported(d));
/** WGSL element type of a dtype in storage (bool is stored as u32 0/1). */
export const storeType = (d: DType): string => (d === "bool" ? "u32" : regType(d));

function unsupported(d: DType): never {
  throw new Error(`webgpu: dtype ${d} is not supported on the GPU; use f32 (f64 exists for CPU gradient checks)`);
}

/**
 * A symbolic index into a tensor of `shape`: a flat row-major offset, per-axis coordinates, or
 * both. The other form is derived on demand (and emitted once as `let`s).
 */
export class Idx {
  constructor(
    readonly shape: Shape,
    public flatExpr: string | null,
    public coordExprs: readonly string[] | null,
    /** The scope depth it was made in: derived forms are cached on it only at that depth. */
    readonly depth = 0,
  ) {}

  get key(): string {
    return this.flatExpr !== null ? `f:${this.flatExpr}` : `c:${this.coordExprs!.join(",")}`;
  }
}

interface Scope {
  lines: string[];
  cache: Map<string, string>;
}

/** Bindings a kernel reads: materialised nodes with their binding number. */
export interface Binding {
  readonly node: Tensor;
  readonly binding: number;
}

export type InlineRule = (node: Tensor, idx: Idx, g: KernelGen) => string;

/**
 * Builds one kernel's body. `val(node, idx)` returns the name of a WGSL value holding `node` at
 * `idx`, reading materialised nodes from their bindings and inlining the rest through `rules`.
 */
export class KernelGen {
  private scopes: Scope[] = [{ lines: [], cache: new Map() }];
  private counter = 0;
  /** Buffers read, in binding order; a node may be bound twice, as scalars and as vec4s. */
  readonly bindings: { node: Tensor; vec4: boolean }[] = [];
  readonly readKeys = new Map<Tensor, Set<string>>();
  readonly helpers = new Set<WgslHelper>();
  /** Values supplied by the template (e.g. a matmul accumulator for its own node at its own index). */
  readonly overrides = new Map<string, string>();
  readonly fused: string[] = [];
  /** Index keys of the elements this kernel's threads store (each thread reads-before-writes only these). */
  readonly storeKeys = new Set<string>();
  /**
   * Flat index expressions that are lanes of a vec4 index (a thread of a four-wide elementwise
   * kernel, or a matmul epilogue storing a vec4 per row): f32 buffers read at them are loaded as
   * one vec4, and the output binding is an array of vec4s.
   */
  readonly vec4Lanes = new Map<string, { vec: string; lane: number }>();
  /**
   * Sizes read at run time from the kernel's uniform (`sizes.<name>`) instead of written into its
   * source, in order of first use: kernels that differ only in these share one pipeline (see
   * `size`). Empty unless a template asks.
   */
  readonly sizes = new Map<string, number>();
  /** How many times per-axis coordinates were derived from a flat index (each a division and remainder per axis). */
  coordsDerived = 0;

  constructor(
    private readonly ids: ReadonlyMap<Tensor, number>,
    private readonly materialized: (n: Tensor) => boolean,
    private readonly rules: (n: Tensor) => InlineRule,
    /**
     * A stored node this kernel reads through its output binding instead of a binding of its own
     * (an in-place update of a donated input); its binding number stays reserved, undeclared.
     */
    readonly alias?: Tensor,
  ) {}

  /**
   * A u32 size of the kernel as WGSL: the literal, or with `runtime` a field of its uniform. On
   * lavapipe every distinct pipeline costs a compile of 0.03-0.8 s at its first dispatch, and a
   * training step's kernels often differ only in sizes (teacher and student crops, forward and
   * backward), so a template that reads them at run time lets those kernels share a pipeline.
   */
  size(name: string, value: number, runtime: boolean): string {
    if (!runtime) return `${value}u`;
    const known = this.sizes.get(name);
    if (known !== undefined && known !== value) throw new Error(`webgpu: internal error: size ${name} is both ${known} and ${value}`);
    this.sizes.set(name, value);
    return `sizes.${name}`;
  }

  fresh(prefix = "v"): string {
    return `${prefix}${this.counter++}`;
  }

  /** Emits a statement into the current scope. */
  line(s: string): void {
    this.scopes[this.scopes.length - 1].lines.push(s);
  }

  /** Emits `let name = expr;` and returns name. */
  let(expr: string, prefix = "v"): string {
    const name = this.fresh(prefix);
    this.line(`let ${name} = ${expr};`);
    return name;
  }

  /** Runs `body` in a nested scope (a loop body) and returns its lines. Values made inside stay inside. */
  nested(body: () => void): string[] {
    this.scopes.push({ lines: [], cache: new Map() });
    body();
    return this.scopes.pop()!.lines;
  }

  /**
   * Runs `lane(j)` for j < k and emits their statements round-robin, each as soon as the values
   * it names exist. Lanes that repeat one computation over different elements then run side by
   * side: lavapipe's LLVM keeps statement order, so a lane after lane emitted whole left a long
   * dependent chain (five tanh in a row) latency-bound, about 2× slower.
   */
  interleaved<T>(k: number, lane: (j: number) => T): T[] {
    const lines = this.scopes[this.scopes.length - 1].lines;
    const start = lines.length;
    const segments: string[][] = [];
    const results = Array.from({ length: k }, (_, j) => {
      const from = lines.length;
      const r = lane(j);
      segments.push(lines.splice(from));
      return r;
    });
    const defined = (l: string) => /^(?:let|var) (\w+)/.exec(l)?.[1];
    const pending = new Set(
      segments
        .flat()
        .map(defined)
        .filter((n) => n !== undefined),
    );
    const ready = (l: string) => !(l.match(/\b[a-z]\w*\b/g) ?? []).some((w) => w !== defined(l) && pending.has(w));
    const heads = segments.map(() => 0);
    while (heads.some((h, j) => h < segments[j].length)) {
      let progressed = false;
      segments.forEach((seg, j) => {
        if (heads[j] < seg.length && ready(seg[heads[j]])) {
          const l = seg[heads[j]++];
          pending.delete(defined(l)!);
          lines.push(l);
          progressed = true;
        }
      });
      // Lane j reads only its own and earlier lanes' values, so lane 0 always progresses.
      if (!progressed) throw new Error("webgpu: internal error: interleaved lanes wait on each other");
    }
    if (lines.length - start !== segments.flat().length) throw new Error("webgpu: internal error: interleaving lost a statement");
    return results;
  }

  body(): string[] {
    return this.scopes[0].lines;
  }

  private lookup(key: string): string | undefined {
    for (let s = this.scopes.length - 1; s >= 0; s--) {
      const v = this.scopes[s].cache.get(key);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  id(n: Tensor): number {
    return this.ids.get(n)!;
  }

  /** The binding number of a materialised node this kernel reads (assigned on first read). */
  bindingOf(n: Tensor, vec4 = false): number {
    let b = this.bindings.findIndex((x) => x.node === n && x.vec4 === vec4);
    if (b < 0) b = this.bindings.push({ node: n, vec4 }) - 1;
    return b;
  }

  /** The WGSL name of the buffer holding materialised `n` (scalars or vec4s): its binding, or `out` for the alias. */
  buffer(n: Tensor, vec4 = false): string {
    const b = this.bindingOf(n, vec4);
    return n === this.alias ? "out" : `in${b}`;
  }

  /** The value of `node` at `idx`. */
  val(node: Tensor, idx: Idx): string {
    const key = `${this.id(node)}|${idx.key}`;
    const o = this.overrides.get(key);
    if (o !== undefined) return o;
    if (node.prim === "constant" && node.size === 1) return literal((node.params as { data: ArrayLike<number> }).data[0], node.dtype as "f32");
    const hit = this.lookup(key);
    if (hit !== undefined) return hit;
    let expr: string;
    if (this.materialized(node)) {
      if (!this.readKeys.has(node)) this.readKeys.set(node, new Set());
      this.readKeys.get(node)!.add(idx.key);
      const flat = this.flat(idx);
      const lane = node.dtype === "f32" ? this.vec4Lanes.get(flat) : undefined;
      if (lane) expr = `${this.vec4Load(node, lane.vec)}[${lane.lane}]`;
      else {
        // Read through a scalar binding: never rewritten to read through the vec4 output binding.
        if (this.vec4Lanes.size) this.readKeys.get(node)!.add("scalar");
        const load = `${this.buffer(node)}[${flat}]`;
        expr = node.dtype === "bool" ? `(${load} != 0u)` : load;
      }
    } else {
      if (!this.fused.includes(node.prim)) this.fused.push(node.prim);
      expr = this.rules(node)(node, idx, this);
    }
    const name = this.fresh();
    this.line(`let ${name}: ${regType(node.dtype)} = ${expr};`);
    this.scopes[this.scopes.length - 1].cache.set(key, name);
    return name;
  }

  /** The vec4 of materialised `node` at vec4 index `vec`, loaded once. */
  private vec4Load(node: Tensor, vec: string): string {
    const key = `${this.id(node)}|v:${vec}`;
    const hit = this.lookup(key);
    if (hit !== undefined) return hit;
    const name = this.let(`${this.buffer(node, true)}[${vec}]`, "q");
    this.scopes[this.scopes.length - 1].cache.set(key, name);
    return name;
  }

  useHelper(h: WgslHelper): void {
    this.helpers.add(h);
  }

  helperSource(): string {
    return [...this.helpers].map((h) => WGSL_HELPERS[h]).join("\n");
  }

  // ---------------------------------------------------------------- index arithmetic

  get depth(): number {
    return this.scopes.length - 1;
  }

  /** An index made in the current scope. */
  idx(shape: Shape, flat: string | null, coords: readonly string[] | null): Idx {
    return new Idx(shape, flat, coords, this.depth);
  }

  /** Flat offset of an index (row-major over its shape). */
  flat(idx: Idx): string {
    if (idx.flatExpr !== null) return idx.flatExpr;
    const s = stridesOf(idx.shape);
    const terms = idx.coordExprs!.flatMap((c, k) => (idx.shape[k] === 1 || c === "0u" ? [] : [s[k] === 1 ? c : `${c} * ${s[k]}u`]));
    const f = terms.length === 0 ? "0u" : terms.length === 1 && /^[\w]+$/.test(terms[0]) ? terms[0] : this.let(terms.join(" + "), "ix");
    if (idx.depth === this.depth) idx.flatExpr = f;
    return f;
  }

  /** Per-axis coordinates of an index. */
  coords(idx: Idx): readonly string[] {
    if (idx.coordExprs !== null) return idx.coordExprs;
    this.coordsDerived++;
    const s = stridesOf(idx.shape);
    const f = idx.flatExpr!;
    const c = idx.shape.map((d, k) => {
      if (d === 1) return "0u";
      const q = s[k] === 1 ? f : `(${f} / ${s[k]}u)`;
      return this.let(k === 0 ? q : `${q} % ${d}u`, "c");
    });
    if (idx.depth === this.depth) idx.coordExprs = c;
    return c;
  }

  /** The index into an operand of shape `from` that `idx` (over the broadcast shape) reads. */
  broadcastIdx(idx: Idx, from: Shape): Idx {
    const to = idx.shape;
    if (from.length === to.length && from.every((d, i) => d === to[i])) return idx;
    if (sizeOf(from) === 1)
      return this.idx(
        from,
        "0u",
        from.map(() => "0u"),
      );
    const c = this.coords(idx);
    const lead = to.length - from.length;
    return this.idx(
      from,
      null,
      from.map((d, i) => (d === 1 ? "0u" : c[lead + i])),
    );
  }
}

/** The WGSL declaration of a storage binding. */
export const bindingDecl = (binding: number, name: string, dtype: DType, access: "read" | "read_write") =>
  `@group(0) @binding(${binding}) var<storage, ${access}> ${name}: array<${storeType(dtype)}>;`;

/** Converts a register value to its storage representation. */
export const toStore = (v: string, d: DType): string => (d === "bool" ? `select(0u, 1u, ${v})` : v);
