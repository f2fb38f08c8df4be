/**
 * What a run's page shows, from one listing of the run's shards: its status, its failed items,
 * and its items over time (core/throughput.ts). Reading them one by one would list the shards
 * three times.
 */
import { isLiveState } from "../core/states.js";
import { computeStatus, type FailedItemView, type RunStatus } from "../core/status.js";
import { itemsOverTime, type HistoryPoint, type ShardTimes } from "../core/throughput.js";
import type { LaunchRecord, RunRecord } from "../core/model.js";
import type { Launcher } from "../launcher/port.js";
import type { ObjectStore } from "../store/port.js";
import { readFailedItems } from "./drive.js";
import { launchStatus, listShards, readLaunches, readShardEntries } from "./read.js";

export interface RunPageData {
  status: RunStatus;
  /** Failed items as they stand, newest round winning (the dead letter). */
  failed: FailedItemView[];
  /** Items settled over time, from the run's start to its end (or `now`). */
  history: HistoryPoint[];
}

export interface ReadRunPageDataOptions {
  launcher?: Launcher;
  /** The end of the chart of a run still going. @default new Date() */
  now?: Date;
}

export async function readRunPageData(store: ObjectStore, run: RunRecord, options: ReadRunPageDataOptions = {}): Promise<RunPageData> {
  const [listing, launches, entries] = await Promise.all([
    listShards(store, run, { times: true }),
    readLaunches(store, run.runId),
    // The page draws every shard, however many (one read per plan round).
    readShardEntries(store, run),
  ]);
  const [views, failed] = await Promise.all([
    Promise.all(launches.map((l) => launchStatus(l.value, options.launcher))),
    readFailedItems(store, run, listing.summaries),
  ]);
  const status = computeStatus(run, listing.summaries, views, entries);
  const history = itemsOverTime({
    createdAt: run.createdAt,
    ...(run.finishedAt && !isLiveState(status.state) ? { finishedAt: run.finishedAt } : {}),
    now: (options.now ?? new Date()).getTime(),
    shards: listing.times ?? [],
    superseded: supersededAt(run, launches.map((l) => l.value), listing.times ?? []),
    final: { succeeded: status.items.succeeded, failed: status.items.failed },
  });
  return { status, failed, history };
}

/**
 * When each rerun of failed items took over earlier failures: the start of the first launch that
 * ran its round's shards, or else the first write in that round.
 */
function supersededAt(run: RunRecord, launches: readonly LaunchRecord[], times: readonly ShardTimes[]): { at: number; failed: number }[] {
  const out: { at: number; failed: number }[] = [];
  for (const round of run.plan.rounds) {
    if (!round.superseded) continue;
    const launch = launches
      .filter((l) => l.shards.some(([a, b]) => a <= round.firstShard && round.firstShard < b))
      .map((l) => Date.parse(l.createdAt))
      .filter(Number.isFinite)
      .sort((a, b) => a - b)[0];
    let at = launch;
    if (at === undefined) {
      const inRound = times.filter((t) => t.shard >= round.firstShard && t.shard < round.firstShard + round.shards);
      const first = inRound.reduce((m, t) => t.parts.reduce((mm, p) => (p.at > 0 ? Math.min(mm, p.at) : mm), t.checkpoint.at > 0 ? Math.min(m, t.checkpoint.at) : m), Infinity);
      at = Number.isFinite(first) ? first : undefined;
    }
    if (at !== undefined) out.push({ at, failed: round.superseded });
  }
  return out;
}
