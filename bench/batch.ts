/**
 * Issue 10, rows 1 and 2: a batch of 10,000 items with lognormal durations (median 20 ms,
 * sigma 1, capped at 2 s) on 2 tasks × 32 slots, heaviest first (the bench job's `cost` is its
 * duration), against the ideal max(Σ ÷ 64, longest). Then the same with one task SIGKILLed when
 * half the items have started: items redone are counted from the job's append-only execution
 * log, and the merged output must hold every item exactly once.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { BenchArgs, benchItems } from "./jobs/durations.js";
import { executionStatuses, fixed, runCli, runJob, scaled, secs, table, tempStore } from "./lib.js";
import { countExecutions, lastCommitAt, LogTail, readExecutions, storeWrites } from "./observe.js";
import type { Row } from "./rows.js";

const TASKS = 2;
const SLOTS = 32;

export interface BatchResult {
  items: number;
  idealMs: number;
  /** spawn of `shardrun run` → its exit */
  cliMs: number;
  /** first item start → last checkpoint write */
  inRunMs: number;
  executions: number;
  redone: number;
  kills: number;
  outputOk: boolean;
  problems: string[];
}

/** Every `item-<n>` key exactly once in `shardrun output`; returns what is wrong (empty when OK). */
export async function checkOutput(store: string, runId: string, n: number): Promise<string[]> {
  const out = await runCli(["output", runId, "--store", store]);
  if (out.code !== 0) return [`shardrun output exited ${out.code}: ${out.stderr.trim().slice(0, 300)}`];
  const seen = new Map<string, number>();
  for (const line of out.stdout.split("\n")) {
    if (!line) continue;
    const key = String((JSON.parse(line) as { key?: unknown }).key);
    seen.set(key, (seen.get(key) ?? 0) + 1);
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

export async function batchBench(log: (s: string) => void, kill: boolean): Promise<{ row: Row; result: BatchResult }> {
  const n = scaled(10_000);
  const args = { count: n, medianMs: 20, sigma: 1, capMs: 2000, seed: 1 };
  const durations = [...benchItems(BenchArgs.parse(args))].map((i) => i.ms);
  const sum = durations.reduce((a, b) => a + b, 0);
  const longest = Math.max(...durations);
  const ideal = Math.max(sum / (TASKS * SLOTS), longest);
  const store = tempStore(kill ? "batch-kill" : "batch");
  const logFile = join(tempStore("batch-log"), "executions.log");

  const kills: { pid: number; task: number; atLines: number }[] = [];
  const stop = new AbortController();
  const killer = kill
    ? (async () => {
        const tail = new LogTail(logFile);
        while (!stop.signal.aborted && tail.lines() < n / 2) await sleep(5, undefined, { signal: stop.signal });
        // Task 0 of the live execution, whatever it holds at that moment.
        for (;;) {
          const victim = executionStatuses(store)
            .filter((ex) => ex.state === "running")
            .flatMap((ex) => ex.tasks.filter((t) => t.state === "running" && t.pid))
            .sort((a, b) => a.index - b.index)[0];
          if (victim?.pid) {
            process.kill(victim.pid, "SIGKILL");
            kills.push({ pid: victim.pid, task: victim.index, atLines: tail.lines() });
            return;
          }
          await sleep(5, undefined, { signal: stop.signal });
        }
      })().catch((e: unknown) => {
        if (!stop.signal.aborted) throw e;
      })
    : Promise.resolve();

  let run: Awaited<ReturnType<typeof runJob>>;
  try {
    run = await runJob({ store, job: "lognormal", args: { ...args, log: logFile }, flags: ["--tasks", String(TASKS), "--concurrency", String(SLOTS)] });
  } finally {
    stop.abort();
    await killer;
  }
  const ex = countExecutions(readExecutions(logFile));
  const commit = await lastCommitAt(store, run.status.runId);
  const inRun = commit - ex.firstAt;
  const problems = await checkOutput(store, run.status.runId, n);
  if (run.status.state !== "succeeded") problems.unshift(`run ended ${run.status.state}`);
  const w = storeWrites(store);

  const label = kill ? "(a2) 10k lognormal batch, one task SIGKILLed at 50%" : "(a1) 10k lognormal batch";
  log(`${label}: ${n} items, median 20 ms, sigma 1, cap 2 s, heaviest first; ${TASKS} tasks × ${SLOTS} slots\n`);
  log(
    table(
      ["measure", "value"],
      [
        ["Σ item time", secs(sum)],
        ["longest item", secs(longest)],
        [`ideal = max(Σ ÷ ${TASKS * SLOTS}, longest)`, secs(ideal)],
        ["wall, first item start → last commit", secs(inRun)],
        ["wall, CLI start → exit", secs(run.ms)],
        ["  of which CLI start → first item", secs(ex.firstAt - run.startedAt)],
        ["  of which last commit → CLI exit", secs(run.endedAt - commit)],
        ["item executions (log lines)", ex.executions],
        ["items redone", ex.redone],
        ...(kill ? [["kills", kills.map((k) => `task ${k.task} (pid ${k.pid}) at ${k.atLines} executions`).join("; ") || "none"] as [string, string]] : []),
        ["output: every item exactly once", problems.length ? `FAIL (${problems.slice(0, 3).join("; ")})` : "OK"],
      ],
    ),
  );
  log("\n");

  const result: BatchResult = { items: n, idealMs: ideal, cliMs: run.ms, inRunMs: inRun, executions: ex.executions, redone: ex.redone, kills: kills.length, outputOk: problems.length === 0, problems: problems.slice(0, 10) };
  const goalRatio = kill ? 1.2 : 1.1;
  const ratio = inRun / ideal;
  const perKill = kills.length ? ex.redone / kills.length : NaN;
  const timeOk = ratio <= goalRatio;
  const redoneOk = !kill || (kills.length > 0 && perKill <= 64);
  const row: Row = {
    measure: kill ? "10k batch, one task SIGKILLed at 50%" : "10k lognormal batch, 2 tasks × 32",
    figure: `${secs(inRun)}${kill ? `, ${fixed(perKill, 0)} redone/kill` : ""}`,
    beside: `ideal ${secs(ideal)}`,
    ratio: `${fixed(ratio)}× (CLI ${fixed(run.ms / ideal)}×)`,
    goal: kill ? "≤ 1.20× ideal; ≤ 64 redone/kill" : "≤ 1.10× ideal",
    met: problems.length ? false : timeOk && redoneOk,
    note:
      `wall = first item start → last commit (${fixed(ratio)}× ideal); CLI start → exit ${secs(run.ms)} (${fixed(run.ms / ideal)}×) adds the fixed cost (its own row).` +
      (kill ? ` ${ex.redone} items redone for ${kills.length} kill(s).` : "") +
      (problems.length ? ` Output wrong: ${problems.slice(0, 2).join("; ")}.` : ""),
    writes: [{ items: n, ...w }],
  };
  return { row, result };
}
