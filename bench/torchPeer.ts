/**
 * PyTorch as a peer in the benchmark (issue 17): a long-lived Python worker (bench/torch/steps.py)
 * that runs the ViT training step of bench/vitStep.ts and the iBOT step at spec §10 of
 * bench/ibotStep.ts, eager fp32, one step per command. Its runners plug into `interleavedMedians`:
 * each writes the command and resolves when the worker's reply line arrives (the worker
 * synchronises CUDA before it replies).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export type TorchDevice = "cpu" | "cuda";

/** What the worker reports about itself (`info`). */
export interface TorchInfo {
  readonly torch: string;
  /** The CPU model or the CUDA device's name. */
  readonly device: string;
  readonly threads: number;
  /** Parameter counts: the ViT step's, the iBOT student's and the teacher's (asserted against ours by the worker). */
  readonly params: { readonly vit: number; readonly ibot: number; readonly ibotTeacher: number };
  /** The BLAS libraries the process loaded (null where it cannot tell). */
  readonly blas: string | null;
  readonly python: string;
  /** How fp32 is enforced (CUDA: TF32 off, and through which API). */
  readonly precision: string;
}

export type TorchStep = "vit" | "ibot";

export interface TorchPeer {
  /**
   * One step each, awaited until the worker replies. A step that fails (the worker raised or
   * died) does not reject, so that the caller's interleaved timing of the other jobs carries on:
   * it sets `error`, and every later call returns at once.
   */
  readonly runners: { readonly vit: () => Promise<void>; readonly ibot: () => Promise<void> };
  /** Why a step failed, once one has (null until then). */
  readonly error: string | null;
  readonly info: TorchInfo;
  /** The worker's own time (ms) and the loss of every step run so far, by step. */
  readonly ms: Record<TorchStep, number[]>;
  readonly losses: Record<TorchStep, number[]>;
  /** Asks the worker to quit (it also quits when stdin closes, e.g. when this process exits). */
  close(): void;
}

export interface TorchPeerOptions {
  /** The Python interpreter (default `python3` on PATH). */
  readonly python?: string;
  /** CPU threads for PyTorch (torch.set_num_threads); absent: PyTorch's default. */
  readonly threads?: number;
  /** The worker script (default bench/torch/steps.py, found from this module's source or dist/ location). */
  readonly script?: string;
  /** How long the worker may take to import PyTorch and build both models (default 180 s). */
  readonly startTimeoutMs?: number;
}

interface Reply {
  readonly ms?: number;
  readonly loss?: number | string;
  readonly error?: string;
  readonly [k: string]: unknown;
}

/** bench/torch/steps.py next to this module (run from source), or from dist/bench/ back to the repository's bench/. */
function findScript(): string | undefined {
  const candidates = ["./torch/steps.py", "../../bench/torch/steps.py"].map((p) => fileURLToPath(new URL(p, import.meta.url)));
  return candidates.find((p) => existsSync(p));
}

const lastLines = (s: string, n = 3) => s.trim().split("\n").slice(-n).join(" | ");

/**
 * Starts the PyTorch worker on `device` and waits for its `info`. Resolves to `{ missing }` (never
 * rejects) when there is no Python, no PyTorch, no CUDA device, or the worker fails to start.
 */
export async function torchPeer(device: TorchDevice, opts: TorchPeerOptions = {}): Promise<TorchPeer | { missing: string }> {
  const python = opts.python || "python3";
  const script = opts.script ?? findScript();
  if (!script || !existsSync(script)) return { missing: `PyTorch worker script not found (${script ?? "bench/torch/steps.py"})` };
  const argv = [script, "--device", device, ...(opts.threads ? ["--threads", String(opts.threads)] : [])];
  const child = spawn(python, argv, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, PYTHONUNBUFFERED: "1" } });

  let stderr = "";
  let ended: string | null = null; // why the worker is gone
  const pending: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  const fail = (why: string) => {
    if (ended) return;
    ended = why;
    for (const p of pending.splice(0)) p.reject(new Error(why));
  };
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => {
    stderr = (stderr + d).slice(-8000);
  });
  child.stdin.on("error", () => {}); // EPIPE once the worker is gone: reported through "close"
  child.on("error", (e: NodeJS.ErrnoException) => fail(e.code === "ENOENT" ? `Python not found: ${python}` : `could not start ${python}: ${e.message}`));
  child.on("close", (code, signal) => fail(`PyTorch worker exited (${signal ?? `code ${code}`})${stderr ? `: ${lastLines(stderr)}` : ""}`));
  createInterface({ input: child.stdout }).on("line", (line) => {
    const p = pending.shift();
    if (!p) return;
    try {
      p.resolve(JSON.parse(line) as Reply);
    } catch {
      p.reject(new Error(`PyTorch worker: not a JSON reply: ${line.slice(0, 200)}`));
    }
  });
  const request = (cmd: string) =>
    new Promise<Reply>((resolve, reject) => {
      if (ended) return reject(new Error(ended));
      pending.push({ resolve, reject });
      child.stdin.write(`${cmd}\n`);
    });
  const close = () => {
    if (ended) return;
    child.stdin.end("quit\n");
    setTimeout(() => child.kill(), 10_000).unref();
  };

  let info: TorchInfo;
  try {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`PyTorch worker did not answer within ${((opts.startTimeoutMs ?? 180_000) / 1000).toFixed(0)} s`)),
        opts.startTimeoutMs ?? 180_000,
      );
    });
    const r = await Promise.race([request("info"), timeout]).finally(() => clearTimeout(timer));
    if (r.error) throw new Error(r.error);
    info = r as unknown as TorchInfo;
  } catch (e) {
    child.kill();
    const msg = e instanceof Error ? e.message : String(e);
    const noTorch = /No module named '?torch'?/.exec(stderr);
    const why = noTorch
      ? `PyTorch not installed: ModuleNotFoundError: ${noTorch[0]} (python: ${python})`
      : /CUDA is not available/.test(stderr)
        ? `PyTorch has no CUDA device: ${lastLines(stderr, 1)} (python: ${python})`
        : msg.includes(python)
          ? msg
          : `${msg} (python: ${python})`;
    return { missing: why };
  }

  const ms: Record<TorchStep, number[]> = { vit: [], ibot: [] };
  const losses: Record<TorchStep, number[]> = { vit: [], ibot: [] };
  let error: string | null = null;
  const runner = (step: TorchStep) => async () => {
    if (error) return;
    try {
      const r = await request(step);
      if (r.error !== undefined || typeof r.ms !== "number") throw new Error(r.error ?? `unexpected reply ${JSON.stringify(r)}`);
      ms[step].push(r.ms);
      losses[step].push(Number(r.loss));
    } catch (e) {
      error = `PyTorch ${step} step failed: ${e instanceof Error ? e.message : String(e)}`;
    }
  };
  return {
    runners: { vit: runner("vit"), ibot: runner("ibot") },
    get error() {
      return error;
    },
    info,
    ms,
    losses,
    close,
  };
}

/** One line about the worker, for a benchmark row's note: version, device, threads, BLAS. */
export const describeTorch = (p: TorchPeer, device: TorchDevice): string =>
  `PyTorch ${p.info.torch} eager fp32 on ${
    device === "cuda"
      ? `${p.info.device} (TF32 off)`
      : `${p.info.device}, ${p.info.threads} threads${
          p.info.blas
            ? `, ${
                p.info.blas
                  .split(", ")
                  .filter((l) => /openblas|mkl|blis/i.test(l))
                  .join(", ") || p.info.blas
              }`
            : ""
        }`
  }`;
