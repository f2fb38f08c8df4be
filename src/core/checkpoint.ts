/**
 * Pure checkpoint transitions (DESIGN.md protocols 1-3, 7 and 9): claiming a shard, taking over a
 * lease, splitting off part of another owner's range, committing a batch, releasing. The worker
 * does the I/O; every function here returns a new checkpoint and never touches the old one.
 *
 * A shard's positions are covered by leases: contiguous ranges, each with an owner, an epoch and a
 * horizon. An owner starts only positions below its horizon, and moves the horizon on by a
 * checkpoint write; a thief may split off only positions at or above it. Both are compare-and-swap
 * writes of the one checkpoint object, so an owner never runs a position a thief took, and a
 * position is committed by exactly one lease.
 */
import { addUsage, type Usage } from "./budget.js";
import { LeaseLost } from "./errors.js";
import type { Checkpoint, FailedItem, Lease, Owner, PartRef } from "./model.js";
import { rangeAdd, rangeCount, rangeHas, rangeUnion, type Range, type RangeSet } from "./ranges.js";

export type LeaseMode = Lease["mode"];

export interface LeaseTerms {
  leaseTtlMs: number;
  /** Positions the owner reserves ahead of the first unsettled one (its horizon). */
  lookahead: number;
  mode: LeaseMode;
}

const iso = (now: number) => new Date(now).toISOString();
const mutable = (set: RangeSet): [number, number][] => set.map(([a, b]) => [a, b]);

/** A checkpoint created by the first claim of a shard: one lease over every position, owned by `me`. */
export function claimedCheckpoint(runId: string, shard: string, itemCount: number, me: Owner, now: number, terms: LeaseTerms): Checkpoint {
  const lease: Lease = {
    start: 0,
    end: itemCount,
    owner: me,
    epoch: 1,
    heartbeatAt: now,
    leaseTtlMs: terms.leaseTtlMs,
    horizon: Math.min(itemCount, Math.max(1, terms.lookahead)),
    inflight: [],
    suspects: [],
    mode: terms.mode,
    namedSeq: 0,
  };
  return withMirror({
    v: 2,
    runId,
    shard,
    itemCount,
    epoch: 1,
    owner: me,
    heartbeatAt: now,
    leaseTtlMs: terms.leaseTtlMs,
    epochSeq: 1,
    leases: itemCount > 0 ? [lease] : [],
    state: itemCount === 0 ? "done" : "open",
    done: [],
    failed: [],
    parts: [],
    crashes: {},
    executions: 0,
    steps: {},
    usage: { tokens: 0, usd: 0 },
    elapsedMs: 0,
    updatedAt: iso(now),
  });
}

/** A shard whose items cannot be read back intact: done at once, every item failed `corrupt`. */
export function corruptCheckpoint(base: Checkpoint, failed: FailedItem[], reason: string, now: number): Checkpoint {
  return withMirror({ ...base, leases: [], state: "done", failed: [...base.failed, ...failed], corrupt: reason, updatedAt: iso(now) });
}

export type LeaseDecision =
  | { ok: true; reason: "released" | "predecessor" | "earlier-launch" | "expired" }
  | { ok: false; reason: "held" | "mine" };

/**
 * DESIGN.md protocol 1, per lease: a task may take a lease that nobody holds, that a previous
 * attempt of the same task held (a task is retried only after its previous attempt ended), that a
 * task of an earlier launch held (a launch starts only after the one before it ended), or whose
 * heartbeat is older than its TTL. `lastSignOfLife` is the newest sign that the owner is alive
 * besides the checkpoint's heartbeat (an output part it wrote), when the caller looked.
 */
export function leaseDecision(lease: Lease, me: Owner, now: number, lastSignOfLife = 0): LeaseDecision {
  const o = lease.owner;
  if (!o) return { ok: true, reason: "released" };
  if (o.execution === me.execution && o.taskIndex === me.taskIndex) {
    if (o.attempt < me.attempt) return { ok: true, reason: "predecessor" };
    if (o.attempt === me.attempt && o.launch === me.launch) return { ok: false, reason: "mine" };
  }
  if (o.launch < me.launch) return { ok: true, reason: "earlier-launch" };
  if (now - Math.max(lease.heartbeatAt, lastSignOfLife) > lease.leaseTtlMs) return { ok: true, reason: "expired" };
  return { ok: false, reason: "held" };
}

