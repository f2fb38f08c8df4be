/**
 * The runs index: one small object per run, `index/runs/<day it was created>/<runId>`, whose
 * custom metadata (and body) hold what a list of runs shows. Listing the newest runs reads the
 * newest days only: a few list calls whatever the number of runs, instead of one read of every
 * run.json. A run enters the index when its plan commits (or when planning starts, as `planning`),
 * and its entry is rewritten on every state change. run.json stays the truth; the index may lag
 * it by one write.
 *
 * Live markers (`index/live/<runId>`) say which runs are being driven, for reconcile.
 */
import pLimit from "p-limit";
import { z } from "zod";
import { pacedWriteGapMs } from "../core/cadence.js";
import { errorMessage, PreconditionFailed, UsageError } from "../core/errors.js";
import { isRunId, RUN_ID_PATTERN } from "../core/ids.js";
import { indexDay, keys, runDay } from "../core/keys.js";
import { RunIndexEntry, RunRecord, RunState } from "../core/model.js";
import { sleep } from "../core/time.js";
import { formatZodError } from "../core/zod-format.js";
import { getJson } from "../store/json.js";
import { listAll, listPrefixes, type Generation, type ListOptions, type ListPage, type ObjectStore, type PutOptions } from "../store/port.js";

/** Reads of entry bodies in flight (stores without listed metadata). */
const READS = 16;

/**
 * Custom metadata keys of an entry: Cloud Storage's rules (lowercase letters, digits, _ and -),
 * values strings. The same fields as RunIndexEntry.
 */
const META = {
  runId: "run_id",
  job: "job",
  state: "state",
  createdAt: "created_at",
  finishedAt: "finished_at",
  items: "items",
  failed: "failed",
  trigger: "trigger",
  /** Set on entries in state `planning`: the planner's last sign of life. */
  heartbeatAt: "heartbeat_at",
  /** Set on entries of runs whose run.json could not be read when they were indexed. */
  unreadable: "unreadable",
} as const;

/** Until the port's metadata lands on every adapter (branch `store`), the options and page it adds. */
type MetadataPutOptions = PutOptions & { metadata?: Record<string, string> };
type ListedObject = { key: string; metadata?: Record<string, string> };
type MetadataListPage = ListPage & { objects?: ListedObject[] };

/** A run whose index entry or run.json could not be read: listed, never a failed list. */
export interface UnreadableRun {
  runId: string;
  state: "unreadable";
  reason: string;
  /** The object that could not be read. */
  object: string;
  /** When it was created, as far as its id says. */
  createdAt: string;
}

export type RunListEntry = (RunIndexEntry & { heartbeatAt?: string }) | UnreadableRun;

/**
 * What the backfill needs of a run.json, of any version (v1 runs predate the index): read
 * leniently, so that an older run is listed rather than called unreadable.
 */
const IndexableRun = z.object({
  runId: z.string(),
  job: z.object({ name: z.string() }),
  state: RunState,
  createdAt: z.string(),
  finishedAt: z.string().optional(),
  plan: z.object({ totalItems: z.number().int().min(0) }),
  trigger: z.string(),
});

/** The body of an entry recorded for a run whose run.json was unreadable when indexed. */
const UnreadableBody = z.object({ runId: z.string(), unreadable: z.string() });

export function indexKey(runId: string, createdAt: string): string {
  return keys.runIndex(indexDay(createdAt), runId);
}

/** The index entry of a run as its run.json says it. */
export function entryOf(run: Pick<RunRecord, "runId" | "state" | "createdAt" | "finishedAt" | "trigger"> & { job: { name: string }; plan: { totalItems: number } }, o: { failed?: number } = {}): RunIndexEntry {
  return {
    runId: run.runId,
    job: run.job.name,
    state: run.state,
    createdAt: run.createdAt,
    // A run being driven again keeps its last finish time in run.json; listed, it is not finished.
    ...(run.finishedAt && !["planning", "planned", "running"].includes(run.state) ? { finishedAt: run.finishedAt } : {}),
    items: run.plan.totalItems,
    ...(o.failed !== undefined ? { failed: o.failed } : {}),
    trigger: run.trigger,
  };
}

