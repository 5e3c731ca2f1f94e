/**
 * The WebGPU peers, measured in the same process on the same Dawn adapter: @jax-js/jax (webgpu
 * device, under jit) and @tensorflow/tfjs-backend-webgpu. Both expect a browser's navigator.gpu;
 * Dawn's instance stands in for it (and is kept referenced, as Dawn requires).
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- the peers' APIs are used untyped here */

let dawn: unknown;

/** Installs Dawn's globals and a navigator whose gpu is Dawn's instance (once per process). */
export async function installNavigator(): Promise<void> {
  if (dawn) return;
  const { create, globals } = await import("webgpu");
  Object.assign(globalThis, globals);
  dawn = create([]);
  Object.defineProperty(globalThis, "navigator", { value: { gpu: dawn, userAgent: "node" }, configurable: true });
}

/** One n³ matmul, awaited until its result is ready. */
export type MatmulRunner = () => Promise<void>;

/**
 * A runner per peer for an n³ matmul (null where the peer failed to load), so that the caller can
 * time ours and the peers interleaved, under the same load.
 */
export async function peerMatmulRunners(n: number): Promise<{ jax: MatmulRunner | null; tfjs: MatmulRunner | null; notes: string[] }> {
  await installNavigator();
  const notes: string[] = [];
  let jax: MatmulRunner | null = null;
  let tfjs: MatmulRunner | null = null;
  try {
    const j: any = await import("@jax-js/jax");
    await j.init("webgpu");
    j.defaultDevice("webgpu");
    const np = j.numpy;
    const f = j.jit((a: any, b: any) => np.matmul(a, b));
    const a = np.ones([n, n]);
    const b = np.ones([n, n]);
    jax = async () => {
      const c = f(a.ref, b.ref);
      await j.blockUntilReady(c);
      c.dispose();
    };
  } catch (e) {
    notes.push(`jax-js: ${String(e).slice(0, 120)}`);
  }
  try {
    const tf: any = await import("@tensorflow/tfjs");
    await import("@tensorflow/tfjs-backend-webgpu");
    await tf.setBackend("webgpu");
    await tf.ready();
    const a = tf.ones([n, n]);
    const b = tf.ones([n, n]);
    tfjs = async () => {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
    };
  } catch (e) {
    notes.push(`tfjs: ${String(e).slice(0, 120)}`);
  }
  return { jax, tfjs, notes };
}
