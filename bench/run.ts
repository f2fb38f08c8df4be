/**
 * `make bench`: four measures of shardrun on this machine, each a ratio or a count taken within
 * one run, because the machine is noisy and wall times alone say little. Nothing here passes or
 * fails on time; a bench fails only when shardrun gets something wrong (a run not succeeding, an
 * item missing or doubled in the output).
 *
 *   node dist/bench/run.js [overhead] [resume] [makespan] [gcs]     (default: all four)
 *   BENCH_SCALE=0.5 node dist/bench/run.js                     (scales item counts)
 *
 * Prints a table per bench, then one JSON line with every figure, also written to
 * bench/results/latest.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { ROOT, cleanup, installCleanup, scaled } from "./lib.js";
import { gcsBench, type GcsResult } from "./gcs.js";
import { makespanBench, type MakespanResult } from "./makespan.js";
import { overheadBench, type OverheadResult } from "./overhead.js";
import { resumeBench, type ResumeResult } from "./resume.js";

const BENCHES = ["overhead", "resume", "makespan", "gcs"] as const;
type BenchName = (typeof BENCHES)[number];

function selected(argv: string[]): BenchName[] {
  if (!argv.length) return [...BENCHES];
  for (const a of argv) {
    if (!(BENCHES as readonly string[]).includes(a)) throw new TypeError(`unknown bench "${a}"; expected some of: ${BENCHES.join(", ")}`);
  }
  return BENCHES.filter((b) => argv.includes(b));
}

async function main(): Promise<number> {
  installCleanup();
  const which = selected(process.argv.slice(2));
  scaled(1); // checks BENCH_SCALE before anything starts
  const log = (s: string) => process.stdout.write(s);
  const t0 = performance.now();
  const results: { overhead?: OverheadResult; resume?: ResumeResult; makespan?: MakespanResult; gcs?: GcsResult } = {};
  const errors: Record<string, string> = {};

  log(`shardrun bench: ${which.join(", ")}; BENCH_SCALE=${process.env.BENCH_SCALE ?? "1"}, ${cpus().length} cores, node ${process.version}\n\n`);
  // One after another: they share two cores, and each one's figures assume the machine to itself.
  for (const name of which) {
    try {
      if (name === "overhead") results.overhead = await overheadBench(log);
      if (name === "resume") results.resume = await resumeBench(log);
      if (name === "makespan") results.makespan = await makespanBench(log, results.overhead?.fixedMs);
      if (name === "gcs") results.gcs = await gcsBench(log);
    } catch (e) {
      errors[name] = e instanceof Error ? e.message : String(e);
      log(`(${name}) FAILED: ${errors[name]}\n\n`);
    }
    cleanup(); // stores of a finished bench are not needed, and tmp space is finite
  }

  const summary = {
    bench: "shardrun",
    at: new Date().toISOString(),
    node: process.version,
    cores: cpus().length,
    scale: Number(process.env.BENCH_SCALE ?? "1"),
    totalMs: Math.round(performance.now() - t0),
    headline: {
      ...(results.overhead ? { overheadRatio: results.overhead.ratio, fixedMs: results.overhead.fixedMs, perShardMs: results.overhead.perShardMs } : {}),
      ...(results.resume ? { executionsPerItem: results.resume.ratio, kills: results.resume.kills, outputOk: results.resume.outputOk } : {}),
      ...(results.makespan ? { staticEfficiency: results.makespan.static.efficiency, dynamicEfficiency: results.makespan.dynamic.efficiency } : {}),
      ...(results.gcs?.cases.length ? { peakBucketWritesPerSecond: Math.max(...results.gcs.cases.map((c) => c.peakBucketWritesPerSecond)) } : {}),
    },
    ...results,
    ...(Object.keys(errors).length ? { errors } : {}),
  };
  const line = JSON.stringify(summary);
  const dir = join(ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "latest.json"), line + "\n");
  log(line + "\n");
  const wrong = Object.keys(errors).length > 0 || results.resume?.outputOk === false || (results.gcs?.cases.some((c) => c.state !== "succeeded" || c.tooSoon > 0) ?? false);
  return wrong ? 1 : 0;
}

main().then(
  (code) => {
    cleanup();
    process.exitCode = code;
  },
  (e: unknown) => {
    cleanup();
    // A TypeError here is a bad bench argument or BENCH_SCALE: its message says what to fix.
    const usage = e instanceof TypeError;
    process.stderr.write(`bench: ${e instanceof Error ? (usage ? e.message : (e.stack ?? e.message)) : String(e)}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);