/** The lease of `epoch`, or null when it is gone (taken over, or finished). */
export function leaseOf(cp: Checkpoint, epoch: number): Lease | null {
  return cp.leases.find((l) => l.epoch === epoch) ?? null;
}

/** The lease `me` holds under `epoch`; throws LeaseLost when another owner has it now. */
export function myLease(cp: Checkpoint, epoch: number, me: Owner): Lease {
  const lease = leaseOf(cp, epoch);
  if (!lease || !sameOwner(lease.owner, me)) throw new LeaseLost(`lease ${epoch} on ${cp.shard} lost`);
  return lease;
}

export function sameOwner(a: Owner | null, b: Owner | null): boolean {
  return !!a && !!b && a.execution === b.execution && a.taskIndex === b.taskIndex && a.attempt === b.attempt && a.launch === b.launch;
}

/** Positions done or failed, as sorted ranges. */
export function settledRanges(cp: Pick<Checkpoint, "done" | "failed">): Range[] {
  return cp.failed.length ? rangeAdd(cp.done, cp.failed.map((f) => f.pos)) : cp.done.map(([a, b]) => [a, b] as Range);
}

/** Positions of [start, end) not settled, in order. */
export function* unsettledIn(settled: RangeSet, start: number, end: number): Generator<number> {
  let p = start;
  for (const [a, b] of settled) {
    if (b <= p) continue;
    if (a >= end) break;
    for (; p < Math.min(a, end); p++) yield p;
    p = Math.max(p, b);
  }
  for (; p < end; p++) yield p;
}

/** The first position of [start, end) not settled, or `end`. */
export function firstUnsettled(settled: RangeSet, start: number, end: number): number {
  for (const p of unsettledIn(settled, start, end)) return p;
  return end;
}

/**
 * How the previous owner of a lease ended, as far as the taker knows: "killed" (from outside: a
 * SIGKILL, a timeout, a preemption — not its items' fault), "crashed" (its own doing: an exit, an
 * abort, out of memory), or "unknown" (Cloud Run does not say; counted as a crash, the safe side
 * for a run that must not stall). An owner that stopped on its own released the lease.
 */
export type PreviousEnd = "killed" | "crashed" | "unknown";

export interface TakeOverOptions extends LeaseTerms {
  /** Crashes while an item was in flight before it fails `crashed` (DESIGN.md protocol 9). */
  crashLimit: number;
  /** Run-wide index and key of a position (for the failures this records). */
  describe: (pos: number) => { i: number; key: string };
  /** How the previous owner ended when it still held the lease. @default "unknown" */
  previousEnd?: PreviousEnd;
  /**
   * Output parts of the previous epoch that no checkpoint names yet, found in the store (a
   * "parts" lease): they are committed progress and are adopted.
   */
  adopt?: readonly AdoptedPart[];
}

export interface AdoptedPart {
  ref: PartRef;
  /** Positions the part commits as done, and the failures it records. */
  done: number[];
  failed: FailedItem[];
  executions: number;
  usage: Usage;
  /** The part's sequence number within its epoch. */
  seq: number;
}

/**
 * Takes over the lease of `epoch` (the caller checked `leaseDecision`): a new epoch, `me` as owner.
 *
 * Protocol 9, poison isolation: when the previous owner crashed while holding the lease (a stop
 * releases it), every position it had in flight counts a crash and becomes a suspect. Every other
 * unsettled position below its horizon (it may have started any of them since its last write)
 * becomes a suspect too, without a crash, when the owner is known to have crashed; when its lease
 * merely expired, the takeover records those in flight instead, and they count a crash only if the
 * new owner dies before its first write. Suspects run one at a time, each recorded in flight alone before it
 * starts, so that the next crash is counted against the one item that caused it; a position at
 * `crashLimit` crashes fails `crashed` and the rest of the shard goes on. An owner killed from
 * outside counts nothing against its items.
 */
