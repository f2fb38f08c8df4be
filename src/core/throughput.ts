/**
 * Items over time, from what the store already holds: every output part is written once, when
 * its items finished, and a listing gives its write time and (in its metadata) how many items it
 * holds; a checkpoint's write time covers what it settled without a part (crashed or corrupt
 * items, parts written before parts carried counts). So a finished run's chart has a point per
 * part, not a straight line from its start to its end, and nothing is read but listings.
 */

/** One point of the chart: items settled by `t`. */
export interface HistoryPoint {
  /** ISO time of the point. */
  t: string;
  succeeded: number;
  failed: number;
}

/** Items settled at one moment. */
export interface SettledAt {
  /** ms since the epoch, on the store's clock. */
  at: number;
  succeeded: number;
  failed: number;
}

/** One shard as its listing shows it: its checkpoint and its output parts, with their write times. */
export interface ShardTimes {
  /** The shard's number. */
  shard: number;
  /** When the checkpoint was last written, and what it counts as settled. */
  checkpoint: SettledAt;
  /**
   * Output parts the checkpoint names (`named`), and parts a live lease wrote since its last
   * checkpoint (committed, counted on top of the checkpoint's numbers).
   */
  parts: (SettledAt & { named: boolean })[];
}

export interface ItemsOverTimeInput {
  createdAt: string;
  /** The end of the run's last drive; without it the chart runs to `now`. */
  finishedAt?: string;
  /** ms since the epoch: the end of a run still going. */
  now: number;
  shards: readonly ShardTimes[];
  /**
   * Failures of earlier rounds that a rerun of failed items re-planned, at the time it did: from
   * then on they count no more (status counts them so).
   */
  superseded?: readonly { at: number; failed: number }[];
  /** The numbers of the last point, as status counts them (the chart must end where status is). */
  final: { succeeded: number; failed: number };
  /**
   * At most this many points; beyond it, the last point of each of as many time slices.
   * @default 400
   */
  maxPoints?: number;
}

/** What each part and checkpoint settled, in time order (checkpoints count what their parts do not). */
export function settledEvents(shards: readonly ShardTimes[]): SettledAt[] {
  const out: SettledAt[] = [];
  for (const s of shards) {
    let succeeded = 0;
    let failed = 0;
    for (const p of s.parts) {
      if (p.at > 0 && (p.succeeded || p.failed)) out.push({ at: p.at, succeeded: p.succeeded, failed: p.failed });
      if (p.named) {
        succeeded += p.succeeded;
        failed += p.failed;
      }
    }
    const rest = { at: s.checkpoint.at, succeeded: Math.max(0, s.checkpoint.succeeded - succeeded), failed: Math.max(0, s.checkpoint.failed - failed) };
    if (rest.at > 0 && (rest.succeeded || rest.failed)) out.push(rest);
  }
  return out.sort((a, b) => a.at - b.at);
}

/**
 * The chart's points: the run's start at zero, the running totals after every settled event (at
 * most `maxPoints`), and the end (finish or now) at the totals status gives.
 */
export function itemsOverTime(input: ItemsOverTimeInput): HistoryPoint[] {
  const maxPoints = input.maxPoints ?? 400;
  if (!Number.isInteger(maxPoints) || maxPoints < 3) throw new TypeError(`Expected \`maxPoints\` to be a whole number from 3 up, got ${maxPoints}`);
  const start = Date.parse(input.createdAt);
  if (!Number.isFinite(start)) return [];
  const events: SettledAt[] = [...settledEvents(input.shards), ...(input.superseded ?? []).map((s) => ({ at: s.at, succeeded: 0, failed: -s.failed }))]
    .filter((e) => Number.isFinite(e.at))
    .sort((a, b) => a.at - b.at);
  const finished = input.finishedAt !== undefined ? Date.parse(input.finishedAt) : NaN;
  const lastAt = events.length ? events[events.length - 1]!.at : start;
  // Store and service clocks differ a little: the end is never drawn before the last event.
  const end = Math.max(Number.isFinite(finished) ? finished : input.now, lastAt, start);

  const points: { at: number; succeeded: number; failed: number }[] = [{ at: start, succeeded: 0, failed: 0 }];
  let succeeded = 0;
  let failed = 0;
  // Time slices: the last running total in each one. Events before the start (clock skew) go in the first.
  const span = Math.max(1, end - start);
  const slices = maxPoints - 2;
  let slice = -1;
  for (const e of events) {
    succeeded += e.succeeded;
    failed = Math.max(0, failed + e.failed);
    const at = Math.max(start, e.at);
    const k = Math.min(slices - 1, Math.floor(((at - start) / span) * slices));
    const point = { at, succeeded, failed };
    if (k === slice && points.length > 1) points[points.length - 1] = point;
    else points.push(point);
    slice = k;
  }
  points.push({ at: end, succeeded: input.final.succeeded, failed: input.final.failed });
  return points.map((p) => ({ t: new Date(p.at).toISOString(), succeeded: p.succeeded, failed: p.failed }));
}

/** Items settled per minute between the first and the last point, or 0. */
export function itemsPerMinute(points: readonly HistoryPoint[]): number {
  if (points.length < 2) return 0;
  const first = points[0]!;
  const last = points[points.length - 1]!;
  const ms = Date.parse(last.t) - Date.parse(first.t);
  const items = last.succeeded + last.failed - first.succeeded - first.failed;
  return ms > 0 && items > 0 ? (items / ms) * 60_000 : 0;
}
