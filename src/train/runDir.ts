/**
 * A run's output folder (`--out-dir`), claimed before any work: a run writes its metrics, plots,
 * report and checkpoint there with plain writes, so a second run into the same folder, whether a
 * rerun later or a concurrent one, would overwrite or interleave them. `openRunDir` refuses both:
 * it checks that the folder can be a run folder (not a file, writable), takes its lock, and
 * refuses a folder that already holds a run's outputs unless the run resumes from that folder's
 * own checkpoint. It never picks another folder by itself: where the outputs go stays the user's
 * choice, and the error says what to pass instead.
 *
 * The process facts (pid, hostname, clock, whether a pid is alive, exit hooks) come in a
 * `RunDirEnv`, so the lock's decisions can be tested without a second process.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, linkSync, statSync, unlinkSync, writeFileSync, type Stats } from "node:fs";
import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { WgradError } from "../dsl/errors.js";

/**
 * What is wrong with the out-dir, for callers that branch on it:
 * - `not-a-folder`: the path is a file;
 * - `not-writable`: the folder or its lock file cannot be created (a part of the path is a file, no permission, read-only disk);
 * - `used`: it holds outputs of an earlier run, which a new run would overwrite;
 * - `locked`: another process holds its lock (a run in progress).
 */
export type RunDirErrorKind = "not-a-folder" | "not-writable" | "used" | "locked";

/** The out-dir cannot be used by this run. The message names the folder and what to do instead. */
export class RunDirError extends WgradError {
  override readonly name = "RunDirError";
  constructor(
    readonly kind: RunDirErrorKind,
    readonly dir: string,
    message: string,
  ) {
    super(message);
  }
}

/** The lock file's name inside the out-dir. */
export const LOCK_FILE = ".lock";

/** What a lock file holds: enough to tell whether its process still runs, and to name it in errors. */
export interface LockInfo {
  readonly pid: number;
  readonly hostname: string;
  /** ISO 8601. */
  readonly startedAt: string;
  readonly command: string;
}

/** The process facts the lock depends on; `systemRunDirEnv()` gives this process's. */
export interface RunDirEnv {
  readonly pid: number;
  readonly hostname: string;
  readonly now: () => Date;
  /** Whether a process of this host with that pid is alive. */
  readonly isAlive: (pid: number) => boolean;
  /** Where a taken-over stale lock is reported. */
  readonly notice: (line: string) => void;
  /** Runs `f` when the process exits (process.exit included); returns the unregistration. */
  readonly onExit: (f: () => void) => () => void;
  /**
   * Lock files this process holds (resolved paths). A lock naming our own pid that is not in this
   * set is a previous process's that happened to have the same pid (a restarted container): stale.
   */
  readonly held: Set<string>;
}

/**
 * `process.kill(pid, 0)` sends nothing and fails with ESRCH when no such process exists; EPERM
 * means it exists under another user, so it counts as alive. A zombie (a process that has exited,
 * killed with SIGKILL say, but whose parent has not reaped it yet: an orphan waits for init) still
 * answers; on Linux its state in /proc says it is gone.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return errorCode(e) !== "ESRCH";
  }
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8"); // "pid (comm) S ...": comm may hold spaces and parentheses
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return false; // no /proc (not Linux), or gone meanwhile: kill(0) has the last word
  }
}

const heldHere = new Set<string>();

export function systemRunDirEnv(notice: (line: string) => void = (l) => console.error(l)): RunDirEnv {
  return {
    pid: process.pid,
    hostname: hostname(),
    now: () => new Date(),
    isAlive: pidAlive,
    notice,
    onExit: (f) => {
      process.on("exit", f);
      return () => void process.off("exit", f);
    },
    held: heldHere,
  };
}

/** A held lock. `release` is idempotent and removes the lock file only while it is still this one. */
export interface RunLock {
  readonly path: string;
  readonly info: LockInfo;
  release(): void;
}

export interface RunDirOptions {
  /** The command, for messages ("wgrad pretrain"). */
  readonly command: string;
  /** The files the run writes in the folder: any of them present means the folder holds a run. */
  readonly outputs: readonly string[];
  /** The output a later run can continue from with --resume (offered in the refusal), if the command has one. */
  readonly checkpoint?: string;
  /** The checkpoint this run resumes from ("" or absent: a new run). */
  readonly resume?: string;
}

/**
 * Claims `dir` for a run, in order: it must be a folder or creatable as one (a file there, or a
 * file along the path, is refused), its lock must be free or stale, and, checked under the lock so
 * two starting runs cannot both see it empty, it must hold no outputs of an earlier run unless this
 * run resumes from a checkpoint in it. Call it before any other work and release the lock when the
 * run ends; the lock is also released if the process exits through `process.exit`.
 */
