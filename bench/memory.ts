/**
 * Issue 10, rows 7 and 8, both read through the probe (bench/probe.ts, preloaded into every node
 * process of the run):
 *   memory      peak RSS of the task process working one shard of 250,000 no-op items, beside
 *               the same at 25,000 (flat in shard size means the two are close);
 *   cold start  on a 1,000,000-item run, from a task process's start to its first item's start
 *               (the job's execution log); the run is stopped once every task has started one.
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cleanup, fixed, runCli, runJob, scaled, secs, table, tempStore, JOBS } from "./lib.js";
import { probeEnv, readExecutions, readProbe, storeWrites } from "./observe.js";
import { taskLives } from "./overhead.js";
import type { Row } from "./rows.js";

const MB = 1024;

export async function memoryBench(log: (s: string) => void): Promise<{ row: Row }> {
  const sizes = [scaled(25_000), scaled(250_000)];
  const peaks: { items: number; rssMb: number }[] = [];
  const writes = [];
  for (const n of sizes) {
    const store = tempStore("memory");
    const probe = join(tempStore("memory-probe"), "probe.jsonl");
    const r = await runJob({ store, job: "noop", args: { count: n }, flags: ["--tasks", "1", "--items-per-shard", String(n)], env: probeEnv(probe) });
    if (r.status.state !== "succeeded" || r.status.shards.total !== 1) throw new Error(`memory run ${r.status.runId} ended ${r.status.state} with ${r.status.shards.total} shards`);
    const tasks = taskLives(readProbe(probe));
    if (!tasks.length) throw new Error("the probe recorded no task process");
    peaks.push({ items: n, rssMb: Math.max(...tasks.map((t) => t.maxRssKb)) / MB });
    writes.push({ items: n, ...storeWrites(store) });
  }
  const [small, big] = peaks as [(typeof peaks)[0], (typeof peaks)[0]];
  log("(f) memory: peak RSS of the task process (getrusage) working one shard of no-op items\n");
  log(table(["shard size", "peak RSS"], peaks.map((p) => [p.items, `${fixed(p.rssMb, 0)} MB`])));
  log("\n");
  // Flat: ten times the items costs at most a fifth more memory.
  const flat = big.rssMb <= small.rssMb * 1.2;
  const row: Row = {
    measure: "memory of a task on a 250k-item shard",
    figure: `${fixed(big.rssMb, 0)} MB`,
    beside: `${fixed(small.rssMb, 0)} MB at ${small.items}`,
    ratio: `${fixed(big.rssMb / small.rssMb)}× for 10× items`,
    goal: "≤ 150 MB, flat",
    met: big.rssMb <= 150 && flat,
    note: `peak RSS of the task process over its life (probe at exit); flat = at most 1.2× the peak of a shard a tenth the size.`,
    writes,
  };
  return { row };
}

export async function coldStartBench(log: (s: string) => void): Promise<{ row: Row }> {
  const n = scaled(1_000_000);
  const tasks = 2;
  const store = tempStore("cold");
  const dir = tempStore("cold-probe");
  const probe = join(dir, "probe.jsonl");
  const logFile = join(dir, "executions.log");
  const t0 = Date.now();
  const cli = runCli(["run", JOBS.noop, "--local", "--store", store, "--json", "--tasks", String(tasks), "--arg", `count=${n}`, "--arg", `log=${logFile}`], { env: probeEnv(probe) });
  let firsts: { pid: number; startedAt: number; firstAt: number }[] = [];
  let ended = false;
  void cli.then(() => (ended = true));
  // Until every task has started an item (or the run ended first, which a tiny BENCH_SCALE allows).
  for (;;) {
    await sleep(50);
    const starts = readProbe(probe).filter((r) => r.ev === "start" && r.task !== undefined);
    const firstByPid = new Map<number, number>();
    for (const e of readExecutions(logFile)) if (!firstByPid.has(e.pid)) firstByPid.set(e.pid, e.at);
    firsts = starts.flatMap((s) => (firstByPid.has(s.pid) ? [{ pid: s.pid, startedAt: s.startedAt, firstAt: firstByPid.get(s.pid)! }] : []));
    if (firsts.length >= tasks || ended) break;
    if (Date.now() - t0 > 10 * 60_000) throw new Error("no task started an item within 10 minutes");
  }
  const planMs = Math.min(...firsts.map((f) => f.startedAt)) - t0;
  // Stops the CLI, the supervisor and the tasks (and removes the stores: everything is read).
  cleanup();
  await cli;
  const worst = Math.max(...firsts.map((f) => f.firstAt - f.startedAt));
  log(`(g) task cold start on a ${n}-item run (default sharding), ${tasks} tasks: process start → its first item's start\n`);
  log(table(["task pid", "start → first item"], firsts.map((f) => [f.pid, `${Math.round(f.firstAt - f.startedAt)} ms`])));
  log(`  (CLI start → first task process start, planning included: ${secs(planMs)})\n\n`);
  const row: Row = {
    measure: "task cold start (spawn → first item), 1M-item run",
    figure: `${Math.round(worst)} ms`,
    beside: "-",
    ratio: "-",
    goal: "≤ 200 ms",
    met: worst <= 200,
    note: `from the task process's start (performance.timeOrigin, a few ms after the supervisor's spawn) to its first item's start, the slower of ${tasks} tasks; the run is stopped then.`,
  };
  return { row };
}
