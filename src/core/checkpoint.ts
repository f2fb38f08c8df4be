/**
 * Pure checkpoint transitions: taking a lease, committing a batch, heartbeats. The worker does
 * the I/O; every function here returns a new checkpoint and never touches the old one.
 */
import { addUsage, type Usage } from "./budget.js";
import type { Checkpoint, FailedItem, Owner } from "./model.js";
import { rangeAdd, rangeCount } from "./ranges.js";

export function emptyCheckpoint(runId: string, shard: string, itemCount: number, now: number): Checkpoint {
  return {
    v: 1,
    runId,
    shard,
    itemCount,
    epoch: 0,
    owner: null,
    heartbeatAt: now,
    leaseTtlMs: 0,
    state: itemCount === 0 ? "done" : "open",
    done: [],
    failed: [],
    parts: [],
    executions: 0,
    steps: {},
    usage: { tokens: 0, usd: 0 },
    elapsedMs: 0,
    updatedAt: new Date(now).toISOString(),
  };
}

export type LeaseDecision =
  | { ok: true; reason: "new" | "released" | "predecessor" | "earlier-launch" | "expired" }
  | { ok: false; reason: "done" | "held" };

/**
 * DESIGN.md protocol 1: a task may take a shard that nobody holds, that a previous attempt of the
 * same task held (a task is retried only after its previous attempt ended), that a task of an
 * earlier launch held (a launch starts only after the one before it ended), or whose heartbeat
 * is older than its TTL.
 */
export function canTakeLease(cp: Checkpoint | null, me: Owner, now: number): LeaseDecision {
  if (!cp) return { ok: true, reason: "new" };
  if (cp.state === "done") return { ok: false, reason: "done" };
  const o = cp.owner;
  if (!o) return { ok: true, reason: "released" };
  if (o.execution === me.execution && o.taskIndex === me.taskIndex && o.attempt < me.attempt) return { ok: true, reason: "predecessor" };
  if (o.launch < me.launch) return { ok: true, reason: "earlier-launch" };
  if (now - cp.heartbeatAt > cp.leaseTtlMs) return { ok: true, reason: "expired" };
  return { ok: false, reason: "held" };
}

export function takeLease(cp: Checkpoint, me: Owner, leaseTtlMs: number, now: number): Checkpoint {
  const { stop: _stop, stopReason: _why, ...rest } = cp;
  return { ...rest, epoch: cp.epoch + 1, owner: me, heartbeatAt: now, leaseTtlMs, updatedAt: new Date(now).toISOString() };
}

export interface Batch {
  /** Part that holds the outputs of `done`; absent when the batch committed no outputs. */
  part?: { name: string; count: number };
  done: number[];
  failed: FailedItem[];
  /** Executions started since the previous write. */
  executions: number;
  /** Step results of unsettled items as the owner knows them now (replaces the stored ones). */
  steps?: Readonly<Record<string, Record<string, unknown>>>;
  /** Spend recorded since the previous write. */
  usage?: Usage;
  /** Leased time since the previous write. */
  elapsedMs?: number;
  /** The owner stops for a budget (recorded so the orchestrator can say so). */
  stop?: { kind: "budget"; reason: string };
}

/** Protocol 2: the checkpoint names the part (already written) and marks its items done. */
export function commitBatch(cp: Checkpoint, batch: Batch, now: number, release = false): Checkpoint {
  const done = batch.done.length ? rangeAdd(cp.done, batch.done) : cp.done;
  const failed = batch.failed.length ? [...cp.failed, ...batch.failed] : cp.failed;
  const parts = batch.part ? [...cp.parts, batch.part] : cp.parts;
  const settled = rangeCount(done) + failed.length;
  const state = settled >= cp.itemCount ? "done" : "open";
  const steps: Record<string, Record<string, unknown>> = {};
  if (state === "open") {
    const gone = new Set([...batch.done, ...batch.failed.map((f) => f.pos)].map(String));
    for (const [pos, s] of Object.entries(batch.steps ?? cp.steps)) if (!gone.has(pos)) steps[pos] = s;
  }
  return {
    ...cp,
    usage: batch.usage ? addUsage(cp.usage, batch.usage) : cp.usage,
    elapsedMs: cp.elapsedMs + (batch.elapsedMs ?? 0),
    ...(batch.stop && state === "open" ? { stop: batch.stop.kind, stopReason: batch.stop.reason } : {}),
    steps,
    done: done.map(([s, e]) => [s, e] as [number, number]),
    failed,
    parts,
    executions: cp.executions + batch.executions,
    heartbeatAt: now,
    state,
    owner: state === "done" || release ? null : cp.owner,
    updatedAt: new Date(now).toISOString(),
  };
}

/** Positions neither done nor failed: what a (re)started owner still has to do. */
export function settledPositions(cp: Checkpoint): Set<number> {
  const s = new Set<number>(cp.failed.map((f) => f.pos));
  for (const [a, b] of cp.done) for (let i = a; i < b; i++) s.add(i);
  return s;
}

export interface CadenceState {
  /** Items settled (done or failed) since the last checkpoint write. */
  pending: number;
  /** ms since the last checkpoint write of this shard. */
  sinceWriteMs: number;
}

/** The shortest gap between two writes of one checkpoint: Cloud Storage's one write per second. */
export const MIN_WRITE_GAP_MS = 1000;

/** Protocol 3: every N items or T ms, whichever first, but never two writes within a second. */
export function checkpointDue(state: CadenceState, cadence: { everyItems: number; everyMs: number }): boolean {
  if (state.pending === 0 || state.sinceWriteMs < MIN_WRITE_GAP_MS) return false;
  return state.pending >= cadence.everyItems || state.sinceWriteMs >= cadence.everyMs;
}

/** A lease is renewed well before its TTL runs out, even when no item finished. */
export function heartbeatDue(sinceWriteMs: number, leaseTtlMs: number): boolean {
  return sinceWriteMs >= Math.max(MIN_WRITE_GAP_MS, leaseTtlMs / 3);
}
