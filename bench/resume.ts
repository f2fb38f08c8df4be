/**
 * (b) Resume waste: a run whose task processes are SIGKILLed at random about every 2 s, as a
 * preempted or crashed Cloud Run task would be. A killed attempt loses only what it had not yet
 * checkpointed; the retry takes over the shard (DESIGN.md protocol 1) and redoes just that. The
 * sleepy job appends one log line per item execution, so executions ÷ items is measured from
 * the outside, independent of shardrun's own counters; the merged output must still hold every
 * item exactly once (protocol 2).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { executionStatuses, fixed, mulberry32, round, runCli, runSleepy, scaled, secs, table, tempStore } from "./lib.js";

const KILL_EVERY_MS = 2000;

export interface ResumeResult {
  items: number;
  kills: number;
  executions: number;
  distinct: number;
  /** Item executions ÷ distinct items (1 = nothing redone). */
  ratio: number;
  outputOk: boolean;
  outputProblems: string[];
  ms: number;
  launches: number;
  taskAttempts: number;
  state: string;
}

interface Victim {
  execution: string;
  task: number;
  pid: number;
}

function runningTasks(store: string): Victim[] {
  return executionStatuses(store)
    .filter((ex) => ex.state === "running")
    .flatMap((ex) => ex.tasks.filter((t) => t.state === "running" && t.pid).map((t) => ({ execution: ex.name, task: t.index, pid: t.pid! })));
}

/** Every expected key exactly once, nothing else; returns what is wrong (empty when OK). */
function checkOutput(jsonl: string, n: number): string[] {
  const seen = new Map<string, number>();
  for (const line of jsonl.split("\n")) {
    if (!line) continue;
    const key = (JSON.parse(line) as { key?: unknown }).key;
    seen.set(String(key), (seen.get(String(key)) ?? 0) + 1);
  }
  const problems: string[] = [];
  for (let i = 0; i < n; i++) {
    const c = seen.get(`item-${i}`) ?? 0;
    if (c !== 1) problems.push(`item-${i} appears ${c} times`);
    seen.delete(`item-${i}`);
  }
  for (const key of seen.keys()) problems.push(`unexpected key ${key}`);
  return problems;
}

export async function resumeBench(log: (s: string) => void): Promise<ResumeResult> {
  const n = scaled(300);
  const store = tempStore("resume");
  const logFile = join(tempStore("resume-log"), "executions.jsonl");
  const rnd = mulberry32(7);
  const kills: (Victim & { atMs: number })[] = [];
  const stop = new AbortController();

  const t0 = performance.now();
  const killer = (async () => {
    for (;;) {
      // Jittered around 2 s so that kills do not lock into step with the 1 s checkpoint rhythm.
      await sleep(KILL_EVERY_MS * (0.75 + rnd() * 0.5), undefined, { signal: stop.signal });
      const running = runningTasks(store);
      if (!running.length) continue;
      const victim = running[Math.floor(rnd() * running.length)]!;
      try {
        process.kill(victim.pid, "SIGKILL");
        kills.push({ ...victim, atMs: performance.now() - t0 });
      } catch {
        // The attempt ended between the status read and the kill: not a kill.
      }
    }
  })().catch((e: unknown) => {
    if (!stop.signal.aborted) throw e;
  });

  let run: Awaited<ReturnType<typeof runSleepy>>;
  try {
    run = await runSleepy({
      store,
      args: { count: n, sleepMs: 50, log: logFile },
      // Retries absorb the kills (the CLI allows at most 10); more launches pick up the rest
      // should one task still run out of retries.
      flags: ["--tasks", "2", "--max-retries", "10", "--max-launches", "10"],
    });
  } finally {
    stop.abort();
    await killer;
  }

  const keys: string[] = [];
  for (const line of readFileSync(logFile, "utf8").split("\n")) if (line) keys.push(String((JSON.parse(line) as { key?: unknown }).key));
  const distinct = new Set(keys).size;
  const out = await runCli(["output", run.status.runId, "--store", store]);
  const problems = out.code === 0 ? checkOutput(out.stdout, n) : [`shardrun output exited ${out.code}: ${out.stderr.trim().slice(0, 300)}`];
  if (run.status.state !== "succeeded") problems.unshift(`run ended ${run.status.state}`);
  const taskAttempts = executionStatuses(store).reduce((s, ex) => s + ex.tasks.reduce((m, t) => m + t.attempts, 0), 0);

  log(`(b) resume waste: ${n} items × 50 ms, --tasks 2, concurrency 4, a running task SIGKILLed about every ${KILL_EVERY_MS / 1000} s\n`);
  log(
    table(
      ["measure", "value"],
      [
        ["wall time", secs(run.ms)],
        ["kills (SIGKILL of a task attempt)", kills.length],
        ["task attempts started", taskAttempts],
        ["launches", run.status.launches.length],
        ["item executions (log lines)", keys.length],
        ["distinct items executed", distinct],
        ["executions ÷ items", fixed(keys.length / distinct, 3)],
        ["redone per kill", fixed((keys.length - distinct) / Math.max(1, kills.length), 1)],
        ["output: every item exactly once", problems.length ? `FAIL (${problems.slice(0, 3).join("; ")})` : "OK"],
      ],
    ),
  );
  log("  note: a kill loses the items in flight and those finished since the shard's last checkpoint write;\n");
  log("        writes come every 5 items but at most once a second, so here up to a whole 10-item shard.\n");
  log("        The retry's process start (and the lost second) is the time cost; redone items are the money cost.\n\n");

  return {
    items: n,
    kills: kills.length,
    executions: keys.length,
    distinct,
    ratio: round(keys.length / distinct, 3)!,
    outputOk: problems.length === 0,
    outputProblems: problems.slice(0, 10),
    ms: round(run.ms, 0)!,
    launches: run.status.launches.length,
    taskAttempts,
    state: run.status.state,
  };
}
