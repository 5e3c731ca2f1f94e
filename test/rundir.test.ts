/** The out-dir claim (src/train/runDir.ts): reruns refused, one run per folder by a lock, stale locks taken over, checks before any work. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  LOCK_FILE,
  openRunDir,
  pidAlive,
  RunDirError,
  systemRunDirEnv,
  type LockInfo,
  type RunDirEnv,
  type RunDirErrorKind,
  type RunDirOptions,
} from "../src/train/runDir.js";
import { CACHE_DIR_ENV } from "../src/data/index.js";
import { pretrain, PRETRAIN_OUTPUTS } from "../src/train/pretrain.js";
import { DEFAULT_REGIMES, trainRegimes } from "../src/train/regimes.js";
import { tinyConfig } from "./tinyRun.js";

const fresh = (name: string) => mkdtempSync(join(tmpdir(), `rundir-${name}-`));
const pretrainOpts = (resume = ""): RunDirOptions => ({ command: "wgrad pretrain", outputs: PRETRAIN_OUTPUTS, checkpoint: "checkpoint.safetensors", resume });

/** Another process, as far as the lock can tell: its own pid, the same host, every pid in `alive` running. */
function fakeEnv(pid: number, alive: readonly number[] = [], notices: string[] = []): RunDirEnv {
  return {
    pid,
    hostname: "host-a",
    now: () => new Date("2024-05-01T12:00:00Z"),
    isAlive: (p) => alive.includes(p),
    notice: (l) => void notices.push(l),
    onExit: () => () => {},
    held: new Set(),
  };
}