export function openRunDir(dir: string, options: RunDirOptions, env: RunDirEnv): RunLock {
  prepareOutDir(dir);
  const lock = acquireLock(dir, options.command, env);
  try {
    checkUnused(dir, options);
  } catch (e) {
    lock.release();
    throw e;
  }
  return lock;
}

/**
 * Runs `body` with `dir` claimed (openRunDir) and releases the lock when it ends, however it ends:
 * the shape every command that writes a run folder takes.
 */
export async function inRunDir<T>(dir: string, options: RunDirOptions, env: RunDirEnv, body: () => Promise<T>): Promise<T> {
  const lock = openRunDir(dir, options, env);
  try {
    return await body();
  } finally {
    lock.release();
  }
}

/** The folder exists as a folder afterwards, or a `RunDirError` says why it cannot. */
export function prepareOutDir(dir: string): void {
  let st: Stats | undefined;
  try {
    st = statSync(dir, { throwIfNoEntry: false });
  } catch (e) {
    throw notWritable(dir, e);
  }
  if (st?.isDirectory()) return;
  if (st) throw new RunDirError("not-a-folder", dir, `--out-dir ${dir} is a file, not a folder: pass another --out-dir, or move the file away`);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw notWritable(dir, e);
  }
}

/** Which of `outputs` are present in `dir`. */
export function usedOutputs(dir: string, outputs: readonly string[]): string[] {
  return outputs.filter((f) => existsSync(join(dir, f)));
}

/**
 * Refuses a folder holding an earlier run's outputs: a new run would truncate its metrics and
 * replace its checkpoint. Resuming from a checkpoint in that same folder continues that run, so it
 * is allowed; resuming from elsewhere into it would append to a different run's metrics.
 */
export function checkUnused(dir: string, options: RunDirOptions): void {
  const found = usedOutputs(dir, options.outputs);
  if (!found.length) return;
  const { command, checkpoint, resume } = options;
  if (resume && sameFolder(dirname(resume), dir)) return;
  if (resume)
    throw new RunDirError(
      "used",
      dir,
      `--out-dir ${dir} already holds another run (${found.join(", ")}), and --resume ${resume} is not in it: resuming there would append to that run's metrics and replace its checkpoint. Pass --out-dir ${dirname(resume)} to resume into the checkpoint's own folder, or another --out-dir`,
    );
  const canResume = checkpoint !== undefined && found.includes(checkpoint);
  throw new RunDirError(
    "used",
    dir,
    `--out-dir ${dir} already holds a run (${found.join(", ")}): ${command} would overwrite it. ${canResume ? `To continue that run, pass --resume ${join(dir, checkpoint)}; to start another, pass` : "To start another run, pass"} another --out-dir, or delete ${dir} first`,
  );
}

/**
 * Removes the temp files that a process killed while writing one of `outputs` atomically left in
 * `dir`: `.<output>.<pid>.tmp`, the writers' scheme (src/io/safetensors.ts, src/train/metricsLog.ts),
 * one per kill, a full checkpoint's size each. Call it only while holding the folder's lock: no
 * other process writes there then, so every such file is a leftover. Returns the names removed,
 * each reported through `notice`.
 */
export function removeStaleTemps(dir: string, outputs: readonly string[], notice: (line: string) => void): string[] {
  const escaped = outputs.map((o) => o.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`^\\.(?:${escaped.join("|")})\\.\\d+\\.tmp$`);
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!pattern.test(name)) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch (e) {
      if (errorCode(e) !== "ENOENT") notice(`could not remove ${join(dir, name)}, left by an interrupted write: ${String(e)}; delete it by hand`);
    }
  }
  if (removed.length)
    notice(`${dir}: removed ${removed.length === 1 ? "a temp file" : `${removed.length} temp files`} left by an interrupted run (${removed.join(", ")})`);
  return removed;
}

/**
 * Takes `<dir>/.lock`, created with the `wx` flag (O_CREAT | O_EXCL: exactly one of several
 * processes creates it). A lock left by a process that is gone (same host, pid not alive) is taken
 * over with a notice; one held by a live process, by another host (whose pids cannot be checked
 * from here), or that cannot be read, is refused with what it says.
 */
