/**
 * Compute pipelines shared by the executables of one device, keyed by their WGSL. A pipeline is
 * kept while an executable uses it, and afterwards among at most `maxIdle` unused ones, the least
 * recently released dropped first: recompiling costs seconds on lavapipe, so a graph compiled
 * again soon (an evaluation each epoch, an autotuner's candidates) should find its pipelines,
 * but a process that compiles thousands of distinct graphs (a sweep over a constant) must not
 * keep every pipeline it ever made; it grew about 0.4 MiB a graph before this bound.
 */
export class PipelineCache {
  private readonly entries = new Map<string, { readonly pipeline: GPUComputePipeline; users: number }>();
  /** Keys of unused pipelines, oldest release first (a Map keeps insertion order). */
  private readonly idle = new Map<string, true>();

  constructor(readonly maxIdle: number) {}

  /** The pipeline for `key`, made by `create` unless cached; the caller releases it once done. */
  acquire(key: string, create: () => GPUComputePipeline): GPUComputePipeline {
    let e = this.entries.get(key);
    if (!e) this.entries.set(key, (e = { pipeline: create(), users: 0 }));
    if (e.users++ === 0) this.idle.delete(key);
    return e.pipeline;
  }

  /** One use of `key` ends; unused pipelines beyond `maxIdle` are dropped for the GC to free. */
  release(key: string): void {
    const e = this.entries.get(key);
    if (!e || e.users === 0) throw new Error(`webgpu: internal error: pipeline released more often than acquired`);
    if (--e.users > 0) return;
    this.idle.set(key, true);
    for (const old of this.idle.keys()) {
      if (this.idle.size <= this.maxIdle) break;
      this.idle.delete(old);
      this.entries.delete(old);
    }
  }

  /** Pipelines held, in use or idle. */
  get size(): number {
    return this.entries.size;
  }
}