function metadataOf(entry: RunIndexEntry, heartbeatAt?: string): Record<string, string> {
  const m: Record<string, string> = {
    [META.runId]: entry.runId,
    [META.job]: entry.job,
    [META.state]: entry.state,
    [META.createdAt]: entry.createdAt,
    [META.items]: String(entry.items),
    // Triggers are short ("cli", "schedule:<name>"); bounded anyway, for the 8 KiB metadata limit.
    [META.trigger]: entry.trigger.slice(0, 256),
  };
  if (entry.finishedAt) m[META.finishedAt] = entry.finishedAt;
  if (entry.failed !== undefined) m[META.failed] = String(entry.failed);
  if (heartbeatAt) m[META.heartbeatAt] = heartbeatAt;
  return m;
}

/** Writes a run's index entry (body and metadata); returns its generation. */
export function writeIndexEntry(
  store: ObjectStore,
  entry: RunIndexEntry,
  o: { ifGenerationMatch?: Generation | 0; heartbeatAt?: string } = {},
): Promise<Generation> {
  const options: MetadataPutOptions = {
    contentType: "application/json",
    metadata: metadataOf(entry, o.heartbeatAt),
    ...(o.ifGenerationMatch !== undefined ? { ifGenerationMatch: o.ifGenerationMatch } : {}),
  };
  const body = JSON.stringify(o.heartbeatAt ? { ...entry, heartbeatAt: o.heartbeatAt } : entry);
  return store.put(indexKey(entry.runId, entry.createdAt), body, options);
}

/**
 * Rewrites a run's entry from its run.json: for the driver to call on every state change.
 * @param o.failed failed items, when the caller knows them (status computes them)
 */
export async function recordRunState(store: ObjectStore, run: RunRecord, o: { failed?: number } = {}): Promise<void> {
  await writeIndexEntry(store, entryOf(run, o));
}

/**
 * Marks a run as being driven (when its plan commits, and when a drive starts). Create-only: a
 * marker already there is left as it is, so the plan's marker and its first drive's make one write
 * (Cloud Storage takes one write a second per object name).
 */
export async function markLive(store: ObjectStore, runId: string, now = new Date()): Promise<void> {
  // A read first: a create-only write of an object written within the second is refused (429) and
  // retried by the client, which costs more than the read.
  if (await store.get(keys.liveRun(runId)).catch(() => null)) return;
  try {
    await store.put(keys.liveRun(runId), JSON.stringify({ runId, since: now.getTime() }), { contentType: "application/json", ifGenerationMatch: 0 });
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
  }
}

const LiveMarker = z.object({ since: z.union([z.number(), z.string().transform((s) => Date.parse(s))]) });

/**
 * Removes a run's live marker (when its drive finishes, or reconcile finds the run ended), no
 * sooner than a second after it was written on a store that limits writes per object: a run that
 * finished at once waits out the rest. A run that is live again keeps its marker.
 */
export async function clearLive(store: ObjectStore, runId: string): Promise<void> {
  const key = keys.liveRun(runId);
  const gap = pacedWriteGapMs(store.limits);
  if (gap > 0) {
    const marker = await getJson(store, key, LiveMarker).catch(() => null);
    if (!marker) return;
    const wait = marker.value.since + gap - Date.now();
    if (wait > 0) await sleep(Math.min(wait, gap));
  }
  // A rerun may have started the run again meanwhile and found this marker in place (markLive
  // leaves it): then it is the rerun's marker now.
  const run = await getJson(store, keys.run(runId), RunStateOnly).catch(() => null);
  if (run && LIVE_STATES.has(run.value.state)) return;
  await store.delete(key);
}

const RunStateOnly = z.object({ state: z.string() });
const LIVE_STATES: ReadonlySet<string> = new Set(["planning", "planned", "running"]);

/** Runs with a live marker: what reconcile looks at, without reading every run. */
export async function liveRuns(store: ObjectStore): Promise<string[]> {
  const out: string[] = [];
  const prefix = keys.liveRunsPrefix();
  for await (const key of listAll(store, prefix)) {
    const id = key.slice(prefix.length);
    if (isRunId(id)) out.push(id);
  }
  return out;
}

export interface ListRunsOptions {
  /** @default 50 */
  limit?: number;
  /** Only runs of this job. */
  job?: string;
  /** Only runs in this state (or `unreadable` ones). */
  state?: RunState | "unreadable";
  /** Only runs created at or after this time. */
  since?: Date | string;
  /** Only runs created before this time. */
  until?: Date | string;
  /** Only runs listed after this one, newest first (the last run of the previous page). */
  after?: { createdAt: string; runId: string };
}

