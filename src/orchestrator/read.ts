/**
 * Reading a run's state back from the store, every object parsed with its schema. Status costs a
 * listing of the run's shards folder with custom metadata (a thousand objects a request, split by
 * shard-number prefix and read in parallel at scale), never one read per shard.
 */
import pLimit from "p-limit";
import { UsageError } from "../core/errors.js";
import { isRunId, shardId } from "../core/ids.js";
import { keys, unnamedParts } from "../core/keys.js";
import { Checkpoint, LaunchClaim, LaunchRecord, RunRecord, ShardEntry } from "../core/model.js";
import { computeStatus, summarizeCheckpoint, type LaunchStatus, type RunStatus, type ShardSummary } from "../core/status.js";
import type { ShardTimes } from "../core/throughput.js";
import type { Launcher } from "../launcher/port.js";
import { getJson, parseJsonl, type Versioned } from "../store/json.js";
import { listAll, type ListedObject, type ListOptions, type ObjectStore } from "../store/port.js";

export function assertRunId(runId: string): void {
  if (!isRunId(runId)) throw new UsageError(`run id "${runId}" is not valid: expected one like 20261122-020000-summarize-docs-ab12`);
}

export async function readRun(store: ObjectStore, runId: string): Promise<Versioned<RunRecord>> {
  assertRunId(runId);
  const run = await getJson(store, keys.run(runId), RunRecord);
  if (!run) throw new UsageError(`no run ${runId} in ${store.url}`);
  return run;
}

/** Checkpoints of the given shards (null where a shard has none yet). */
export async function readCheckpoints(store: ObjectStore, runId: string, shards: Iterable<string>): Promise<Map<string, Checkpoint | null>> {
  const limit = pLimit(16);
  const entries = await Promise.all([...shards].map((s) => limit(async () => [s, (await getJson(store, keys.checkpoint(runId, s), Checkpoint))?.value ?? null] as const)));
  return new Map(entries);
}

/** Every shard entry of the run's plan rounds (one read per round). */
export async function readShardEntries(store: ObjectStore, run: RunRecord): Promise<ShardEntry[]> {
  const out: ShardEntry[] = [];
  for (const round of run.plan.rounds) {
    const key = keys.planRound(run.runId, round.round);
    const obj = await store.get(key);
    if (obj) out.push(...parseJsonl(obj.bytes, ShardEntry, key));
  }
  return out;
}

/**
 * A run's launch records, oldest first. A live record without its execution gets it from the
 * launch's claim (protocol 6): the record is written only at its start and end.
 */
export async function readLaunches(store: ObjectStore, runId: string): Promise<Versioned<LaunchRecord>[]> {
  const out: Versioned<LaunchRecord>[] = [];
  const prefix = keys.launchesPrefix(runId);
  // One level: claims, task records and budget banks live below (launches/<n>/…), and a launch
  // of 10,000 tasks has 10,000 task records.
  for await (const key of listAll(store, prefix, { delimiter: "/" })) {
    // Records only.
    if (!/^\d+\.json$/.test(key.slice(prefix.length))) continue;
    const l = await getJson(store, key, LaunchRecord);
    if (!l) continue;
    if (!l.value.execution && (l.value.state === "pending" || l.value.state === "running")) {
      const claim = await getJson(store, keys.launchClaim(runId, l.value.n), LaunchClaim);
      if (claim?.value.execution) l.value = { ...l.value, execution: claim.value.execution, state: "running" };
    }
    out.push(l);
  }
  return out.sort((a, b) => a.value.n - b.value.n);
}

/** The launcher's view of a launch still recorded as live; the record's own otherwise. */
export async function launchStatus(record: LaunchRecord, launcher?: Launcher): Promise<LaunchStatus> {
  const base: LaunchStatus = {
    n: record.n,
    taskCount: record.taskCount,
    state: record.state,
    createdAt: record.createdAt,
    ...(record.finishedAt ? { finishedAt: record.finishedAt } : {}),
    ...(record.execution ? { execution: record.execution } : {}),
  };
  if (!launcher || !record.execution || launcher.kind !== record.launcher) return base;
  const url = launcher.executionUrl?.(record.execution);
  if (url) base.url = url;
  const ex = await launcher.getExecution(record.execution);
  if (!ex) return base;
  const live = record.state === "pending" || record.state === "running";
  return {
    ...base,
    ...(live ? { state: ex.state } : {}),
    tasks: { running: ex.running, succeeded: ex.succeeded, failed: ex.failed },
    taskList: ex.tasks.map((t) => ({
      index: t.index,
      state: t.state,
      attempts: t.attempts,
      ...(t.lastExitCode !== undefined ? { lastExitCode: t.lastExitCode } : {}),
      ...(t.timeouts !== undefined ? { timeouts: t.timeouts } : {}),
      ...(t.lastExit ? { lastExit: t.lastExit } : {}),
    })),
    ...(ex.url ? { url: ex.url } : {}),
  };
}

