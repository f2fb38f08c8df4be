/** Reading a run's state back from the store, every object parsed with its schema. */
import pLimit from "p-limit";
import { UsageError } from "../core/errors.js";
import { isRunId } from "../core/ids.js";
import { keys } from "../core/keys.js";
import { Checkpoint, LaunchClaim, LaunchRecord, RunRecord } from "../core/model.js";
import { computeStatus, type LaunchStatus, type RunStatus } from "../core/status.js";
import type { Launcher } from "../launcher/port.js";
import { getJson, type Versioned } from "../store/json.js";
import { listAll, type ObjectStore } from "../store/port.js";

export function assertRunId(runId: string): void {
  if (!isRunId(runId)) throw new UsageError(`run id "${runId}" is not valid: expected one like 20261122-020000-summarize-docs-ab12`);
}

export async function readRun(store: ObjectStore, runId: string): Promise<Versioned<RunRecord>> {
  assertRunId(runId);
  const run = await getJson(store, keys.run(runId), RunRecord);
  if (!run) throw new UsageError(`no run ${runId} in ${store.url}`);
  return run;
}

export async function readCheckpoints(store: ObjectStore, run: RunRecord): Promise<Map<string, Checkpoint | null>> {
  const limit = pLimit(16);
  const entries = await Promise.all(
    run.plan.shards.map((s) => limit(async () => [s.id, (await getJson(store, keys.checkpoint(run.runId, s.id), Checkpoint))?.value ?? null] as const)),
  );
  return new Map(entries);
}

/**
 * A run's launch records, oldest first. A live record without its execution gets it from the
 * launch's claim (protocol 6): the record is written only at its start and end.
 */
export async function readLaunches(store: ObjectStore, runId: string): Promise<Versioned<LaunchRecord>[]> {
  const out: Versioned<LaunchRecord>[] = [];
  const prefix = keys.launchesPrefix(runId);
  for await (const key of listAll(store, prefix)) {
    // Records only: claims live below them (launches/<n>/execution.json).
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
    ...(record.execution ? { execution: record.execution } : {}),
  };
  if (!launcher || !record.execution || launcher.kind !== record.launcher) return base;
  const url = launcher.executionUrl?.(record.execution);
  if (url) base.url = url;
  if (record.state !== "pending" && record.state !== "running") return base;
  const ex = await launcher.getExecution(record.execution);
  if (!ex) return base;
  return {
    ...base,
    state: ex.state,
    tasks: { running: ex.running, succeeded: ex.succeeded, failed: ex.failed },
    ...(ex.url ? { url: ex.url } : {}),
  };
}

export async function readRunStatus(store: ObjectStore, runId: string, launcher?: Launcher): Promise<RunStatus> {
  const run = await readRun(store, runId);
  const [checkpoints, launches] = await Promise.all([readCheckpoints(store, run.value), readLaunches(store, runId)]);
  const views = await Promise.all(launches.map((l) => launchStatus(l.value, launcher)));
  return computeStatus(run.value, checkpoints, views);
}

export interface RunSummary {
  runId: string;
  job: string;
  state: string;
  createdAt: string;
  finishedAt?: string;
  items: number;
  trigger: string;
}

/** Runs in the store, newest first (run ids sort by creation time). */
export async function listRuns(store: ObjectStore, limit = 1000): Promise<RunSummary[]> {
  const ids: string[] = [];
  let pageToken: string | undefined;
  do {
    const page = await store.list(keys.runsPrefix(), { delimiter: "/", ...(pageToken ? { pageToken } : {}) });
    for (const p of page.prefixes) {
      const id = p.slice(keys.runsPrefix().length, -1);
      if (isRunId(id)) ids.push(id);
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
  ids.sort().reverse();
  const lim = pLimit(16);
  const runs = await Promise.all(ids.slice(0, limit).map((id) => lim(() => getJson(store, keys.run(id), RunRecord))));
  return runs
    .filter((r): r is Versioned<RunRecord> => r !== null)
    .map(({ value: r }) => ({
      runId: r.runId,
      job: r.job.name,
      state: r.state,
      createdAt: r.createdAt,
      ...(r.finishedAt ? { finishedAt: r.finishedAt } : {}),
      items: r.plan.totalItems,
      trigger: r.trigger,
    }));
}