const stores = new WeakMap<ObjectStore, true>();

/**
 * Runs, newest first by creation time (not by id: a scheduled run's id carries its scheduled
 * time). Reads the index a day at a time, newest day first, and stops once `limit` runs are in:
 * with Cloud Storage's listed metadata that is a list of days and a list of a day or two. An
 * entry that cannot be read is listed as `unreadable` with the reason and the object.
 *
 * A store written before the index had one gets its entries the first time it is listed (one
 * read of each run.json, once); `index/complete` marks that done.
 */
export async function listRuns(store: ObjectStore, o: ListRunsOptions = {}): Promise<RunListEntry[]> {
  const limit = o.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`Expected \`limit\` to be a whole number from 1 up, got ${limit}`);
  const since = o.since === undefined ? undefined : new Date(o.since);
  if (since && Number.isNaN(since.getTime())) throw new UsageError(`Expected \`since\` to be a date, got ${JSON.stringify(o.since)}`);
  const until = o.until === undefined ? undefined : new Date(o.until);
  if (until && Number.isNaN(until.getTime())) throw new UsageError(`Expected \`until\` to be a date, got ${JSON.stringify(o.until)}`);
  await ensureIndexed(store);
  const sinceIso = since?.toISOString();
  const untilIso = until?.toISOString();
  // Newest day to read: no run of a later day can be listed.
  const top = [untilIso, o.after?.createdAt].filter((t): t is string => t !== undefined).map(indexDay).sort()[0];
  const days = (await listPrefixes(store, keys.runIndexDaysPrefix()))
    .map((p) => p.slice(keys.runIndexDaysPrefix().length, -1))
    .filter((d) => /^\d{8}$/.test(d) && (!sinceIso || d >= indexDay(sinceIso)) && (!top || d <= top))
    .sort()
    .reverse();
  const out: RunListEntry[] = [];
  for (const day of days) {
    for (const entry of await readDay(store, day, o.job)) {
      if (o.job && entry.state !== "unreadable" && entry.job !== o.job) continue;
      if (o.state && entry.state !== o.state) continue;
      if (sinceIso && entry.createdAt < sinceIso) continue;
      if (untilIso && entry.createdAt >= untilIso) continue;
      if (o.after && newestFirst(entry, o.after) <= 0) continue;
      out.push(entry);
    }
    // Every later day was created before this one: the newest `limit` are in.
    if (out.length >= limit) break;
  }
  return out.sort(newestFirst).slice(0, limit);
}

function newestFirst(a: Pick<RunListEntry, "createdAt" | "runId">, b: Pick<RunListEntry, "createdAt" | "runId">): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  return a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0;
}

/** One day's entries: from the listing's metadata when the store returns it, else from the bodies. */
async function readDay(store: ObjectStore, day: string, job?: string): Promise<RunListEntry[]> {
  const prefix = keys.runIndexDayPrefix(day);
  const listed: ListedObject[] = [];
  let pageToken: string | undefined;
  do {
    const options: ListOptions & { withMetadata?: boolean } = { withMetadata: true, ...(pageToken ? { pageToken } : {}) };
    const page = (await store.list(prefix, options)) as MetadataListPage;
    const objects = page.objects;
    // Metadata is listed only when the store has it for every key of the page.
    for (const [n, key] of page.keys.entries()) listed.push(objects?.[n]?.key === key ? objects[n]! : { key });
    pageToken = page.nextPageToken;
  } while (pageToken);
  const wanted = listed.filter(({ key }) => {
    const runId = key.slice(prefix.length);
    // The job is part of the id: skip other jobs' entries without reading them.
    return !job || !RUN_ID_PATTERN.test(runId) || runId.slice(16, -5) === job;
  });
  const limit = pLimit(READS);
  return Promise.all(wanted.map((l) => (l.metadata && Object.keys(l.metadata).length ? fromMetadata(l.key, prefix, l.metadata) : limit(() => fromBody(store, l.key, prefix)))));
}

