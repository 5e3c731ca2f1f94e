/**
 * The WebGPU peers, measured in the same process on the same Dawn adapter: @jax-js/jax (webgpu
 * device, under jit) and @tensorflow/tfjs-backend-webgpu. Both expect a browser's navigator.gpu;
 * Dawn's instance stands in for it (and is kept referenced, as Dawn requires).
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- the peers' APIs are used untyped here */

let dawn: unknown;

async function installNavigator(): Promise<void> {
  if (dawn) return;
  const { create, globals } = await import("webgpu");
  Object.assign(globalThis, globals);
  dawn = create([]);
  Object.defineProperty(globalThis, "navigator", { value: { gpu: dawn, userAgent: "node" }, configurable: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timeIt(run: () => Promise<void>, reps: number): Promise<number> {
  await run();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

/** Milliseconds per n³ matmul for each peer (null where the peer failed to run). */
export async function peerMatmul(n: number, reps: number): Promise<{ jax: number | null; tfjs: number | null; notes: string[] }> {
  await installNavigator();
  const notes: string[] = [];
  let jaxMs: number | null = null;
  let tfMs: number | null = null;
  try {
    const jax: any = await import("@jax-js/jax");
    await jax.init("webgpu");
    jax.defaultDevice("webgpu");
    const np = jax.numpy;
    const f = jax.jit((a: any, b: any) => np.matmul(a, b));
    const a = np.ones([n, n]);
    const b = np.ones([n, n]);
    jaxMs = await timeIt(async () => {
      const c = f(a.ref, b.ref);
      await jax.blockUntilReady(c);
      c.dispose();
    }, reps);
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
    tfMs = await timeIt(async () => {
      const c = tf.matMul(a, b);
      await c.data();
      c.dispose();
    }, reps);
  } catch (e) {
    notes.push(`tfjs: ${String(e).slice(0, 120)}`);
  }
  return { jax: jaxMs, tfjs: tfMs, notes };
}
