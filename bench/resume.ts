/**
 * Issue 10, row 4: resume waste. 2,000 items of 50 ms on 2 tasks × 4 slots, a running task
 * SIGKILLed at random about every 2 s, as a preempted or crashed Cloud Run task would be. A
 * killed attempt loses only what it had not made durable; its retry takes over at once
 * (DESIGN.md protocol 1) and redoes just that. Executions are counted from the job's append-only
 * log (a killed execution counts), and the merged output must still hold every item exactly once
 * (protocol 2). Two plans: the job's default sharding, and small shards (5 items).
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { checkOutput } from "./batch.js";
import { executionStatuses, fixed, mulberry32, runJob, scaled, secs, table, tempStore } from "./lib.js";
import { countExecutions, readExecutions, storeWrites } from "./observe.js";
import type { Row, Writes } from "./rows.js";

const KILL_EVERY_MS = 2000;

export interface ResumeCase {
  label: string;
  shards: number;
  kills: number;
  executions: number;
  distinct: number;
  ratio: number;
  redonePerKill: number;
  ms: number;
  outputOk: boolean;
  problems: string[];
}

function runningTasks(store: string): { pid: number; task: number }[] {
  return executionStatuses(store)
    .filter((ex) => ex.state === "running")
    .flatMap((ex) => ex.tasks.filter((t) => t.state === "running" && t.pid).map((t) => ({ task: t.index, pid: t.pid! })));
}

async function resumeCase(label: string, flags: string[], n: number, seed: number): Promise<{ c: ResumeCase; writes: Writes }> {
  const store = tempStore("resume");
  const logFile = join(tempStore("resume-log"), "executions.log");
  const rnd = mulberry32(seed);
  let kills = 0;
  const stop = new AbortController();
  const killer = (async () => {
    for (;;) {
      // Jittered, so that kills do not lock into step with any rhythm of the tasks.
      await sleep(KILL_EVERY_MS * (0.75 + rnd() * 0.5), undefined, { signal: stop.signal });
      const running = runningTasks(store);
      if (!running.length) continue;
      const victim = running[Math.floor(rnd() * running.length)]!;
      try {
        process.kill(victim.pid, "SIGKILL");
        kills++;
      } catch {
        // The attempt ended between the status read and the kill: not a kill.
      }
    }
  })().catch((e: unknown) => {
    if (!stop.signal.aborted) throw e;
  });
  let run: Awaited<ReturnType<typeof runJob>>;
  try {
    // Retries absorb the kills (at most 10); more launches pick up the rest should a task still run out.
    run = await runJob({ store, job: "lognormal", args: { count: n, medianMs: 50, log: logFile }, flags: ["--tasks", "2", "--max-retries", "10", "--max-launches", "10", ...flags] });
  } finally {
    stop.abort();
    await killer;
  }
  const ex = countExecutions(readExecutions(logFile));
  const problems = await checkOutput(store, run.status.runId, n);
  if (run.status.state !== "succeeded") problems.unshift(`run ended ${run.status.state}`);
  return {
    c: {
      label,
      shards: run.status.shards.total,
      kills,
      executions: ex.executions,
      distinct: ex.distinct,
      ratio: ex.executions / Math.max(1, ex.distinct),
      redonePerKill: ex.redone / Math.max(1, kills),
      ms: run.ms,
      outputOk: problems.length === 0,
      problems: problems.slice(0, 10),
    },
    writes: { items: n, ...storeWrites(store) },
  };
}

export async function resumeBench(log: (s: string) => void): Promise<{ row: Row; cases: ResumeCase[] }> {
  const n = scaled(2000);
  const a = await resumeCase("defaults", [], n, 7);
  const b = await resumeCase("small shards (5 items)", ["--items-per-shard", "5"], n, 8);
  const cases = [a.c, b.c];
  log(`(c) resume waste: ${n} items × 50 ms, 2 tasks × 4 slots, a running task SIGKILLed about every ${KILL_EVERY_MS / 1000} s\n`);
  log(
    table(
      ["plan", "shards", "wall", "kills", "executions", "executions ÷ items", "redone per kill", "every item once"],
      cases.map((c) => [c.label, c.shards, secs(c.ms), c.kills, c.executions, fixed(c.ratio, 3), fixed(c.redonePerKill, 1), c.outputOk ? "OK" : `FAIL (${c.problems.slice(0, 2).join("; ")})`]),
    ),
  );
  log("\n");
  const worst = Math.max(...cases.map((c) => c.ratio));
  const wrong = cases.filter((c) => !c.outputOk);
  const row: Row = {
    measure: "resume waste, 2,000 × 50 ms, SIGKILL every ~2 s",
    figure: cases.map((c) => `${fixed(c.ratio, 3)} (${c.label.split(" ")[0]})`).join(", "),
    beside: "1.000 (nothing redone)",
    ratio: `worst ${fixed(worst, 3)}`,
    goal: "≤ 1.05",
    met: wrong.length ? false : worst <= 1.05 && cases.every((c) => c.kills > 0),
    note: `executions ÷ distinct items from the job's execution log; ${cases.map((c) => `${c.label}: ${c.kills} kills, ${fixed(c.redonePerKill, 1)} redone per kill`).join("; ")}.${wrong.length ? ` Output wrong: ${wrong[0]!.problems.slice(0, 2).join("; ")}.` : ""}`,
    writes: [a.writes, b.writes],
  };
  return { row, cases };
}