function fromMetadata(key: string, prefix: string, m: Record<string, string>): RunListEntry {
  const runId = m[META.runId] ?? key.slice(prefix.length);
  const gone = m[META.unreadable];
  if (gone !== undefined) return unreadable(runId, gone, keys.run(runId));
  const raw = {
    runId,
    job: m[META.job],
    state: m[META.state],
    createdAt: m[META.createdAt],
    ...(m[META.finishedAt] ? { finishedAt: m[META.finishedAt] } : {}),
    items: m[META.items] === undefined ? undefined : Number(m[META.items]),
    ...(m[META.failed] !== undefined ? { failed: Number(m[META.failed]) } : {}),
    trigger: m[META.trigger],
  };
  const parsed = RunIndexEntry.safeParse(raw);
  if (!parsed.success) return unreadable(runId, `index entry metadata: ${formatZodError(parsed.error)}`, key);
  return { ...parsed.data, ...(m[META.heartbeatAt] ? { heartbeatAt: m[META.heartbeatAt] } : {}) };
}

async function fromBody(store: ObjectStore, key: string, prefix: string): Promise<RunListEntry> {
  const runId = key.slice(prefix.length);
  try {
    const obj = await store.get(key);
    if (!obj) return unreadable(runId, "the index entry went away while it was listed", key);
    return parseEntry(obj.bytes, key, runId);
  } catch (e) {
    return unreadable(runId, `index entry: ${errorMessage(e)}`, key);
  }
}

const StoredEntry = RunIndexEntry.extend({ heartbeatAt: z.string().optional() });

function parseEntry(bytes: Uint8Array, key: string, runId: string): RunListEntry {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    return unreadable(runId, `index entry: ${errorMessage(e)}`, key);
  }
  const gone = UnreadableBody.safeParse(raw);
  if (gone.success) return unreadable(gone.data.runId, gone.data.unreadable, keys.run(gone.data.runId));
  const parsed = StoredEntry.safeParse(raw);
  if (!parsed.success) return unreadable(runId, `index entry: ${formatZodError(parsed.error)}`, key);
  return parsed.data;
}

function unreadable(runId: string, reason: string, object: string): UnreadableRun {
  return { runId, state: "unreadable", reason, object, createdAt: idTime(runId) };
}