const fails = (f: () => unknown, kind: RunDirErrorKind, ...patterns: (string | RegExp)[]) =>
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof RunDirError, `expected a RunDirError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    for (const p of patterns) {
      if (typeof p === "string") assert.ok(e.message.includes(p), `"${p}" not in: ${e.message}`);
      else assert.match(e.message, p);
    }
    return true;
  });

const lockOf = (dir: string) => JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8")) as LockInfo;

/** A pid that was just alive and is not any more. */
function deadPid(): number {
  const pid = spawnSync(process.execPath, ["-e", ""]).pid;
  assert.ok(pid && !pidAlive(pid));
  return pid;
}

test(
  "a process that has exited but is not reaped yet (a zombie: an orphan killed with SIGKILL waits for init) is not alive",
  { skip: !existsSync("/proc/self/stat") },
  async () => {
    // The background sleep's parent becomes `sleep 3`, which never waits for it: it stays a zombie until then.
    const sh = spawn("sh", ["-c", "sleep 0.05 & echo $!; exec sleep 3"], { stdio: ["ignore", "pipe", "ignore"] });
    const pid = Number(await new Promise<string>((resolve) => sh.stdout.once("data", (d: Buffer) => resolve(d.toString()))));
    try {
      for (let i = 0; i < 100 && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z "); i++) await new Promise((r) => setTimeout(r, 20));
      assert.match(readFileSync(`/proc/${pid}/stat`, "utf8"), /\) Z /);
      assert.ok(!pidAlive(pid));
      assert.ok(pidAlive(sh.pid!));
    } finally {
      sh.kill("SIGKILL");
    }
  },
);

test("a new folder is created and locked; release removes the lock, once", () => {
  const dir = join(fresh("new"), "a", "b");
  const lock = openRunDir(dir, pretrainOpts(), fakeEnv(100));
  assert.deepEqual(lockOf(dir), { pid: 100, hostname: "host-a", startedAt: "2024-05-01T12:00:00.000Z", command: "wgrad pretrain" });
  lock.release();
  lock.release();
  assert.ok(!existsSync(join(dir, LOCK_FILE)));
  // An existing empty folder is fine too.
  openRunDir(dir, pretrainOpts(), fakeEnv(100)).release();
});

test("a rerun into a folder holding a run is refused, naming the folder and the --resume command; the refusal leaves no lock", () => {
  const dir = fresh("used");
  writeFileSync(join(dir, "metrics.jsonl"), "{}\n");
  writeFileSync(join(dir, "checkpoint.safetensors"), "x");
  fails(
    () => openRunDir(dir, pretrainOpts(), fakeEnv(100)),
    "used",
    `--out-dir ${dir} already holds a run (metrics.jsonl, checkpoint.safetensors)`,
    `--resume ${join(dir, "checkpoint.safetensors")}`,
    "another --out-dir",
    `delete ${dir}`,
  );
  assert.ok(!existsSync(join(dir, LOCK_FILE)));
  // Any one output counts; without a checkpoint there is nothing to resume, and no --resume is offered.
  for (const f of ["report.json", "loss.svg", "knn.svg"]) {
    const d = fresh("one");
    writeFileSync(join(d, f), "");
    assert.throws(
      () => openRunDir(d, pretrainOpts(), fakeEnv(100)),
      (e: unknown) => e instanceof RunDirError && e.kind === "used" && e.message.includes(f) && !e.message.includes("--resume"),
    );
  }
  // Files that are not run outputs do not.
  const other = fresh("other");
  writeFileSync(join(other, "notes.txt"), "");
  openRunDir(other, pretrainOpts(), fakeEnv(100)).release();
});

test("--resume into its own folder is allowed and takes the lock; resuming from elsewhere into a used folder is refused", () => {
  const dir = fresh("resume");
  writeFileSync(join(dir, "metrics.jsonl"), "{}\n");
  writeFileSync(join(dir, "checkpoint.safetensors"), "x");
  const lock = openRunDir(`${dir}/`, pretrainOpts(join(dir, ".", "checkpoint.safetensors")), fakeEnv(100));
  assert.equal(lockOf(dir).pid, 100);
  // ...so a second resume of the same run, while this one runs, is refused.
  fails(() => openRunDir(dir, pretrainOpts(join(dir, "checkpoint.safetensors")), fakeEnv(200, [100])), "locked", "pid 100");
  lock.release();
  const elsewhere = join(fresh("elsewhere"), "checkpoint.safetensors");
  fails(() => openRunDir(dir, pretrainOpts(elsewhere), fakeEnv(100)), "used", `--resume ${elsewhere} is not in it`, `--out-dir ${resolve(elsewhere, "..")}`);
  // Into an unused folder, a resume is a new folder's first outputs: allowed.
  openRunDir(fresh("empty"), pretrainOpts(join(dir, "checkpoint.safetensors")), fakeEnv(100)).release();
});

test("two acquisitions of one folder: the second is refused with the holder's pid and host, and succeeds once the first is released", () => {
  const dir = fresh("contend");
  const a = openRunDir(dir, pretrainOpts(), fakeEnv(1001));
  fails(
    () => openRunDir(dir, pretrainOpts(), fakeEnv(1002, [1001])),
    "locked",
    `--out-dir ${dir} is in use by another run: pid 1001 on host host-a (wgrad pretrain, started 2024-05-01T12:00:00.000Z)`,
    "another --out-dir",
    join(dir, LOCK_FILE),
  );
  assert.equal(lockOf(dir).pid, 1001, "the refused run leaves the holder's lock alone");
  a.release();
  const b = openRunDir(dir, pretrainOpts(), fakeEnv(1002, [1001]));
  assert.equal(lockOf(dir).pid, 1002);
  a.release(); // a late release of a lock no longer held removes nothing
  assert.equal(lockOf(dir).pid, 1002);
  b.release();

  // Within one process (this one's pid, its own held-lock set): the same.
  const c = openRunDir(dir, pretrainOpts(), systemRunDirEnv());
  fails(() => openRunDir(dir, pretrainOpts(), systemRunDirEnv()), "locked", `pid ${process.pid}`);
  c.release();
});

test("a stale lock (its pid no longer alive on this host) is taken over with a notice; another host's or an unreadable lock is not", () => {
  const dir = fresh("stale");
  const dead = deadPid();
  writeFileSync(
    join(dir, LOCK_FILE),
    JSON.stringify({ pid: dead, hostname: systemRunDirEnv().hostname, startedAt: "2024-01-01T00:00:00.000Z", command: "wgrad pretrain" }),
  );
  const notices: string[] = [];
  const lock = openRunDir(
    dir,
    pretrainOpts(),
    systemRunDirEnv((l) => void notices.push(l)),
  );
  assert.equal(lockOf(dir).pid, process.pid);
  assert.equal(notices.length, 1);
  assert.match(notices[0], new RegExp(`taking over the lock of pid ${dead} .*no longer running`));
  assert.deepEqual(readdirSync(dir), [LOCK_FILE], "nothing left beside the lock");
  lock.release();

  // A lock naming our own pid that this process does not hold is a previous process's (a restarted container).
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 100, hostname: "host-a", startedAt: "2024-01-01T00:00:00.000Z", command: "wgrad pretrain" }));
  openRunDir(dir, pretrainOpts(), fakeEnv(100)).release();

  // Another host's pids cannot be checked from here: refused, saying which host.
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: dead, hostname: "host-b", startedAt: "2024-01-01T00:00:00.000Z", command: "wgrad pretrain" }));
  fails(() => openRunDir(dir, pretrainOpts(), fakeEnv(100)), "locked", `pid ${dead} on host host-b`, `delete ${join(dir, LOCK_FILE)}`);
  writeFileSync(join(dir, LOCK_FILE), "");
  fails(() => openRunDir(dir, pretrainOpts(), fakeEnv(100)), "locked", "cannot be read", `delete ${join(dir, LOCK_FILE)}`);
});

test("an out-dir that is a file, or under a file (which stops root too), is refused as such", () => {
  const file = join(fresh("file"), "runs");
  writeFileSync(file, "not a folder");
  fails(() => openRunDir(file, pretrainOpts(), fakeEnv(100)), "not-a-folder", `--out-dir ${file} is a file, not a folder`, "another --out-dir");
  fails(
    () => openRunDir(join(file, "sub"), pretrainOpts(), fakeEnv(100)),
    "not-writable",
    `cannot write to --out-dir ${join(file, "sub")}: a part of its path is a file`,
    "--out-dir",
  );
  assert.equal(readFileSync(file, "utf8"), "not a folder");
});

// Real processes: the lock is held across processes, released when one exits (process.exit, an
// uncaught error, Ctrl-C through the CLI's handler), and left stale by SIGKILL, then taken over.
const runDirModule = fileURLToPath(new URL("../src/train/runDir.ts", import.meta.url));
function holder(dir: string, then: string): { child: ChildProcess; ready: Promise<void>; exited: Promise<number | null> } {
  const code = `import { openRunDir, systemRunDirEnv } from ${JSON.stringify(runDirModule)};
    process.on("SIGINT", () => process.exit(130));
    openRunDir(${JSON.stringify(dir)}, { command: "child", outputs: [] }, systemRunDirEnv());
    console.log("ready");
    ${then}`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "pipe"] });
  const ready = new Promise<void>((ok, no) => {
    child.stdout!.on("data", (b: Buffer) => b.toString().includes("ready") && ok());
    child.on("exit", (c) => no(new Error(`child exited (${c}) before taking the lock`)));
  });
  const exited = new Promise<number | null>((ok) => child.on("exit", (c) => ok(c)));
  return { child, ready, exited };
}

test("across processes: a second process is refused with the holder's pid; exit, an error and Ctrl-C release the lock; a SIGKILLed holder's stale lock is taken over", async () => {
  const dir = fresh("procs");
  const wait = "setInterval(() => {}, 1000);";
  const h = holder(dir, wait);
  await h.ready;
  fails(() => openRunDir(dir, pretrainOpts(), systemRunDirEnv()), "locked", `pid ${h.child.pid} on host`);
  h.child.kill("SIGINT");
  assert.equal(await h.exited, 130);
  assert.ok(!existsSync(join(dir, LOCK_FILE)), "released on Ctrl-C");

  for (const [then, code] of [
    ["process.exit(3);", 3],
    ['throw new Error("boom");', 1],
    ["", 0],
  ] as const) {
    const e = holder(dir, then);
    await e.ready;
    assert.equal(await e.exited, code);
    assert.ok(!existsSync(join(dir, LOCK_FILE)), `released after ${then || "a normal exit"}`);
  }

  const k = holder(dir, wait);
  await k.ready;
  k.child.kill("SIGKILL");
  await k.exited;
  assert.equal(lockOf(dir).pid, k.child.pid, "SIGKILL leaves the lock");
  const notices: string[] = [];
  openRunDir(
    dir,
    pretrainOpts(),
    systemRunDirEnv((l) => void notices.push(l)),
  ).release();
  assert.match(notices.join("\n"), new RegExp(`taking over the lock of pid ${k.child.pid}`));
});

// The entry points check first: a used, file or locked out-dir fails before the data are loaded
// (here: an empty dataset cache stays empty, where loading would build it) and nothing is logged.
// Half-epoch warm-ups: 3 of its 6 steps, a whole number.
const tiny = (outDir: string) => tinyConfig({ outDir, epochs: 1, warmupEpochs: 0.5, freezeLastLayer: 0.5, warmupTeacherTempEpochs: 0.5 });

test("pretrain and regimes refuse a used, file or locked out-dir before any work", async () => {
  const cache = fresh("cache");
  const saved = process.env[CACHE_DIR_ENV];
  process.env[CACHE_DIR_ENV] = cache;
  try {
    const used = fresh("pre-used");
    writeFileSync(join(used, "metrics.jsonl"), "{}\n");
    const file = join(fresh("pre-file"), "f");
    writeFileSync(file, "");
    const locked = fresh("pre-locked");
    const holding = openRunDir(locked, pretrainOpts(), systemRunDirEnv());
    const cases: [string, RunDirErrorKind][] = [
      [used, "used"],
      [file, "not-a-folder"],
      [join(file, "sub"), "not-writable"],
      [locked, "locked"],
    ];
    for (const [dir, kind] of cases) {
      const lines: string[] = [];
      const t0 = performance.now();
      await assert.rejects(pretrain(tiny(dir), { log: (l) => void lines.push(l) }), (e: unknown) => e instanceof RunDirError && e.kind === kind);
      assert.ok(performance.now() - t0 < 1000, `pretrain took ${(performance.now() - t0).toFixed(0)} ms to refuse`);
      assert.deepEqual(lines, []);
      const regimeLines: string[] = [];
      await assert.rejects(
        trainRegimes({ ...DEFAULT_REGIMES, backend: "cpu", outDir: dir }, { log: (l) => void regimeLines.push(l) }),
        (e: unknown) => e instanceof RunDirError && e.kind === kind,
      );
      assert.deepEqual(regimeLines, []);
    }
    assert.deepEqual(readdirSync(cache), [], "no dataset was loaded");
    holding.release();
    // regimes' own outputs mark its folder as used.
    const regimesUsed = fresh("reg-used");
    writeFileSync(join(regimesUsed, "regimes.svg"), "");
    await assert.rejects(
      trainRegimes({ ...DEFAULT_REGIMES, backend: "cpu", outDir: regimesUsed }, { log: () => {} }),
      (e: unknown) =>
        e instanceof RunDirError && e.kind === "used" && e.message.includes("wgrad regimes would overwrite it") && !e.message.includes("--resume"),
    );
  } finally {
    if (saved === undefined) delete process.env[CACHE_DIR_ENV];
    else process.env[CACHE_DIR_ENV] = saved;
  }
});

test("a run that fails releases its lock and, having written nothing, leaves the folder free for a rerun", async () => {
  const dir = join(fresh("fail"), "run");
  mkdirSync(dir);
  const boom = {
    log: () => {
      throw new Error("boom");
    },
  };
  await assert.rejects(trainRegimes({ ...DEFAULT_REGIMES, backend: "cpu", outDir: dir }, boom), /boom/);
  assert.deepEqual(readdirSync(dir), []);
  await assert.rejects(pretrain(tiny(dir), boom), /boom/);
  assert.deepEqual(readdirSync(dir), []);
});