export interface ShardListing {
  summaries: ShardSummary[];
  /**
   * Output parts no checkpoint names and no live lease is writing: left by dead or fenced owners.
   * Found only with `parts: "all"`.
   */
  orphans: string[];
  /** Store requests the listing took (for the scale bench). */
  requests: number;
  /** With `times`: each listed shard's checkpoint and counted parts with their write times (charts). */
  times?: ShardTimes[];
}

export interface ListShardsOptions {
  /**
   * Also return the write times of checkpoints and counted output parts (no extra request, but
   * it lists every part: implies `parts: "all"`).
   * @default false
   */
  times?: boolean;
  /**
   * Which output parts to list. "all": every part of every shard, which finds orphans and costs
   * a page per 1,000 parts (the finish and `output --check`). "live": checkpoints only, a page per
   * 1,000 shards, plus one small listing per open lease that writes parts, for the items it
   * committed since its checkpoint; with more than LIVE_PART_LOOKUPS such leases those are
   * skipped, and their shards count as of their last checkpoint (status and driving at scale).
   * @default "live" ("all" with `times`, or for a run of up to 1,000 items and shards together)
   */
  parts?: "all" | "live";
}

interface PartSeen {
  key: string;
  epoch: number;
  seq: number;
  meta: Record<string, string>;
  updated: number;
}

/** Shards per listing request when a run is large: a prefix like `s001` holds shards 1000-1999. */
const PREFIX_SPLIT_SHARDS = 1000;
/** Objects in one list page: a run with fewer items and shards together is listed whole. */
const ONE_PAGE = 1000;
/** Open "parts" leases whose live parts a "live" listing looks up (one request each). */
export const LIVE_PART_LOOKUPS = 64;

/**
 * Summaries of every shard that has a checkpoint, from listings with metadata. A checkpoint whose
 * listing carries no metadata (written by an older shardrun, or a store without metadata) is read.
 */
