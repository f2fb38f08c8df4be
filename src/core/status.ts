/**
 * Run status as a pure function of what the store holds: the run record, every shard's
 * checkpoint and the launch records (with the launcher's view of live ones).
 */
import { addUsage, ZERO_USAGE, type Budgets, type Usage } from "./budget.js";
import type { Checkpoint, LaunchRecord, RunRecord, RunState } from "./model.js";
import { rangeCount, rangeIndices } from "./ranges.js";

export type StatusState = "pending" | "running" | "succeeded" | "failed" | "partial" | "cancelled" | "budget_exhausted";

export interface LaunchStatus {
  n: number;
  execution?: string;
  taskCount: number;
  state: LaunchRecord["state"];
  tasks?: { running: number; succeeded: number; failed: number };
  url?: string;
}

export interface ShardStatus {
  id: string;
  round: number;
  state: "pending" | "running" | "done";
  items: number;
  done: number;
  failed: number;
  epoch: number;
  owner?: string;
}

export interface RunStatus {
  runId: string;
  job: string;
  state: StatusState;
  createdAt: string;
  finishedAt?: string;
  /** Why the run ended as it did (failure tolerance, launch limit, ...). */
  reason?: string;
  items: { total: number; succeeded: number; failed: number; pending: number };
  shards: { total: number; done: number; running: number };
  launches: LaunchStatus[];
  /** Item executions recorded in checkpoints, redone ones included. */
  executions: number;
  /** Spend recorded through ctx.usage, and the run's budgets. */
  usage: Usage;
  budgets: Budgets;
  shardList: ShardStatus[];
}

export interface FailedItemView {
  i: number;
  key: string;
  shard: string;
  error: string;
  attempts: number;
  reason: string;
}

/**
 * Failed items of the run: a later round (a redrive of failed items) supersedes what an earlier
 * round said of the same item.
 */
export function failedItems(run: RunRecord, checkpoints: ReadonlyMap<string, Checkpoint | null>): FailedItemView[] {
  const failed = new Map<number, FailedItemView>();
  const byRound = [...run.plan.shards].sort((a, b) => a.round - b.round);
  for (const shard of byRound) {
    if (shard.round > 0) for (const i of rangeIndices(shard.indices)) failed.delete(i);
    const cp = checkpoints.get(shard.id);
    for (const f of cp?.failed ?? []) {
      failed.set(f.i, { i: f.i, key: f.key, shard: shard.id, error: f.error, attempts: f.attempts, reason: f.reason });
    }
  }
  return [...failed.values()].sort((a, b) => a.i - b.i);
}

export function computeStatus(
  run: RunRecord,
  checkpoints: ReadonlyMap<string, Checkpoint | null>,
  launches: readonly LaunchStatus[],
): RunStatus {
  let succeeded = 0;
  let executions = 0;
  let usage: Usage = ZERO_USAGE;
  const shardList: ShardStatus[] = run.plan.shards.map((s) => {
    const cp = checkpoints.get(s.id) ?? null;
    const done = cp ? rangeCount(cp.done) : 0;
    succeeded += done;
    executions += cp?.executions ?? 0;
    if (cp) usage = addUsage(usage, cp.usage);
    const state = cp?.state === "done" ? "done" : cp?.owner ? "running" : "pending";
    return {
      id: s.id,
      round: s.round,
      state,
      items: s.count,
      done,
      failed: cp?.failed.length ?? 0,
      epoch: cp?.epoch ?? 0,
      ...(cp?.owner ? { owner: `${cp.owner.execution}/${cp.owner.taskIndex}#${cp.owner.attempt}` } : {}),
    };
  });
  const failed = failedItems(run, checkpoints).length;
  const total = run.plan.totalItems;
  const shardsDone = shardList.filter((s) => s.state === "done").length;
  const live = launches.some((l) => l.state === "pending" || l.state === "running");
  return {
    runId: run.runId,
    job: run.job.name,
    state: deriveState(run.state, { live, allDone: shardsDone === shardList.length, succeeded, failed, launched: launches.length > 0 }),
    createdAt: run.createdAt,
    ...(run.finishedAt ? { finishedAt: run.finishedAt } : {}),
    ...(run.reason ? { reason: run.reason } : {}),
    items: { total, succeeded, failed, pending: Math.max(0, total - succeeded - failed) },
    shards: { total: shardList.length, done: shardsDone, running: shardList.filter((s) => s.state === "running").length },
    launches: [...launches],
    executions,
    usage,
    budgets: run.settings.budgets,
    shardList,
  };
}

function deriveState(
  recorded: RunState,
  s: { live: boolean; allDone: boolean; succeeded: number; failed: number; launched: boolean },
): StatusState {
  if (s.live) return "running";
  // A finished run stays as it was recorded; a rerun sets the record back to "running" first.
  if (recorded === "succeeded" || recorded === "partial" || recorded === "failed" || recorded === "cancelled" || recorded === "budget_exhausted") return recorded;
  if (s.allDone) return finishedState(s.succeeded, s.failed);
  return s.launched || recorded === "running" ? "running" : "pending";
}

/** The final state of a run whose shards are all done. */
export function finishedState(succeeded: number, failed: number): "succeeded" | "partial" | "failed" {
  if (failed === 0) return "succeeded";
  return succeeded === 0 ? "failed" : "partial";
}

/** True when the run has more failed items than its failure tolerance allows. */
export function toleranceExceeded(tolerance: RunRecord["settings"]["maxFailedItems"], failed: number, total: number): boolean {
  if (!tolerance) return false;
  if (tolerance.count !== undefined && failed > tolerance.count) return true;
  if (tolerance.percent !== undefined && failed > (tolerance.percent / 100) * total) return true;
  return false;
}