export function takeOver(cp: Checkpoint, epoch: number, me: Owner, now: number, o: TakeOverOptions): { cp: Checkpoint; crashed: FailedItem[] } {
  if (!leaseOf(cp, epoch)) throw new LeaseLost(`lease ${epoch} on ${cp.shard} is gone`);
  let next: Checkpoint = cp;
  for (const part of o.adopt ?? []) next = adoptPart(next, epoch, part);
  const lease = leaseOf(next, epoch)!;
  const crashes = { ...next.crashes };
  const crashed: FailedItem[] = [];
  let suspects = [...lease.suspects];
  let preRegistered: number[] = [];
  let settled = settledRanges(next);
  if (lease.owner && (o.previousEnd ?? "unknown") !== "killed") {
    const inflight = lease.inflight.filter((p) => !rangeHas(settled, p));
    for (const p of inflight) {
      const n = (crashes[String(p)] ?? 0) + 1;
      crashes[String(p)] = n;
      if (n >= o.crashLimit) {
        crashed.push({
          pos: p,
          ...o.describe(p),
          error: `its task process ended ${n} times while this item was in flight (it exits, runs out of memory, or blocks its process)`,
          attempts: n,
          reason: "crashed",
        });
      }
    }
    // It may also have started any unsettled position it reserved since its last write (the
    // poison among them, more often than not: one that ends its process at once is never in a
    // write). They count no crash now. When the owner is known to have crashed (its own next
    // attempt takes over), they run one at a time, so that the next crash names the item that
    // caused it. When nobody knows how it ended (its lease expired: a kill as likely as a crash),
    // they run at full concurrency, but this very write records them in flight: if the new owner
    // dies before its own first write, they count a crash and run one at a time then. Running the
    // whole window alone after every lost owner made each kill cost a lookahead of items in series.
    const window = [...unsettledIn(settled, lease.start, Math.min(lease.end, lease.horizon))].filter((p) => !inflight.includes(p) && !suspects.includes(p));
    if (o.previousEnd === "crashed") suspects = [...new Set([...suspects, ...inflight, ...window])];
    else {
      suspects = [...new Set([...suspects, ...inflight])];
      preRegistered = window;
    }
  }
  const failed = crashed.length ? [...next.failed, ...crashed] : next.failed;
  settled = settledRanges({ done: next.done, failed });
  suspects = suspects.filter((p) => !rangeHas(settled, p)).sort((a, b) => a - b);
  const fresh: Lease = {
    ...lease,
    owner: me,
    epoch: next.epochSeq + 1,
    heartbeatAt: now,
    leaseTtlMs: o.leaseTtlMs,
    inflight: preRegistered.filter((p) => !rangeHas(settled, p)),
    suspects,
    mode: o.mode,
    namedSeq: 0,
  };
  fresh.horizon = Math.max(horizonFor(settled, fresh, o.lookahead), ...fresh.inflight.map((p) => p + 1));
  const { stop: _stop, stopReason: _why, ...rest } = next;
  const left = firstUnsettled(settled, fresh.start, fresh.end) < fresh.end;
  const leases = next.leases.flatMap((l) => (l.epoch !== epoch ? [l] : left ? [fresh] : []));
  const state = rangeCount(settled) >= next.itemCount ? "done" : "open";
  return {
    cp: withMirror({ ...rest, failed, epochSeq: next.epochSeq + 1, leases: state === "done" ? [] : leases, state, crashes, updatedAt: iso(now) }),
    crashed,
  };
}

