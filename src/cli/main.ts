#!/usr/bin/env node
/**
 * The `wgrad` command line. `wgrad pretrain [--config file.json] [--<field> value ...]` runs iBOT
 * pre-training (fields as in src/train/config.ts, e.g. --epochs 8 --train-subset 20000
 * --backend cpu); bad flags or config fields are reported with their name and stop the run.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import * as E from "fp-ts/lib/Either.js";
import { SingleBar, Presets } from "cli-progress";
import { decodeConfig, DEFAULT_CONFIG, ConfigError } from "../train/config.js";
import { decodeRegimes, DEFAULT_REGIMES, trainRegimes, type PricesRegimesReport, type TokenScores, type UnlabelledTokenScores } from "../train/regimes.js";
import { DataError } from "../data/errors.js";
import { pretrain } from "../train/pretrain.js";
import { evaluateCheckpoint } from "../train/evaluate.js";
import { tokensPicture } from "../train/tokens.js";

const USAGE = `usage: wgrad pretrain [--recipe default|paper] [--config file.json] [--<field> value ...]
       wgrad eval --checkpoint runs/ibot/checkpoint.safetensors [--backend auto|webgpu|cpu] [--knn-bank N] [--knn-queries N]
       wgrad tokens --checkpoint runs/ibot/checkpoint.safetensors [--out tokens.png] [--count 16]
       wgrad regimes [--prices closes.csv] [--config file.json] [--<field> value ...]   (iBOT on a simulated market, or on a CSV with columns date,asset,close; fields below)

pretrain fields (defaults of --recipe default; --recipe paper starts from spec §10 instead): ${fields(DEFAULT_CONFIG)}

regimes fields (defaults): ${fields(DEFAULT_REGIMES)}`;

function fields(defaults: object): string {
  return Object.entries(defaults)
    .map(([k, v]) => `--${kebab(k)} ${JSON.stringify(v)}`)
    .join(" ");
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
function camel(s: string): string {
  return s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** A flag's text as a value: JSON where it parses (numbers, arrays), comma lists as number arrays, else the string. */
function parseValue(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    if (/^-?[\d.e-]+(,-?[\d.e-]+)+$/.test(v)) return v.split(",").map(Number);
    return v;
  }
}

function flagsToConfig(args: readonly string[]): Record<string, unknown> {
  const { tokens } = parseArgs({ args: [...args], strict: false, tokens: true });
  const out: Record<string, unknown> = {};
  const toks = tokens ?? [];
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i];
    if (t.kind === "positional") throw new ConfigError(`unexpected argument "${t.value}"; flags look like --epochs 8`);
    if (t.kind !== "option") continue;
    let value = t.value;
    if (value === undefined) {
      const next = toks[i + 1];
      // A negative number ("--seed -1.5") reaches us as short-option tokens of one argument: take the argument whole.
      const negative = next?.kind === "option" && /^-[\d.]/.test(args[next.index]) ? args[next.index] : undefined;
      if (next?.kind !== "positional" && negative === undefined) throw new ConfigError(`--${t.name} needs a value`);
      value = negative ?? (next as { value: string }).value;
      i++;
      while (negative !== undefined && toks[i + 1]?.index === next!.index) i++;
    }
    out[t.name === "config" || t.name === "checkpoint" ? t.name : camel(t.name)] = t.name === "checkpoint" ? value : parseValue(value);
  }
  return out;
}

/** The flags as config fields, or null after printing what is wrong with them. */
function flagsOrUsage(args: readonly string[]): Record<string, unknown> | null {
  try {
    return flagsToConfig(args);
  } catch (e) {
    console.error(`${String(e)}\n\n${USAGE}`);
    return null;
  }
}

async function evalCommand(rest: readonly string[]): Promise<number> {
  const flags = flagsOrUsage(rest);
  if (!flags) return 2;
  const { checkpoint, ...overrides } = flags;
  if (typeof checkpoint !== "string") {
    console.error(`wgrad eval needs --checkpoint <file.safetensors>\n\n${USAGE}`);
    return 2;
  }
  const unknown = Object.keys(overrides).filter((k) => !["backend", "knnBank", "knnQueries"].includes(k));
  if (unknown.length) {
    console.error(`wgrad eval: unknown flag${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => `--${kebab(k)}`).join(", ")}\n\n${USAGE}`);
    return 2;
  }
  const r = await evaluateCheckpoint(checkpoint, overrides);
  console.log(`teacher after epoch ${r.epoch}, on ${r.queries} TEST images (bank of ${r.bank} TRAIN images):`);
  console.log(`  k-NN (k=20)    ${(100 * r.knn).toFixed(2)}%`);
  console.log(`  linear probe   ${(100 * r.linearProbe).toFixed(2)}%`);
  return 0;
}