/** The creation time a run id carries (`20261122-020000-…`), for sorting what cannot be read. */
function idTime(runId: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-/.exec(runId);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.000Z` : "";
}

/** Gives every run of a store written before the index its entry, once per store. */
async function ensureIndexed(store: ObjectStore): Promise<void> {
  if (stores.has(store)) return;
  if (!(await store.get(keys.runIndexComplete()))) await backfillIndex(store);
  stores.set(store, true);
}

/**
 * Writes the index entries of runs that have none: runs planned before the index existed. A run
 * whose run.json cannot be read gets an entry that says so (listed as `unreadable`); a run folder
 * without run.json (a plan that never committed) gets none. Entries are created create-only, so
 * a run indexed meanwhile keeps its own. Returns how many entries it wrote.
 */
export async function backfillIndex(store: ObjectStore): Promise<number> {
  const indexed = new Set<string>();
  for await (const key of listAll(store, keys.runIndexDaysPrefix())) indexed.add(key.slice(key.lastIndexOf("/") + 1));
  const missing: string[] = [];
  for (const p of await listPrefixes(store, keys.runsPrefix())) {
    const runId = p.slice(keys.runsPrefix().length, -1);
    if (isRunId(runId) && !indexed.has(runId)) missing.push(runId);
  }
  const limit = pLimit(READS);
  const written = await Promise.all(
    missing.map((runId) =>
      limit(async () => {
        let entry: { key: string; body: string; metadata: Record<string, string> } | undefined;
        try {
          const run = await getJson(store, keys.run(runId), IndexableRun);
          if (!run) return 0; // never committed: nothing to list
          if (run.value.runId !== runId) throw new Error(`it names run ${run.value.runId}`);
          const e = entryOf(run.value);
          entry = { key: indexKey(runId, e.createdAt), body: JSON.stringify(e), metadata: metadataOf(e) };
        } catch (e) {
          const reason = `run.json: ${errorMessage(e)}`.slice(0, 1024);
          entry = {
            key: keys.runIndex(runDay(runId), runId),
            body: JSON.stringify({ runId, unreadable: reason }),
            metadata: { [META.runId]: runId, [META.unreadable]: reason },
          };
        }
        try {
          const options: MetadataPutOptions = { ifGenerationMatch: 0, contentType: "application/json", metadata: entry.metadata };
          await store.put(entry.key, entry.body, options);
          return 1;
        } catch (e) {
          if (e instanceof PreconditionFailed) return 0;
          throw e;
        }
      }),
    ),
  );
  await store.put(keys.runIndexComplete(), JSON.stringify({ at: new Date().toISOString() }), { contentType: "application/json" });
  return written.reduce((a: number, b) => a + b, 0);
}

/** The index entry of a run, wherever its creation day put it (its id's day, or one either side). */
export async function findIndexEntry(store: ObjectStore, runId: string): Promise<{ key: string; entry: RunListEntry; generation: Generation } | null> {
  const day = runDay(runId);
  const t = Date.UTC(Number(day.slice(0, 4)), Number(day.slice(4, 6)) - 1, Number(day.slice(6, 8)));
  for (const d of [0, 1, -1]) {
    const key = keys.runIndex(indexDay(new Date(t + d * 86_400_000).toISOString()), runId);
    const obj = await store.get(key);
    if (obj) return { key, entry: parseEntry(obj.bytes, key, runId), generation: obj.generation };
  }
  return null;
}

/**
 * Cancels a run that is still being planned: its entry goes from `planning` to `cancelled`, which
 * the planner notices at its next heartbeat (or before it commits) and then removes everything it
 * wrote, the entry included. Returns false when the run is not being planned (it has committed:
 * cancel it as a run; or it is unknown).
 */
export async function cancelPlanning(store: ObjectStore, runId: string): Promise<boolean> {
  for (let tries = 0; tries < 5; tries++) {
    const found = await findIndexEntry(store, runId);
    if (!found || found.entry.state !== "planning") return false;
    const { heartbeatAt: _hb, ...entry } = found.entry;
    try {
      await writeIndexEntry(store, { ...entry, state: "cancelled" }, { ifGenerationMatch: found.generation });
      return true;
    } catch (e) {
      // The planner wrote first: a heartbeat (look again) or its commit (no longer planning).
      if (!(e instanceof PreconditionFailed)) throw e;
    }
  }
  throw new UsageError(`run ${runId}: its planner keeps rewriting its index entry; try the cancel again`);
}

export interface StalePlansOptions {
  /** A `planning` entry whose heartbeat is older than this belongs to a planner that died. @default 60_000 (6 heartbeats) */
  staleMs?: number;
  now?: Date;
  /** Index days looked at, newest first: plans are recent. @default 2 */
  days?: number;
}

/**
 * Clears up after planners that died (killed, their machine gone) while announced as `planning`,
 * for reconcile to call. A plan that had committed (its run.json is there) gets its entry fixed
 * from run.json; one that had not has its objects removed, then its entry. Returns the run ids
 * it cleared.
 */
export async function removeStalePlans(store: ObjectStore, o: StalePlansOptions = {}): Promise<string[]> {
  const now = (o.now ?? new Date()).getTime();
  const staleMs = o.staleMs ?? 60_000;
  const days = (await listPrefixes(store, keys.runIndexDaysPrefix()))
    .map((p) => p.slice(keys.runIndexDaysPrefix().length, -1))
    .filter((d) => /^\d{8}$/.test(d))
    .sort()
    .reverse()
    .slice(0, o.days ?? 2);
  const cleared: string[] = [];
  for (const day of days) {
    for (const entry of await readDay(store, day)) {
      if (entry.state !== "planning") continue;
      const beat = Date.parse(entry.heartbeatAt ?? entry.createdAt);
      if (!(now - beat > staleMs)) continue;
      const run = await getJson(store, keys.run(entry.runId), IndexableRun).catch(() => null);
      if (run) {
        await writeIndexEntry(store, entryOf(run.value));
      } else {
        const objects: string[] = [];
        for await (const key of listAll(store, keys.runPrefix(entry.runId))) objects.push(key);
        const limit = pLimit(READS);
        await Promise.all(objects.map((key) => limit(() => store.delete(key))));
        await store.delete(indexKey(entry.runId, entry.createdAt));
      }
      cleared.push(entry.runId);
    }
  }
  return cleared;
}