/** Names a part of the previous epoch in the checkpoint and marks what it commits. */
function adoptPart(cp: Checkpoint, epoch: number, part: AdoptedPart): Checkpoint {
  if (cp.parts.some((p) => p.name === part.ref.name)) return cp;
  const failed = part.failed.filter((f) => !cp.failed.some((g) => g.pos === f.pos));
  return {
    ...cp,
    parts: [...cp.parts, part.ref],
    done: mutable(rangeAdd(cp.done, part.done)),
    failed: [...cp.failed, ...failed],
    executions: cp.executions + part.executions,
    usage: addUsage(cp.usage, part.usage),
    leases: cp.leases.map((l) => (l.epoch === epoch ? { ...l, namedSeq: Math.max(l.namedSeq, part.seq) } : l)),
  };
}

/** Where a lease's horizon goes: `lookahead` unsettled positions past its first unsettled one. */
export function horizonFor(settled: RangeSet, lease: Pick<Lease, "start" | "end" | "horizon">, lookahead: number): number {
  let n = 0;
  let h = lease.start;
  for (const p of unsettledIn(settled, lease.start, lease.end)) {
    h = p + 1;
    if (++n >= Math.max(1, lookahead)) break;
  }
  return Math.min(lease.end, Math.max(lease.horizon, h));
}

/** Positions of a lease that a thief may take: its unreserved tail `[horizon, end)`. */
export function stealable(lease: Lease): number {
  return Math.max(0, lease.end - lease.horizon);
}

/**
 * A thief (`me`) takes the back half of the largest unreserved tail in the shard, at least
 * `minSize` positions, or a whole lease nobody holds. Null when there is nothing worth taking.
 * The new lease gets the next epoch and reserves its first `lookahead` positions at once.
 */
export function splitOff(cp: Checkpoint, me: Owner, now: number, o: LeaseTerms & { minSize: number; maxLeases?: number }): { cp: Checkpoint; epoch: number } | null {
  if (cp.state === "done") return null;
  // Every lease writes this one object: past a few, their writes (one a second at most on Cloud
  // Storage) collide, and owners that cannot write lose their leases.
  if (o.maxLeases !== undefined && cp.leases.filter((l) => l.owner).length >= o.maxLeases) return null;
  let best: Lease | null = null;
  for (const l of cp.leases) if (l.owner && stealable(l) >= Math.max(1, o.minSize) * 2 && (!best || stealable(l) > stealable(best))) best = l;
  if (!best) {
    // A single unreserved position is still worth taking when the lease is at its last one.
    for (const l of cp.leases) if (l.owner && stealable(l) >= Math.max(1, o.minSize) && (!best || stealable(l) > stealable(best))) best = l;
  }
  if (!best) return null;
  const cut = best.horizon + Math.floor(stealable(best) / 2);
  const epoch = cp.epochSeq + 1;
  const settled = settledRanges(cp);
  const mine: Lease = {
    start: cut,
    end: best.end,
    owner: me,
    epoch,
    heartbeatAt: now,
    leaseTtlMs: o.leaseTtlMs,
    horizon: cut,
    inflight: [],
    suspects: [],
    mode: o.mode,
    namedSeq: 0,
  };
  mine.horizon = horizonFor(settled, mine, o.lookahead);
  const leases = cp.leases.flatMap((l) => (l.epoch === best!.epoch ? [{ ...l, end: cut }, mine] : [l]));
  return { cp: withMirror({ ...cp, epochSeq: epoch, leases, updatedAt: iso(now) }), epoch };
}

export interface Batch {
  /** The part that holds the outputs (and failure lines) of this batch; absent when none. */
  part?: PartRef;
  /** Earlier parts of this epoch written without a checkpoint ("parts" mode), named now. */
  earlierParts?: readonly PartRef[];
  /** Highest part sequence number of this epoch named once this write lands. */
  namedSeq?: number;
  done: readonly number[];
  failed: readonly FailedItem[];
  /** Executions started since the previous write. */
  executions: number;
  /** Step results of unsettled items as the owner knows them now (replaces the stored ones). */
  steps?: Readonly<Record<string, Record<string, unknown>>>;
  usage?: Usage;
  elapsedMs?: number;
  /** Positions started and not settled at this write. */
  inflight: readonly number[];
  /** The owner's new horizon (it may only grow, and never past the lease's end). */
  horizon?: number;
  /** The suspects still to run one at a time. */
  suspects?: readonly number[];
  /** The owner stops for a budget (recorded so the orchestrator can say so). */
  stop?: { kind: "budget"; reason: string };
  /** The owner stops holding the lease (what is left of it can be taken by anyone). */
  release?: boolean;
}

