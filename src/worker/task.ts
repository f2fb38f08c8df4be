/**
 * One task of a launch: works its assigned shards, then (dynamic claiming, protocol 7) claims
 * any shard of the launch that is unowned or whose lease may be taken over, until none is left.
 * A shard's last checkpoint write is not awaited before the next shard starts: it may have to
 * wait out the one-write-per-second gap, and the task would sit idle meanwhile.
 */
import type { Job } from "../core/job.js";
import type { Logger } from "../core/log.js";
import type { LaunchRecord, Owner, RunRecord } from "../core/model.js";
import type { ObjectStore } from "../store/port.js";
import { taskShare } from "../core/limits.js";
import { RunBudget } from "./budget.js";
import { Limiter } from "./limiter.js";
import { ShardRunner } from "./shard-runner.js";

/** "budget": the run budget ran out; retrying the task would not help. */
export type TaskOutcome = "complete" | "stopped" | "lease-lost" | "budget";

export interface TaskOptions {
  store: ObjectStore;
  job: Job;
  run: RunRecord;
  launch: LaunchRecord;
  me: Owner;
  logger: Logger;
  /** Aborted when the task must stop taking items. */
  stopping: AbortSignal;
  /** Aborted when items in flight must be abandoned. */
  abortItems: AbortSignal;
  now?: () => number;
  random?: () => number;
  onExecution?: (key: string) => void;
  /** Receives a function that checkpoints the shard in progress (for SIGTSTP). */
  onActiveShard?: (checkpointNow: (() => Promise<void>) | null) => void;
}

export async function runTask(o: TaskOptions): Promise<TaskOutcome> {
  const own = o.launch.assignment[o.me.taskIndex] ?? [];
  /** Shards this task finished, or is committing: never claimed again by it. */
  const mine = new Set<string>();
  const commits: Promise<void>[] = [];
  // Limits are shared out over the tasks that can run at once.
  const running = Math.min(o.launch.parallelism, o.launch.taskCount);
  const budget = new RunBudget(o.store, o.run, running, o.now);
  const limiters = new Map(Object.entries(o.job.limits).map(([name, spec]) => [name, new Limiter(taskShare(spec, running), o.now)]));
  let lost = false;
  let stopped = false;

  /** True when the shard's items were worked (its commit is under way). */
  const work = async (shard: string): Promise<boolean> => {
    const runner = new ShardRunner({
      store: o.store,
      job: o.job,
      runId: o.run.runId,
      shard,
      me: o.me,
      leaseTtlMs: o.run.settings.leaseTtlMs,
      logger: o.logger.child({ shard }),
      stopping: o.stopping,
      abortItems: o.abortItems,
      now: o.now ?? Date.now,
      random: o.random ?? Math.random,
      ...(o.onExecution ? { onExecution: o.onExecution } : {}),
      limiters,
      budget,
      budgets: o.run.settings.budgets,
    });
    o.onActiveShard?.(() => runner.checkpointNow());
    let r: Awaited<ReturnType<ShardRunner["runItems"]>>;
    try {
      r = await runner.runItems();
    } finally {
      o.onActiveShard?.(null);
    }
    if (r === "lost") lost = true;
    if (r === "stopped") stopped = true;
    if (r !== "ready") return false;
    mine.add(shard);
    const commit = runner.commit().then(async (c) => {
      if (c === "lost") lost = true;
      if (c === "stopped") stopped = true;
      // A spent run budget ends the task's claims; a spent shard budget only that shard.
      if (c === "budget" && (await budget.check())) outOfBudget = true;
    });
    commits.push(commit);
    // Budget stops must be known before the next claim, so wait for this commit.
    if (o.run.settings.budgets.run) await commit;
    return true;
  };
  let outOfBudget = false;
  const halted = () => lost || stopped || outOfBudget || o.stopping.aborted;

  try {
    for (const shard of own) {
      if (halted()) break;
      await work(shard);
    }
    if (o.launch.claim === "dynamic") {
      const all = o.launch.assignment.flat();
      // Start the scan at a different place per task, so tasks do not all race for one shard.
      const start = all.length ? (o.me.taskIndex * Math.max(1, Math.floor(all.length / o.launch.taskCount))) % all.length : 0;
      const order = [...all.slice(start), ...all.slice(0, start)];
      for (let progressed = true; progressed && !halted(); ) {
        progressed = false;
        for (const shard of order) {
          if (halted()) break;
          if (mine.has(shard)) continue;
          if (await work(shard)) progressed = true;
        }
      }
    }
  } finally {
    // Every lease this task holds ends in a write, whatever happened above.
    await Promise.all(commits);
    await budget.release().catch((e: unknown) => o.logger.warn("could not give back the unspent budget reservation", { error: String(e) }));
  }
  if (lost) return "lease-lost";
  if (stopped || o.stopping.aborted) return "stopped";
  return outOfBudget ? "budget" : "complete";
}
