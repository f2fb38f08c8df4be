/**
 * Run status as a pure function of what the store holds: the run record, a summary of every shard
 * that has a checkpoint (read from a listing with custom metadata, a thousand shards a request,
 * never one read per shard), and the launch records (with the launcher's view of live ones).
 */
import { addUsage, ZERO_USAGE, type Budgets, type Usage } from "./budget.js";
import type { Checkpoint, LaunchRecord, RunRecord, RunState, ShardEntry } from "./model.js";
import { rangeCount, rangeIndices } from "./ranges.js";
import type { ShownState } from "./states.js";

/** A run's state as status shows it: core/states.ts's one list. */
export type StatusState = ShownState;

export interface TaskView {
  index: number;
  state: string;
  attempts: number;
  lastExitCode?: number;
  /** Attempts ended by the task timeout. */
  timeouts?: number;
  /** Why the last attempt ended, in words (exit code, signal, timeout). */
  lastExit?: string;
}

export interface LaunchStatus {
  n: number;
  execution?: string;
  taskCount: number;
  state: LaunchRecord["state"];
  tasks?: { running: number; succeeded: number; failed: number };
  /** Per task, when the launcher can tell. */
  taskList?: TaskView[];
  url?: string;
  createdAt?: string;
  finishedAt?: string;
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
  /** Item executions recorded in checkpoints and output parts, redone ones included. */
  executions: number;
  /** Spend recorded through ctx.usage, and the run's budgets. */
  usage: Usage;
  budgets: Budgets;
  /** Spend past the run budget, when a budget stop overshot it. */
  overshoot?: Usage;
  /** Per shard; empty unless asked for (it costs a read of the plan). */
  shardList: ShardStatus[];
}

/** A shard as a listing shows it: its checkpoint's metadata, plus live output parts not named yet. */
export interface ShardSummary {
  n: number;
  id: string;
  state: "open" | "done";
  items: number;
  done: number;
  failed: number;
  executions: number;
  usage: Usage;
  /** Leases held by someone now. */
  owners: number;
  epoch: number;
  owner?: string;
  stop?: boolean;
  corrupt?: boolean;
}

/** The summary of a checkpoint read whole (when a listing carries no metadata). */
export function summarizeCheckpoint(n: number, cp: Checkpoint): ShardSummary {
  return {
    n,
    id: cp.shard,
    state: cp.state,
    items: cp.itemCount,
    done: rangeCount(cp.done),
    failed: cp.failed.length,
    executions: cp.executions,
    usage: cp.usage,
    owners: cp.leases.filter((l) => l.owner).length,
    epoch: cp.epochSeq,
    ...(cp.owner ? { owner: `${cp.owner.execution}/${cp.owner.taskIndex}#${cp.owner.attempt}` } : {}),
    ...(cp.stop ? { stop: true } : {}),
    ...(cp.corrupt ? { corrupt: true } : {}),
  };
}

export interface FailedItemView {
  i: number;
  key: string;
  shard: string;
  error: string;
  attempts: number;
  reason: string;
  stack?: string;
  lastLog?: string;
}

/**
 * Failed items of the run, from the checkpoints of the shards that have failures: a later round (a
 * redrive of failed items) supersedes what an earlier round said of the same item.
 */
export function failedItems(run: RunRecord, checkpoints: ReadonlyMap<string, Checkpoint | null>, entries: readonly ShardEntry[] = []): FailedItemView[] {
  const roundOf = (shard: string): number => {
    const n = Number(shard.slice(1));
    let r = 0;
    for (const round of run.plan.rounds) if (round.firstShard <= n) r = round.round;
    return r;
  };
  const failed = new Map<number, FailedItemView & { round: number }>();
  const laterRounds = entries.filter((e) => e.round > 0);
  const replannedIn = new Map<number, number>();
  for (const e of laterRounds) for (const i of rangeIndices(e.indices)) replannedIn.set(i, Math.max(replannedIn.get(i) ?? 0, e.round));
  for (const [shard, cp] of checkpoints) {
    if (!cp) continue;
    const round = roundOf(shard);
    for (const f of cp.failed) {
      // Re-planned in a later round: that round speaks for the item.
      if ((replannedIn.get(f.i) ?? -1) > round) continue;
      const prev = failed.get(f.i);
      if (prev && prev.round > round) continue;
      failed.set(f.i, {
        i: f.i,
        key: f.key,
        shard,
        error: f.error,
        attempts: f.attempts,
        reason: f.reason,
        round,
        ...(f.stack ? { stack: f.stack } : {}),
        ...(f.lastLog ? { lastLog: f.lastLog } : {}),
      });
    }
  }
  return [...failed.values()].map(({ round: _r, ...f }) => f).sort((a, b) => a.i - b.i);
}