/**
 * Protocol 2: the checkpoint names the part (already written) and marks its items done, under the
 * lease of `epoch`; throws LeaseLost when `me` no longer holds it. A lease whose positions are all
 * settled is dropped; the shard is done when every position is.
 */
export function commit(cp: Checkpoint, epoch: number, me: Owner, batch: Batch, now: number): Checkpoint {
  const lease = myLease(cp, epoch, me);
  for (const p of batch.done) if (p < lease.start || p >= lease.end) throw new LeaseLost(`position ${p} of ${cp.shard} is not in lease ${epoch} [${lease.start}, ${lease.end})`);
  const newParts = [...(batch.earlierParts ?? []), ...(batch.part ? [batch.part] : [])].filter((p) => !cp.parts.some((q) => q.name === p.name));
  const done = mutable(batch.done.length ? rangeAdd(cp.done, batch.done) : cp.done);
  const failedNew = batch.failed.filter((f) => !cp.failed.some((g) => g.pos === f.pos));
  const failed = failedNew.length ? [...cp.failed, ...failedNew] : cp.failed;
  const settled = settledRanges({ done, failed });
  const settledCount = rangeCount(settled);
  const state = settledCount >= cp.itemCount ? "done" : "open";
  const steps: Record<string, Record<string, unknown>> = {};
  if (state === "open") {
    for (const [pos, s] of Object.entries({ ...cp.steps, ...(batch.steps ?? {}) })) if (!rangeHas(settled, Number(pos))) steps[pos] = s;
  }
  const leases: Lease[] = [];
  for (const l of cp.leases) {
    if (l.epoch !== epoch) {
      if (firstUnsettled(settled, l.start, l.end) < l.end) leases.push(l);
      continue;
    }
    const left = firstUnsettled(settled, l.start, l.end) < l.end;
    if (!left) continue;
    const horizon = Math.min(l.end, Math.max(l.horizon, batch.horizon ?? l.horizon));
    leases.push({
      ...l,
      owner: batch.release ? null : l.owner,
      heartbeatAt: now,
      horizon: batch.release ? Math.max(l.start, firstUnsettled(settled, l.start, l.end)) : horizon,
      inflight: batch.release ? [] : batch.inflight.filter((p) => !rangeHas(settled, p)),
      suspects: (batch.suspects ?? l.suspects).filter((p) => !rangeHas(settled, p)),
      namedSeq: Math.max(l.namedSeq, batch.namedSeq ?? 0),
    });
  }
  return withMirror({
    ...cp,
    usage: batch.usage ? addUsage(cp.usage, batch.usage) : cp.usage,
    elapsedMs: cp.elapsedMs + (batch.elapsedMs ?? 0),
    ...(batch.stop && state === "open" ? { stop: batch.stop.kind, stopReason: batch.stop.reason } : {}),
    steps,
    done,
    failed,
    parts: newParts.length ? [...cp.parts, ...newParts] : cp.parts,
    executions: cp.executions + batch.executions,
    leases: state === "done" ? [] : leases,
    state,
    updatedAt: iso(now),
  });
}

/** Mirrors the newest lease into the v1 fields (epoch, owner, heartbeat, TTL) that readers show. */
function withMirror(cp: Checkpoint): Checkpoint {
  const top = cp.leases.reduce<Lease | null>((m, l) => (!m || l.epoch > m.epoch ? l : m), null);
  if (!top) return { ...cp, owner: null };
  return { ...cp, epoch: top.epoch, owner: top.owner, heartbeatAt: top.heartbeatAt, leaseTtlMs: top.leaseTtlMs };
}

/** Counts a checkpoint shows without reading its parts. */
export function checkpointCounts(cp: Checkpoint): { done: number; failed: number } {
  return { done: rangeCount(cp.done), failed: cp.failed.length };
}

