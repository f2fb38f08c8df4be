/**
 * Issue 10, rows 5 and 6: what shardrun costs besides the items' own work, against a bare loop
 * (bench/bare.ts: the same job's items parsed, run, serialized and written, in one fresh node
 * process, spawn to exit).
 *   fixed cost  a 10-item run of no-op items, `shardrun run` spawn → exit: CLI start, plan,
 *               supervisor and task starts, the driver's looks, the finish step;
 *   no-op rate  500,000 no-op items, the job's default sharding, 2 tasks: items per second per
 *               task over the whole run (CLI start → exit), and within the run (first item → last
 *               commit), beside the bare loop's items per second.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { z } from "zod";
import { ROOT, fixed, runJob, scaled, secs, table, tempStore } from "./lib.js";
import { probeEnv, readProbe, storeWrites, type ProbeRecord } from "./observe.js";
import type { Row } from "./rows.js";

const BARE = join(ROOT, "dist", "bench", "bare.js");
const TASKS = 2;

/** The bare loop over `count` items in a fresh process: spawn → exit, and the loop alone. */
export function bareProcess(count: number, dir: string): Promise<{ ms: number; loopMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BARE, String(count), join(dir, `bare-${count}.jsonl`)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`bare loop exited ${code}`));
      const r = z.object({ ms: z.number() }).parse(JSON.parse(out));
      resolve({ ms: performance.now() - t0, loopMs: r.ms });
    });
  });
}

export async function fixedCostBench(log: (s: string) => void): Promise<{ row: Row; cliMs: number; bareMs: number }> {
  const n = 10;
  const store = tempStore("fixed");
  const bare = await bareProcess(n, store);
  const r = await runJob({ store, job: "noop", args: { count: n } });
  if (r.status.state !== "succeeded") throw new Error(`fixed-cost run ${r.status.runId} ended ${r.status.state}`);
  log(`(d) fixed cost: a ${n}-item run of no-op items (1 shard, 1 task), local launcher + fs store\n`);
  log(table(["run", "spawn → exit"], [["shardrun run", secs(r.ms)], ["bare loop (node process)", secs(bare.ms)]]));
  log("\n");
  const row: Row = {
    measure: "fixed cost of a 10-item run, CLI start → exit",
    figure: secs(r.ms),
    beside: `bare ${secs(bare.ms)}`,
    ratio: `${fixed(r.ms / bare.ms, 1)}× bare`,
    goal: "≤ 0.60 s",
    met: r.ms <= 600,
    note: `spawn of \`shardrun run\` to its exit; the bare loop is a fresh node process over the same items, spawn to exit.`,
    writes: [{ items: n, ...storeWrites(store) }],
  };
  return { row, cliMs: r.ms, bareMs: bare.ms };
}

export async function noopBench(log: (s: string) => void): Promise<{ row: Row }> {
  const n = scaled(500_000);
  const store = tempStore("noop");
  const probe = join(tempStore("noop-probe"), "probe.jsonl");
  const bare = await bareProcess(n, store);
  const r = await runJob({ store, job: "noop", args: { count: n }, flags: ["--tasks", String(TASKS)], env: probeEnv(probe) });
  if (r.status.state !== "succeeded") throw new Error(`no-op run ${r.status.runId} ended ${r.status.state}`);
  const tasks = taskLives(readProbe(probe));
  const taskSeconds = tasks.reduce((s, t) => s + t.ms, 0) / 1000;
  const perTask = n / (r.ms / 1000) / TASKS;
  const perTaskSecond = n / taskSeconds;
  const bareRate = n / (bare.ms / 1000);
  log(`(e) no-op items: ${n} items, the job's default sharding (${r.status.shards.total} shards), ${TASKS} tasks\n`);
  log(
    table(
      ["measure", "value"],
      [
        ["shardrun, CLI start → exit", secs(r.ms)],
        ["  of which CLI start → first task start", secs(Math.min(...tasks.map((t) => t.startedAt)) - r.startedAt)],
        ["  task processes, start → exit", tasks.map((t) => secs(t.ms)).join(", ")],
        ["items/s per task, whole run", Math.round(perTask)],
        ["items per task-second (task process lives)", Math.round(perTaskSecond)],
        ["bare loop, spawn → exit", secs(bare.ms)],
        ["bare loop items/s (one process, whole)", Math.round(bareRate)],
      ],
    ),
  );
  log("\n");
  const ratio = bareRate / perTask;
  const row: Row = {
    measure: "no-op items, 500k, items/s per task, whole run",
    figure: `${(perTask / 1000).toFixed(1)}k/s`,
    beside: `bare ${(bareRate / 1000).toFixed(1)}k/s`,
    ratio: `bare ÷ task ${fixed(ratio)}`,
    goal: "≥ 50k/s, ≤ 1.3× bare",
    met: perTask >= 50_000 && ratio <= 1.3,
    note: `${n} items ÷ (CLI start → exit) ÷ ${TASKS} tasks; per second of the task processes' own lives ${(perTaskSecond / 1000).toFixed(1)}k/s. The bare loop is one fresh process, spawn to exit, with the same item work.`,
    writes: [{ items: n, ...storeWrites(store) }],
  };
  return { row };
}

/** Task processes of a run, from the probe: when each began and how long it lived. */
export function taskLives(records: readonly ProbeRecord[]): { pid: number; startedAt: number; ms: number; maxRssKb: number }[] {
  const exits = new Map(records.filter((r) => r.ev === "exit").map((r) => [r.pid, r]));
  return records
    .filter((r) => r.ev === "start" && r.task !== undefined)
    .flatMap((r) => {
      const end = exits.get(r.pid);
      return end ? [{ pid: r.pid, startedAt: r.startedAt, ms: (end.exitAt ?? r.startedAt) - r.startedAt, maxRssKb: end.maxRssKb ?? 0 }] : [];
    });
}