export function computeStatus(
  run: RunRecord,
  shards: readonly ShardSummary[],
  launches: readonly LaunchStatus[],
  entries?: readonly ShardEntry[],
): RunStatus {
  let succeeded = 0;
  let failedAll = 0;
  let executions = 0;
  let usage: Usage = ZERO_USAGE;
  let done = 0;
  let runningShards = 0;
  for (const s of shards) {
    succeeded += s.done;
    failedAll += s.failed;
    executions += s.executions;
    usage = addUsage(usage, s.usage);
    if (s.state === "done") done++;
    else if (s.owners > 0) runningShards++;
  }
  const superseded = run.plan.rounds.reduce((n, r) => n + r.superseded, 0);
  const failed = Math.max(0, failedAll - superseded);
  const total = run.plan.totalItems;
  const shardCount = run.plan.shardCount;
  const live = launches.some((l) => l.state === "pending" || l.state === "running");
  const shardList: ShardStatus[] = [];
  if (entries) {
    const byId = new Map(shards.map((s) => [s.id, s]));
    for (const e of entries) {
      const s = byId.get(e.id);
      shardList.push({
        id: e.id,
        round: e.round,
        state: s?.state === "done" ? "done" : s && s.owners > 0 ? "running" : "pending",
        items: e.count,
        done: s?.done ?? 0,
        failed: s?.failed ?? 0,
        epoch: s?.epoch ?? 0,
        ...(s?.owner ? { owner: s.owner } : {}),
      });
    }
  }
  const budget = run.settings.budgets.run;
  const over = budget ? { tokens: budget.tokens !== undefined ? Math.max(0, usage.tokens - budget.tokens) : 0, usd: budget.usd !== undefined ? Math.max(0, usage.usd - budget.usd) : 0 } : null;
  return {
    runId: run.runId,
    job: run.job.name,
    state: deriveState(run.state, { live, allDone: done === shardCount, succeeded, failed, launched: launches.length > 0 }),
    createdAt: run.createdAt,
    // A run being driven again keeps its last finish time on record; it is not finished now.
    ...(run.finishedAt && FINISHED.has(run.state) ? { finishedAt: run.finishedAt } : {}),
    ...(run.reason ? { reason: run.reason } : {}),
    items: { total, succeeded, failed, pending: Math.max(0, total - succeeded - failed) },
    shards: { total: shardCount, done, running: runningShards },
    launches: [...launches],
    executions,
    usage,
    budgets: run.settings.budgets,
    ...(over && (over.tokens > 0 || over.usd > 0) ? { overshoot: over } : {}),
    shardList,
  };
}

/** Recorded states of a run whose last drive has ended. */
const FINISHED: ReadonlySet<RunState> = new Set(["succeeded", "partial", "failed", "cancelled", "budget_exhausted"]);

function deriveState(
  recorded: RunState,
  s: { live: boolean; allDone: boolean; succeeded: number; failed: number; launched: boolean },
): StatusState {
  if (recorded === "planning") return "planning";
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

/**
 * The status of a run still being planned (or cancelled while it was), from its index entry:
 * it has no run.json yet, so no shards, launches or spend.
 */
export function planningStatus(entry: { runId: string; job: string; state: "planning" | "cancelled"; createdAt: string; items: number }): RunStatus {
  return {
    runId: entry.runId,
    job: entry.job,
    state: entry.state,
    createdAt: entry.createdAt,
    ...(entry.state === "cancelled" ? { reason: "cancelled while it was planned" } : {}),
    items: { total: entry.items, succeeded: 0, failed: 0, pending: entry.items },
    shards: { total: 0, done: 0, running: 0 },
    launches: [],
    executions: 0,
    usage: ZERO_USAGE,
    budgets: {},
    shardList: [],
  };
}