/** The smallest gap between two writes of one checkpoint on Cloud Storage: one write per second. */
export const MIN_WRITE_GAP_MS = 1000;

/**
 * Problems of a checkpoint read back for a shard of `itemCount` items: ranges within the shard,
 * counts that add up, no position both done and failed, leases that do not overlap. Empty when
 * it is sound. Whether named parts exist is for the caller (it needs the store).
 */
export function checkpointProblems(cp: Checkpoint, itemCount: number): string[] {
  const out: string[] = [];
  if (cp.itemCount !== itemCount) out.push(`itemCount is ${cp.itemCount}, but the shard has ${itemCount} items`);
  for (const [a, b] of cp.done) if (a < 0 || b > itemCount || b <= a) out.push(`done range [${a}, ${b}) is outside the shard's ${itemCount} items`);
  const doneCount = rangeCount(cp.done);
  const failedPos = new Set<number>();
  for (const f of cp.failed) {
    if (f.pos >= itemCount) out.push(`failed position ${f.pos} is outside the shard's ${itemCount} items`);
    if (failedPos.has(f.pos)) out.push(`position ${f.pos} is failed twice`);
    failedPos.add(f.pos);
    if (rangeHas(cp.done, f.pos)) out.push(`position ${f.pos} is both done and failed`);
  }
  if (doneCount + failedPos.size > itemCount) out.push(`${doneCount} done and ${failedPos.size} failed add up to more than the shard's ${itemCount} items`);
  const named = cp.parts.reduce((n, p) => n + p.count, 0);
  if (named !== doneCount) out.push(`its parts hold ${named} outputs, but ${doneCount} positions are done`);
  let covered = 0;
  const sorted = [...cp.leases].sort((a, b) => a.start - b.start);
  for (const l of sorted) {
    if (l.start < covered || l.end > itemCount || l.end < l.start) out.push(`lease ${l.epoch} [${l.start}, ${l.end}) overlaps another or leaves the shard`);
    covered = Math.max(covered, l.end);
  }
  if (cp.state === "done" && doneCount + failedPos.size < itemCount && !cp.corrupt) out.push(`it says done, but ${itemCount - doneCount - failedPos.size} positions are neither done nor failed`);
  return out;
}

/** Custom metadata of a checkpoint object: what status reads from a listing, without the body. */
export function checkpointMetadata(cp: Checkpoint): Record<string, string> {
  const { done, failed } = checkpointCounts(cp);
  const live = cp.leases.filter((l) => l.mode === "parts").map((l) => `${l.epoch}:${l.namedSeq}`);
  // Per epoch, the highest part sequence named (parts of an epoch are named 1..k in order): any
  // part above it is live progress of a "parts" lease, or an orphan.
  const named = new Map<number, number>();
  for (const p of cp.parts) {
    const m = /^(\d+)-(\d+)/.exec(p.name);
    if (m) named.set(Number(m[1]), Math.max(named.get(Number(m[1])) ?? 0, Number(m[2])));
  }
  return {
    st: cp.state,
    n: String(cp.itemCount),
    d: String(done),
    f: String(failed),
    x: String(cp.executions),
    tk: String(cp.usage.tokens),
    usd: String(cp.usage.usd),
    own: String(cp.leases.filter((l) => l.owner).length),
    ep: String(cp.epochSeq),
    ...(cp.owner ? { ow: `${cp.owner.execution}/${cp.owner.taskIndex}#${cp.owner.attempt}` } : {}),
    ...(live.length ? { live: live.join(",") } : {}),
    ...(named.size ? { ps: [...named].map(([e, k]) => `${e}:${k}`).join(",") } : {}),
    ...(cp.stop ? { stop: cp.stop } : {}),
    ...(cp.corrupt ? { corrupt: "1" } : {}),
  };
}

/** Merges two sets of done positions (for readers combining a checkpoint with live parts). */
export function mergeDone(a: RangeSet, b: RangeSet): Range[] {
  return rangeUnion(a, b);
}