export async function listShards(store: ObjectStore, run: RunRecord, options: ListShardsOptions = {}): Promise<ShardListing> {
  const base = keys.shardsPrefix(run.runId);
  // A run this small fits one page of everything: cheaper than a page of checkpoints and lookups.
  const all = options.times === true || options.parts === "all" || run.plan.totalItems + run.plan.shardCount <= ONE_PAGE;
  const prefixes =
    run.plan.shardCount > PREFIX_SPLIT_SHARDS
      ? Array.from({ length: Math.ceil(run.plan.shardCount / 1000) }, (_, k) => base + shardId(k * 1000).slice(0, 4))
      : [base];
  let requests = 0;
  const objects: ListedObject[] = [];
  const limit = pLimit(16);
  const listing = async (prefix: string, more: Omit<ListOptions, "pageToken" | "withMetadata"> = {}) => {
    let pageToken: string | undefined;
    do {
      const page = await store.list(prefix, { ...more, withMetadata: true, ...(pageToken ? { pageToken } : {}) });
      requests++;
      objects.push(...(page.objects ?? page.keys.map((key) => ({ key, generation: "0", size: 0, metadata: {}, updated: 0 }))));
      pageToken = page.nextPageToken;
    } while (pageToken);
  };
  await Promise.all(prefixes.map((prefix) => limit(() => listing(prefix, all ? {} : { matchGlob: `${base}*/checkpoint.json` }))));
  if (!all) {
    // Live progress of "parts" leases: the parts each committed above what its checkpoint names.
    const lookups: { shard: string; epoch: number; seq: number }[] = [];
    for (const o of objects) {
      const m = /^s(\d{6})\/checkpoint\.json$/.exec(o.key.slice(base.length));
      if (!m || o.metadata.st === "done") continue;
      for (const [epoch, seq] of seqMap(o.metadata.live)) lookups.push({ shard: `s${m[1]}`, epoch, seq });
    }
    if (lookups.length <= LIVE_PART_LOOKUPS) {
      await Promise.all(
        lookups.map((l) =>
          limit(() => {
            const { prefix, startOffset } = unnamedParts(run.runId, l.shard, l.epoch, l.seq);
            return listing(prefix, { startOffset });
          }),
        ),
      );
    }
  }
  const cps = new Map<number, ListedObject>();
  const parts = new Map<number, PartSeen[]>();
  for (const o of objects) {
    const rest = o.key.slice(base.length);
    const m = /^s(\d{6})\/(checkpoint\.json|out\/(\d+)-(\d+)\.jsonl)$/.exec(rest);
    if (!m) continue;
    const n = Number(m[1]);
    if (m[2] === "checkpoint.json") cps.set(n, o);
    else (parts.get(n) ?? parts.set(n, []).get(n)!).push({ key: o.key, epoch: Number(m[3]), seq: Number(m[4]), meta: o.metadata, updated: o.updated });
  }
  const summaries: ShardSummary[] = [];
  const orphans: string[] = [];
  const unread: number[] = [];
  const times: ShardTimes[] | undefined = options.times ? [] : undefined;
  for (const [n, o] of cps) {
    const m = o.metadata;
    if (!m.st) {
      unread.push(n);
      continue;
    }
    const s: ShardSummary = {
      n,
      id: shardId(n),
      state: m.st === "done" ? "done" : "open",
      items: num(m.n),
      done: num(m.d),
      failed: num(m.f),
      executions: num(m.x),
      usage: { tokens: num(m.tk), usd: num(m.usd) },
      owners: num(m.own),
      epoch: num(m.ep),
      ...(m.ow ? { owner: m.ow } : {}),
      ...(m.stop ? { stop: true } : {}),
      ...(m.corrupt ? { corrupt: true } : {}),
    };
    const live = seqMap(m.live);
    const named = seqMap(m.ps);
    const shardTimes: ShardTimes | undefined = times ? { shard: n, checkpoint: { at: o.updated, succeeded: s.done, failed: s.failed }, parts: [] } : undefined;
    for (const p of parts.get(n) ?? []) {
      const isNamed = (named.get(p.epoch) ?? 0) >= p.seq;
      const isLive = !isNamed && live.has(p.epoch) && p.seq > live.get(p.epoch)!;
      if (isNamed || isLive) shardTimes?.parts.push({ at: p.updated, succeeded: num(p.meta.n), failed: num(p.meta.f), named: isNamed });
      if (isNamed) continue;
      if (isLive) {
        // Live progress of a "parts" lease: committed, named by the next checkpoint write.
        s.done += num(p.meta.n);
        s.failed += num(p.meta.f);
        s.executions += num(p.meta.x);
        s.usage = { tokens: s.usage.tokens + num(p.meta.tk), usd: s.usage.usd + num(p.meta.usd) };
      } else orphans.push(p.key);
    }
    summaries.push(s);
    if (shardTimes) times!.push(shardTimes);
  }
  if (unread.length) {
    const read = await readCheckpoints(store, run.runId, unread.map((n) => shardId(n)));
    requests += unread.length;
    for (const n of unread) {
      const cp = read.get(shardId(n));
      if (cp) summaries.push(summarizeCheckpoint(n, cp));
    }
  }
  summaries.sort((a, b) => a.n - b.n);
  return { summaries, orphans, requests, ...(times ? { times } : {}) };
}

const num = (v: string | undefined) => (v ? Number(v) || 0 : 0);

function seqMap(v: string | undefined): Map<number, number> {
  const out = new Map<number, number>();
  for (const pair of (v ?? "").split(",")) {
    const [e, k] = pair.split(":");
    if (e && k) out.set(Number(e), Number(k));
  }
  return out;
}

/** Runs up to this many shards get a per-shard list in their status unless told otherwise. */
export const SHARD_LIST_AUTO = 2000;

export interface StatusOptions {
  /**
   * Include a per-shard list (one more read per plan round).
   * @default true for runs of up to 2,000 shards
   */
  shards?: boolean;
}

export async function readRunStatus(store: ObjectStore, runId: string, launcher?: Launcher, options: StatusOptions = {}): Promise<RunStatus> {
  const run = await readRun(store, runId);
  return statusOf(store, run.value, launcher, options);
}

export async function statusOf(store: ObjectStore, run: RunRecord, launcher?: Launcher, options: StatusOptions = {}): Promise<RunStatus> {
  const [listing, launches, entries] = await Promise.all([
    listShards(store, run),
    readLaunches(store, run.runId),
    (options.shards ?? run.plan.shardCount <= SHARD_LIST_AUTO) ? readShardEntries(store, run) : Promise.resolve(undefined),
  ]);
  const views = await Promise.all(launches.map((l) => launchStatus(l.value, launcher)));
  return computeStatus(run, listing.summaries, views, entries);
}
