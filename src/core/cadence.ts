/**
 * How often tasks write, adapted to the run's size and to what the store allows. Cloud Storage
 * takes about one write a second to one object name and about 1,000 writes a second per bucket at
 * first; the fs store has no such limits. A launch's cadence is fixed when it starts (the tasks
 * read it from the launch record), so every task of a launch writes at the same rhythm.
 */

/** What a store declares about its write limits (the ObjectStore port's `limits`). */
export interface WriteLimits {
  /** Shortest gap between two mutations of one object name, in ms (0: none). */
  objectWriteGapMs: number;
  /** Writes a second the bucket takes before it refuses (Infinity: no limit). */
  writesPerSecond: number;
}

/** One write a second to an object, with a margin for the clocks of different processes. */
export const PACED_WRITE_GAP_MS = 1100;

/**
 * How long to leave an object alone after a write before writing it again: 0 on a store with no
 * per-object limit (a folder), else a little over the store's gap. Writers stamp the time of each
 * write in the object (or read `updated`) and wait out the rest of this before the next one.
 */
export function pacedWriteGapMs(limits: Pick<WriteLimits, "objectWriteGapMs">): number {
  return limits.objectWriteGapMs > 0 ? Math.max(PACED_WRITE_GAP_MS, limits.objectWriteGapMs + 100) : 0;
}

/** How long after its stamp a write is taken to have landed at the latest (ms): a busy process sends late. */
export const SEND_LAG_MS = 2000;

/**
 * When another writer's write, stamped `stampedAt` in the object, had landed at the latest, as a
 * reader that read it at `readAt` knows: before the read, and (taken as a bound) within SEND_LAG_MS
 * of its stamp. The stamp alone is not enough: a writer stamps before it sends, and under load it
 * may send long after.
 */
export function landedBy(readAt: number, stampedAt: number): number {
  return Math.min(readAt, stampedAt + SEND_LAG_MS);
}

export interface Cadence {
  /** How long a finished item may stay uncommitted: one output part per lease per interval at most. */
  progressMs: number;
  /** A lease not renewed for this long may be taken over by anyone. */
  leaseTtlMs: number;
}

/**
 * Finished items are durable within about 200 ms where a write may wait (Cloud Storage's one write
 * a second per object), and within 100 ms where nothing waits (a folder): a crash then repeats
 * little besides the items in flight.
 */
export const BASE_PROGRESS_MS = 200;
export const BASE_PROGRESS_NO_GAP_MS = 100;
/** @default 30000 */
export const BASE_LEASE_TTL_MS = 30_000;
/** The share of the bucket's write rate the tasks of one run may use together. */
export const BUCKET_SHARE = 0.5;
/** Writes a task makes per progress interval, on average (a part, now and then a checkpoint). */
const WRITES_PER_TICK = 1.5;

/**
 * The cadence for `tasks` tasks: at least `base`, and slow enough that all tasks together stay
 * within BUCKET_SHARE of the bucket's write rate; the lease TTL covers at least six intervals, so
 * that a lease renewed every third of it is renewed by ordinary progress writes.
 */
export function launchCadence(limits: WriteLimits, tasks: number, base?: number, baseTtl = BASE_LEASE_TTL_MS): Cadence {
  let progressMs = base ?? (limits.objectWriteGapMs > 0 ? BASE_PROGRESS_MS : BASE_PROGRESS_NO_GAP_MS);
  if (Number.isFinite(limits.writesPerSecond) && limits.writesPerSecond > 0) {
    const perTaskPerSecond = (limits.writesPerSecond * BUCKET_SHARE) / Math.max(1, tasks);
    progressMs = Math.max(progressMs, Math.ceil((WRITES_PER_TICK / perTaskPerSecond) * 1000));
  }
  return { progressMs, leaseTtlMs: Math.max(baseTtl, progressMs * 6) };
}

/**
 * How many positions an owner reserves past its first unsettled one: enough for its slots and for
 * the items it starts before it may write the checkpoint again, so that it never waits for its own
 * horizon; no more, so that thieves find work.
 */
export function lookaheadFor(o: { slots: number; startsPerSecond: number; writeGapMs: number; progressMs: number }): number {
  const window = Math.max(o.writeGapMs, o.progressMs) / 1000;
  return Math.max(2 * o.slots, Math.ceil(2 * o.startsPerSecond * window));
}

/**
 * Fewest positions worth splitting off: a split costs a few store round trips; below that, the
 * owner would have run them before the thief could start.
 */
export function minSplit(meanItemMs: number, roundTripMs: number): number {
  if (!(meanItemMs > 0)) return 1;
  return Math.max(1, Math.ceil((4 * roundTripMs) / meanItemMs));
}

/** Writes a task makes as it starts (its first checkpoint, its task record, a claim or two). */
const WRITES_AT_START = 3;

/**
 * How long the tasks of a launch spread their first writes over (ms; 0 when the bucket takes
 * them at once): every task of a launch starts within a moment on Cloud Run, and 1,000 tasks
 * writing three objects each at once are 3,000 writes in a second, beyond a new bucket's 1,000.
 * Each first attempt waits a random part of this before its first claim.
 */
export function startSpreadMs(limits: WriteLimits, tasks: number): number {
  if (!Number.isFinite(limits.writesPerSecond) || limits.writesPerSecond <= 0) return 0;
  const seconds = (tasks * WRITES_AT_START) / (limits.writesPerSecond * BUCKET_SHARE);
  return seconds <= 1 ? 0 : Math.ceil(seconds * 1000);
}