async function tokensCommand(rest: readonly string[]): Promise<number> {
  let values: { checkpoint?: string; out?: string; count?: string };
  try {
    ({ values } = parseArgs({
      args: [...rest],
      options: { checkpoint: { type: "string" }, out: { type: "string" }, count: { type: "string" } },
      strict: true,
    }));
  } catch (e) {
    console.error(`${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  if (!values.checkpoint) {
    console.error(`wgrad tokens needs --checkpoint <file.safetensors>\n\n${USAGE}`);
    return 2;
  }
  const count = Number(values.count ?? 16);
  if (!Number.isInteger(count) || count < 1) {
    console.error(`--count must be a positive integer, got ${values.count}`);
    return 2;
  }
  const r = await tokensPicture(values.checkpoint, values.out ?? "tokens.png", count);
  console.log(`${r.path}: ${r.images} TEST images, ${r.distinctTokens} distinct patch tokens`);
  return 0;
}

/**
 * A single number given to a list field (`--vq-codebooks 32`) as the one-element list it means:
 * `32,32` parses as a list, so one size should not be refused where two are taken.
 */
function listsFromNumbers(flags: Record<string, unknown>, defaults: object): Record<string, unknown> {
  const lists = defaults as Record<string, unknown>;
  return Object.fromEntries(Object.entries(flags).map(([k, v]) => [k, Array.isArray(lists[k]) && typeof v === "number" ? [v] : v]));
}

/** A config file (--config) and flags, decoded with `decode`; null after printing what is wrong. */
function configFrom<C>(rest: readonly string[], defaults: object, decode: (...o: Record<string, unknown>[]) => E.Either<ConfigError, C>): C | null {
  const flags = flagsOrUsage(rest);
  if (!flags) return null;
  const overrides = listsFromNumbers(flags, defaults);
  const fileCfg: Record<string, unknown> = {};
  if (typeof overrides.config === "string") {
    try {
      Object.assign(fileCfg, JSON.parse(readFileSync(overrides.config, "utf8")));
    } catch (e) {
      console.error(`could not read config file ${overrides.config}: ${String(e)}`);
      return null;
    }
  }
  delete overrides.config;
  const cfg = decode(fileCfg, overrides);
  if (E.isLeft(cfg)) {
    console.error(cfg.left.message);
    return null;
  }
  return cfg.right;
}

async function regimesCommand(rest: readonly string[]): Promise<number> {
  const c = configFrom(rest, DEFAULT_REGIMES, decodeRegimes);
  if (!c) return 2;
  // Ctrl-C exits through process.exit, whose exit handlers release the out-dir's lock (a signal's default exit runs none).
  process.on("SIGINT", () => process.exit(130));
  const bar = new SingleBar(
    { format: "regimes [{bar}] {percentage}% | step {value}/{total} | loss {loss} | ETA {eta_formatted}", hideCursor: true },
    Presets.shades_classic,
  );
  let started = false;
  let r: Awaited<ReturnType<typeof trainRegimes>>;
  try {
    r = await trainRegimes(c, {
      log: (line) => (started ? process.stderr.write(`\n${line}\n`) : console.log(line)),
      onStep: (step, total, loss) => {
        if (!started) bar.start(total, 0, { loss: "-" });
        started = true;
        bar.update(step + 1, { loss: loss.toFixed(3) });
      },
    });
  } catch (e) {
    // A bad prices file (DataError, naming its line) or one the config does not fit (ConfigError): say so, no stack.
    if (!(e instanceof DataError || e instanceof ConfigError)) throw e;
    if (started) bar.stop();
    console.error(e.message);
    return 2;
  }
  if (started) bar.stop();
  if ("prices" in r) return printPricesReport(r, c.outDir);
  const roc = (v: number) => (Number.isNaN(v) ? "n/a (no jump)" : v.toFixed(3));
  const row = (name: string, s: TokenScores) =>
    console.log(
      `  ${name.padEnd(30)} NMI ${s.nmi.toFixed(3)}   anomaly AUROC ${roc(s.anomalyAuroc)} (token surprise alone ${roc(s.tokenSurpriseAuroc)})   tokens used ${s.tokensUsed}`,
    );
  console.log(`\npatch tokens against the simulator's truth (held-out period of time; anomaly score −log p(returns | masked context)):`);
  row("random-init, training assets", r.baselines.randomInit.train);
  row("random-init, held-out asset", r.baselines.randomInit.heldOut);
  row("trained, training assets", r.train);
  row("trained, held-out asset", r.heldOut);
  console.log(
    `  baselines on raw returns: realised-volatility terciles NMI ${r.baselines.volatilityTerciles.toFixed(3)}, autocorrelation terciles NMI ${r.baselines.autocorrelationTerciles.toFixed(3)}, max |return| anomaly AUROC ${r.baselines.maxAbsReturnAuroc.toFixed(3)}`,
  );
  console.log(`${r.steps} steps in ${r.seconds.toFixed(0)} s on ${r.backend}; ${c.outDir}/report.json, ${c.outDir}/regimes.svg`);
  return 0;
}

/** The table of a prices run: label-free scores only, and why. */
function printPricesReport(r: PricesRegimesReport, outDir: string): number {
  const f = (x: number) => x.toFixed(3);
  const row = (name: string, s: UnlabelledTokenScores) =>
    console.log(
      `  ${name.padEnd(30)} tokens used ${s.tokensUsed}   perplexity ${s.perplexity.toFixed(2)}   NMI with volatility terciles ${f(s.volatilityNmi)}   surprise median ${f(s.surprise.median)}, p90 ${f(s.surprise.p90)}, max ${f(s.surprise.max)}`,
    );
  const p = r.prices;
  console.log(
    `\npatch tokens on ${p.source}, scored over ${p.scoredDates[0]} to ${p.scoredDates[1]} (trained on ${p.trainDates[0]} to ${p.trainDates[1]}, ${p.heldOutAsset} held out):`,
  );
  console.log(`  no true labels: real prices carry no true regimes or injected anomalies, so there is no NMI or AUROC against them`);
  row("random-init, training assets", r.baselines.randomInit.train);
  row("random-init, held-out asset", r.baselines.randomInit.heldOut);
  row("trained, training assets", r.train);
  row("trained, held-out asset", r.heldOut);
  console.log(
    `  most surprising patches: ${r.mostSurprising
      .slice(0, 5)
      .map((q) => `${q.asset} ${q.from} to ${q.to} (${f(q.surprise)})`)
      .join("; ")}`,
  );
  console.log(`${r.steps} steps in ${r.seconds.toFixed(0)} s on ${r.backend}; ${outDir}/report.json, ${outDir}/tokens.csv`);
  return 0;
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  // Help, for the program or any command: the usage (with every field's default) on stdout.
  if (["help", "--help", "-h"].includes(command ?? "") || rest.some((a) => a === "--help" || a === "-h")) {
    console.log(USAGE);
    return 0;
  }
  if (command === "eval") return evalCommand(rest);
  if (command === "tokens") return tokensCommand(rest).catch((e) => (console.error(String(e)), 2));
  if (command === "regimes") return regimesCommand(rest);
  if (command !== "pretrain") {
    console.error(command ? `unknown command "${command}"\n\n${USAGE}` : USAGE);
    return 2;
  }
  const cfg = configFrom(rest, DEFAULT_CONFIG, decodeConfig);
  if (!cfg) return 2;
  const bar = new SingleBar(
    {
      format: "pretrain [{bar}] {percentage}% | step {value}/{total} | loss {loss} (cls {cls}, patch {patch}) | {ips} img/s | ETA {eta_formatted}",
      hideCursor: true,
    },
    Presets.shades_classic,
  );
  let started = false;
  // Ctrl-C: finish the epoch, write its checkpoint, stop; a second Ctrl-C exits at once (the exit releases the out-dir's lock).
  let interrupted = false;
  process.on("SIGINT", () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\ninterrupted: stopping after this epoch's checkpoint; continue with --resume ${cfg.outDir}/checkpoint.safetensors\n`);
  });
  const report = await pretrain(cfg, {
    stopAfterEpoch: () => interrupted,
    log: (line) => (started ? bar.update({}) : undefined, started ? process.stderr.write(`\n${line}\n`) : console.log(line)),
    onStep: (s, total) => {
      if (!started) {
        bar.start(total, 0, { loss: "-", cls: "-", patch: "-", ips: "-" });
        started = true;
      }
      bar.update(s.step + 1, { loss: s.loss.toFixed(3), cls: s.cls.toFixed(3), patch: s.patch.toFixed(3), ips: s.imagesPerSecond.toFixed(1) });
    },
  });
  if (started) bar.stop();
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  console.log(`\nk-NN accuracy on TEST (k=${cfg.knnK}):`);
  console.log(`  raw pixels        ${pct(report.baselines.rawPixels)}`);
  console.log(`  random-init ViT   ${pct(report.baselines.randomInit)}`);
  const gain = (x: number) => `${x >= report.baselines.randomInit ? "+" : ""}${(100 * (x - report.baselines.randomInit)).toFixed(1)}`;
  for (const e of report.evals) {
    const seen = e.images !== undefined ? ` (${e.images.toLocaleString("en")} images)` : "";
    console.log(
      `  epoch ${e.epoch + 1}${seen}: teacher ${pct(e.knnTeacher)} (${gain(e.knnTeacher)}), student ${pct(e.knnStudent)} (${gain(e.knnStudent)}) against random init`,
    );
  }
  const last = report.tokens[report.tokens.length - 1];
  if (last) console.log(`patch tokens in the last epoch: ${last.used[0]}/${last.vocabulary[0]} used, perplexity ${last.perplexity[0].toFixed(1)}`);
  if (report.finalClsLoss !== undefined)
    console.log(`[CLS] loss over the last 10 steps ${report.finalClsLoss.toFixed(2)} (uniform targets: ln K = ${report.lnK.toFixed(2)})`);
  const tm = report.timings;
  const times = tm
    ? ` (compile ${tm.compileSeconds.toFixed(1)} s, first step ${tm.firstStepSeconds.toFixed(1)} s, then ${tm.steadyStepSeconds.toFixed(2)} s a step)`
    : "";
  console.log(`${report.steps} steps in ${report.seconds.toFixed(0)} s${times} on ${report.backend}; metrics in ${cfg.outDir}/metrics.jsonl`);
  if (report.stoppedEarly) {
    console.error(report.stoppedEarly);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    process.exit(1);
  },
);