export function acquireLock(dir: string, command: string, env: RunDirEnv): RunLock {
  const path = join(dir, LOCK_FILE);
  const key = join(realPath(dir), LOCK_FILE);
  const info: LockInfo = { pid: env.pid, hostname: env.hostname, startedAt: env.now().toISOString(), command };
  const content = `${JSON.stringify(info)}\n`;
  // A few rounds: each one either creates the lock, refuses, or removes a stale lock and tries again.
  for (let round = 0; round < 3; round++) {
    if (create(path, content, dir)) return holding(path, key, info, content, env);
    const text = readIfPresent(path);
    if (text === undefined) continue; // released meanwhile
    const other = parseLock(text);
    if (!other || !isStale(other, key, env)) throw lockedError(dir, path, other);
    if (removeStale(path, text, env.pid))
      env.notice(`${dir}: taking over the lock of pid ${other.pid} (${other.command}, started ${other.startedAt}), which is no longer running`);
  }
  throw new RunDirError(
    "locked",
    dir,
    `--out-dir ${dir}: its lock ${path} kept changing while this run tried to take it (several runs starting at once?): pass another --out-dir`,
  );
}

/** A lock is stale when its process is gone: same host, and its pid is not alive (or is ours without our holding it). */
export function isStale(lock: LockInfo, key: string, env: RunDirEnv): boolean {
  if (lock.hostname !== env.hostname) return false;
  if (lock.pid === env.pid) return !env.held.has(key);
  return !env.isAlive(lock.pid);
}

export function parseLock(text: string): LockInfo | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    return Number.isInteger(v.pid) && (v.pid as number) > 0 && typeof v.hostname === "string" && typeof v.startedAt === "string"
      ? { pid: v.pid as number, hostname: v.hostname, startedAt: v.startedAt, command: typeof v.command === "string" ? v.command : "?" }
      : undefined;
  } catch {
    return undefined;
  }
}

/** True when this call created the lock file; false when one exists. */
function create(path: string, content: string, dir: string): boolean {
  try {
    writeFileSync(path, content, { flag: "wx" });
    return true;
  } catch (e) {
    if (errorCode(e) === "EEXIST") return false;
    throw notWritable(dir, e);
  }
}

function holding(path: string, key: string, info: LockInfo, content: string, env: RunDirEnv): RunLock {
  env.held.add(key);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    unregister();
    env.held.delete(key);
    // Only our own lock: after a takeover the file may be another process's.
    try {
      if (readIfPresent(path) === content) unlinkSync(path);
    } catch (e) {
      if (errorCode(e) !== "ENOENT") env.notice(`could not remove the lock ${path}: ${String(e)}; delete it by hand`);
    }
  };
  const unregister = env.onExit(release);
  return { path, info, release };
}

/**
 * Moves the stale lock aside (rename is atomic, so of two processes taking over the same stale
 * lock, one moves it), then checks that what was moved is the stale lock that was read: if another
 * process had already replaced it with its own live lock, that one is put back (link: never over a
 * newer lock). True when the stale lock is gone.
 */
function removeStale(path: string, staleText: string, pid: number): boolean {
  const aside = `${path}.stale-${pid}-${Date.now()}`;
  try {
    renameSync(path, aside);
  } catch (e) {
    if (errorCode(e) === "ENOENT") return false;
    throw e;
  }
  const moved = readIfPresent(aside);
  if (moved !== staleText) {
    try {
      linkSync(aside, path);
    } catch {
      // EEXIST: yet another lock was created meanwhile; it stands.
    }
    unlinkSync(aside);
    return false;
  }
  unlinkSync(aside);
  return true;
}

function lockedError(dir: string, path: string, other: LockInfo | undefined): RunDirError {
  const who = other
    ? `pid ${other.pid} on host ${other.hostname} (${other.command}, started ${other.startedAt})`
    : "a process whose lock cannot be read (being written, or damaged)";
  return new RunDirError(
    "locked",
    dir,
    `--out-dir ${dir} is in use by another run: ${who} holds ${path}. Wait for it to finish or pass another --out-dir; if that process is no longer running, delete ${path}`,
  );
}

function notWritable(dir: string, e: unknown): RunDirError {
  const code = errorCode(e);
  const why = code === "ENOTDIR" ? "a part of its path is a file" : e instanceof Error ? e.message : String(e);
  return new RunDirError("not-writable", dir, `cannot write to --out-dir ${dir}: ${why}. Pass a folder this user can write to as --out-dir`);
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if (errorCode(e) === "ENOENT") return undefined;
    return ""; // not readable as a file (a folder named .lock...): an unreadable lock
  }
}

/** The path with symbolic links resolved where it exists, so one folder has one name. */
function realPath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

function sameFolder(a: string, b: string): boolean {
  return realPath(a) === realPath(b);
}

function errorCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined;
}
