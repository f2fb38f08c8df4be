/**
 * `make bench`: every row of issue 10's table from one run each, on this machine, with the
 * figure, the ideal or the bare loop beside it, the ratio and a one-line verdict against the
 * goal; then the store's writes per item of those runs, and (d) a run's Cloud Storage load
 * through Cloud Storage's rate limits. Nothing here fails on time: the bench exits non-zero only
 * when shardrun gets something wrong (a run not succeeding, an item missing or doubled).
 *
 *   node dist/bench/run.js [batch] [kill] [makespan] [resume] [fixed] [noop] [memory] [cold] [gcs]
 *   BENCH_SCALE=0.5 node dist/bench/run.js          (scales item counts)
 *
 * Prints the sections as they run, the table, and one JSON line with every figure (also written
 * to bench/results/latest.json).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { batchBench } from "./batch.js";
import { gcsBench } from "./gcs.js";
import { ROOT, cleanup, installCleanup, runJob, scaled, secs, tempStore } from "./lib.js";
import { makespanBench } from "./makespan.js";
import { coldStartBench, memoryBench } from "./memory.js";
import { fixedCostBench, noopBench } from "./overhead.js";
import { resumeBench } from "./resume.js";
import { printRows, printWrites, type Row } from "./rows.js";

type Log = (s: string) => void;
const BENCHES: Record<string, (log: Log) => Promise<{ row?: Row } & Record<string, unknown>>> = {
  batch: (log) => batchBench(log, false),
  kill: (log) => batchBench(log, true),
  makespan: makespanBench,
  resume: resumeBench,
  fixed: fixedCostBench,
  noop: noopBench,
  memory: memoryBench,
  cold: coldStartBench,
  gcs: async (log) => ({ gcs: await gcsBench(log) }),
};

function selected(argv: string[]): string[] {
  const names = Object.keys(BENCHES);
  if (!argv.length) return names;
  for (const a of argv) if (!names.includes(a)) throw new TypeError(`unknown bench "${a}"; expected some of: ${names.join(", ")}`);
  return names.filter((b) => argv.includes(b));
}

/**
 * One small run of each bench job first: builds their bundles and fills Node's compile cache, as
 * any run after a user's first finds them. Without it the first measured run would pay esbuild.
 */
async function warmUp(): Promise<number> {
  const t0 = performance.now();
  for (const job of ["noop", "lognormal"] as const) await runJob({ store: tempStore("warm"), job, args: { count: 2 } });
  return performance.now() - t0;
}

async function main(): Promise<number> {
  installCleanup();
  const which = selected(process.argv.slice(2));
  scaled(1); // checks BENCH_SCALE before anything starts
  const log: Log = (s) => process.stdout.write(s);
  const t0 = performance.now();
  log(`shardrun bench: ${which.join(", ")}; BENCH_SCALE=${process.env.BENCH_SCALE ?? "1"}, ${cpus().length} cores, node ${process.version}\n`);
  log(`warm-up (bundles built, compile cache filled): ${secs(await warmUp())}\n\n`);
  cleanup();
  const rows: Row[] = [];
  const results: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  // One after another: they share two cores, and each one's figures assume the machine to itself.
  for (const name of which) {
    try {
      const r = await BENCHES[name]!(log);
      results[name] = r;
      if (r.row) rows.push(r.row);
    } catch (e) {
      errors[name] = e instanceof Error ? e.message : String(e);
      log(`(${name}) FAILED: ${errors[name]}\n\n`);
    }
    cleanup(); // stores of a finished bench are not needed, and tmp space is finite
  }
  if (rows.length) {
    printRows(log, rows);
    printWrites(log, rows);
  }
  const summary = {
    bench: "shardrun",
    at: new Date().toISOString(),
    node: process.version,
    cores: cpus().length,
    scale: Number(process.env.BENCH_SCALE ?? "1"),
    totalMs: Math.round(performance.now() - t0),
    rows: rows.map(({ writes, ...r }) => ({ ...r, writes: writes?.map((w) => ({ items: w.items, total: w.total, perItem: w.total / Math.max(1, w.items), byKind: w.byKind })) })),
    results,
    ...(Object.keys(errors).length ? { errors } : {}),
  };
  const line = JSON.stringify(summary);
  const dir = join(ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "latest.json"), line + "\n");
  log(`(every figure: bench/results/latest.json; total ${secs(performance.now() - t0)})\n`);
  // Wrong output is a defect; a goal not met is a figure.
  const wrong = Object.keys(errors).length > 0 || rows.some((r) => /Output wrong/.test(r.note));
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
