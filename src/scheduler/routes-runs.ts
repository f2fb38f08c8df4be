/**
 * The run endpoints: start, list, read, rerun, cancel, dead letter. Each parses its input with
 * the schemas of api.ts before touching the store, so a bad request changes nothing; each
 * long-running part is one non-blocking orchestrator step (reconcile takes it from there).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import pLimit from "p-limit";
import type { Budget } from "../core/budget.js";
import { errorMessage, isShardrunError } from "../core/errors.js";
import { isRunId } from "../core/ids.js";
import { JOB_NAME_PATTERN, parseTolerance, type Job, type ShardPolicy } from "../core/job.js";
import { keys } from "../core/keys.js";
import { RunRecord } from "../core/model.js";
import { computeStatus, failedItems } from "../core/status.js";
import { modulePath, moduleVersion, prepareJob, resolveJob, type PreparedJob, type ResolvedJob } from "../config/jobs.js";
import { advanceRun, startDriving } from "../orchestrator/drive.js";
import { planRun } from "../orchestrator/plan.js";
import { launchStatus, readCheckpoints, readLaunches, readRunStatus, type RunSummary } from "../orchestrator/read.js";
import { settleRerunCode } from "../orchestrator/job-version.js";
import { planFailedItems, setRunBudget } from "../orchestrator/rerun.js";
import { getJson, type Versioned } from "../store/json.js";
import { listPrefixes } from "../store/port.js";
import { DeadLetterQuery, EmptyBody, JobName, ListRunsQuery, RerunBody, RunId, StartRunBody, parseInput } from "./api.js";
import { cancelRun, withRunLease } from "./reconcile.js";
import { HttpError } from "./router.js";
import type { Call, Handler, ServiceDeps } from "./server.js";

/** The query string as an object; a parameter given twice is a 400 (which one would count?). */
export function queryObject(query: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of query) {
    if (k in out) throw new HttpError(400, "invalid_argument", `query: give ${k} once`, { field: k });
    out[k] = v;
  }
  return out;
}

/** The run record for a path's `{id}`: 400 for a malformed id (no path tricks reach the store), 404 when absent. */
export async function requireRun(deps: ServiceDeps, rawId: string | undefined): Promise<Versioned<RunRecord>> {
  const id = parseInput(RunId, rawId, "path", "id");
  const run = await getJson(deps.store, keys.run(id), RunRecord);
  if (!run) throw new HttpError(404, "not_found", `no run ${id}`, { field: "id" });
  return run;
}

/** Builds and loads the job a start request names: a name under jobs/, or (tests only) a module path. */
async function requireJob(deps: ServiceDeps, spec: string): Promise<PreparedJob> {
  if (!JOB_NAME_PATTERN.test(spec)) {
    if (!deps.allowJobPaths) parseInput(JobName, spec, "path", "job");
  } else if (!existsSync(join(deps.root, "jobs", spec, "index.ts")) && !existsSync(join(deps.root, "dist", "jobs", spec, "index.js"))) {
    throw new HttpError(404, "not_found", `no job named "${spec}"`, { field: "job" });
  }
  let resolved: ResolvedJob;
  try {
    resolved = resolveJob(spec, deps.root, deps.root);
  } catch (e) {
    // A path that is not there (tests), or a job folder without an entry.
    if (!JOB_NAME_PATTERN.test(spec)) throw new HttpError(404, "not_found", errorMessage(e), { field: "job" });
    throw new HttpError(500, "job_unavailable", errorMessage(e));
  }
  try {
    return await prepareJob(resolved);
  } catch (e) {
    // The job does not build or load here: the service's problem, named, not the caller's.
    throw new HttpError(500, "job_invalid", errorMessage(e));
  }
}

/** Checks the job's arguments here, to name the field: planRun's own check would only say "arg". */
function checkArgs(job: Job, args: Record<string, unknown>): void {
  if (!job.args) {
    const extra = Object.keys(args)[0];
    if (extra !== undefined) throw new HttpError(400, "invalid_argument", `body: job "${job.name}" takes no arguments`, { field: `args.${extra}` });
    return;
  }
  parseInput(job.args, args, "body", "args");
}

const startRun: Handler = async (call) => {
  const { deps } = call;
  const spec = call.params.job ?? "";
  const body = parseInput(StartRunBody, (await call.body()) ?? {}, "body");
  const prepared = await requireJob(deps, spec);
  const job = prepared.job;
  checkArgs(job, body.args);
  const policy: ShardPolicy | undefined = body.shards !== undefined ? { count: body.shards } : body.itemsPerShard !== undefined ? { itemsPerShard: body.itemsPerShard } : undefined;
  const b = body.budgets;
  const runBudget: Budget | undefined = b && Object.keys(b).length
    ? { ...(b.tokens !== undefined ? { tokens: b.tokens } : {}), ...(b.usd !== undefined ? { usd: b.usd } : {}), ...(b.minutes !== undefined ? { ms: b.minutes * 60_000 } : {}) }
    : undefined;
  const run = await planRun({
    store: deps.store,
    job,
    module: prepared.module,
    version: prepared.version,
    bundle: { key: prepared.key, bytes: prepared.bundle.bytes },
    args: body.args,
    ...(policy ? { policy } : {}),
    settings: {
      leaseTtlMs: 30_000,
      taskTimeoutSeconds: body.taskTimeoutSeconds,
      maxRetries: body.maxRetries,
      maxLaunches: body.maxLaunches,
      ...(body.maxFailedItems !== undefined ? { maxFailedItems: parseTolerance(body.maxFailedItems) } : {}),
      ...(runBudget ? { runBudget } : {}),
      ...(body.tasks !== undefined ? { tasks: body.tasks } : {}),
      ...(body.parallelism !== undefined ? { parallelism: body.parallelism } : {}),
    },
    trigger: "api",
    now: deps.now(),
  });
  const log = call.logger.child({ run: run.runId });
  log.info("run planned", { job: job.name, items: run.plan.totalItems, shards: run.plan.shards.length, caller: call.principal.subject });
  await firstStep(deps, run.runId, log, {});
  return { status: 202, json: await readRunStatus(deps.store, run.runId, deps.launcher), headers: { Location: `/v1/runs/${run.runId}` } };
};

/**
 * Marks the run driven and takes one step. The run is accepted whatever the launcher says: a
 * failed launch is logged and retried by reconcile, so a client's retry cannot start a twin run.
 */
async function firstStep(deps: ServiceDeps, runId: string, log: Call["logger"], o: { taskCount?: number; parallelism?: number; shards?: string[] }): Promise<void> {
  await startDriving(deps.store, runId);
  if (deps.busy.has(runId)) return;
  deps.busy.add(runId);
  try {
    const step = await withRunLease(deps.store, runId, () => advanceRun({ store: deps.store, launcher: deps.launcher, runId, logger: log, ...o }));
    log.info(step.ran ? "run advanced" : "run being advanced by another caller", step.ran ? { step: step.value.kind } : {});
  } catch (e) {
    log.error("the launch failed; reconcile will retry it", { error: errorMessage(e) });
  } finally {
    deps.busy.delete(runId);
  }
}

const encodeToken = (runId: string) => Buffer.from(`after:${runId}`).toString("base64url");
function decodeToken(token: string): string {
  const text = Buffer.from(token, "base64url").toString("utf8");
  const id = text.startsWith("after:") ? text.slice(6) : "";
  if (!isRunId(id)) throw new HttpError(400, "invalid_argument", "query: pageToken is not one this service gave out", { field: "pageToken" });
  return id;
}

/** `20261122-020000-<job>-ab12` -> the job, without reading the run. */
const jobOf = (id: string) => id.slice(16, -5);

const listRunsHandler: Handler = async (call) => {
  const { deps } = call;
  const q = parseInput(ListRunsQuery, queryObject(call.query), "query");
  const since = q.since !== undefined ? Date.parse(q.since) : -Infinity;
  const until = q.until !== undefined ? Date.parse(q.until) : Infinity;
  if (since >= until) throw new HttpError(400, "invalid_argument", "query: since must be before until", { field: "since" });
  const after = q.pageToken !== undefined ? decodeToken(q.pageToken) : undefined;
  const prefix = keys.runsPrefix();
  // Run ids name their job, so that filter needs no reads. Their time is not always the
  // creation time (a scheduled run's id carries the time it was due), so dates are read.
  const ids = (await listPrefixes(deps.store, prefix))
    .map((p) => p.slice(prefix.length, -1))
    .filter((id) => isRunId(id) && (after === undefined || id < after) && (q.job === undefined || jobOf(id) === q.job))
    .sort()
    .reverse();
  const runs: RunSummary[] = [];
  const limit = pLimit(16);
  let next = 0;
  let lastId: string | undefined;
  while (runs.length < q.pageSize && next < ids.length) {
    const batch = ids.slice(next, next + q.pageSize);
    next += batch.length;
    const records = await Promise.all(batch.map((id) => limit(() => getJson(deps.store, keys.run(id), RunRecord).catch(() => null))));
    for (const [i, rec] of records.entries()) {
      if (runs.length >= q.pageSize) break;
      lastId = batch[i];
      if (!rec) continue;
      const r = rec.value;
      const created = Date.parse(r.createdAt);
      if ((q.state !== undefined && r.state !== q.state) || created < since || created >= until) continue;
      runs.push({ runId: r.runId, job: r.job.name, state: r.state, createdAt: r.createdAt, ...(r.finishedAt ? { finishedAt: r.finishedAt } : {}), items: r.plan.totalItems, trigger: r.trigger });
    }
  }
  const more = lastId !== undefined && ids.indexOf(lastId) < ids.length - 1;
  return { status: 200, json: { runs, ...(more && lastId ? { nextPageToken: encodeToken(lastId) } : {}) } };
};

const getRun: Handler = async (call) => {
  const run = await requireRun(call.deps, call.params.id);
  return { status: 200, json: await readRunStatus(call.deps.store, run.value.runId, call.deps.launcher) };
};

const rerunRun: Handler = async (call) => {
  const { deps } = call;
  const run = await requireRun(deps, call.params.id);
  const runId = run.value.runId;
  const body = parseInput(RerunBody, (await call.body()) ?? {}, "body");
  const live = (await readLaunches(deps.store, runId)).find((l) => l.value.state === "pending" || l.value.state === "running");
  if (live) throw new HttpError(409, "run_live", `run ${runId} has a live launch (${live.value.execution ?? `#${live.value.n}`}): wait for it or cancel the run first`);
  if (body.upgrade) {
    // Rebuilt from the source on this service, and recorded when it changed.
    try {
      await settleRerunCode(deps.store, runId, true);
    } catch (e) {
      if (isShardrunError(e, "USAGE") || isShardrunError(e, "INVALID_INPUT")) throw new HttpError(409, "job_unavailable", errorMessage(e), { field: "upgrade" });
      throw e;
    }
  } else if (!run.value.job.bundle) {
    // Recorded before bundles: its compiled module runs, and must not have changed.
    const module = modulePath(run.value.job.module);
    if (!existsSync(module)) throw new HttpError(409, "job_unavailable", `the job module of run ${runId} is not on this service (${run.value.job.module}): give "upgrade": true to build it from its source`);
    const current = moduleVersion(module);
    if (current !== run.value.job.version) {
      throw new HttpError(409, "version_changed", `run ${runId} was planned with job version ${run.value.job.version}, the job is now ${current}: give "upgrade": true to finish it with the new code`, { field: "upgrade" });
    }
  }
  const budget: Budget = {
    ...(body.budgetTokens !== undefined ? { tokens: body.budgetTokens } : {}),
    ...(body.budgetUsd !== undefined ? { usd: body.budgetUsd } : {}),
    ...(body.budgetMinutes !== undefined ? { ms: body.budgetMinutes * 60_000 } : {}),
  };
  if (Object.keys(budget).length) await setRunBudget(deps.store, runId, budget);
  const shards = body.failedItems ? await planFailedItems(deps.store, runId) : undefined;
  const log = call.logger.child({ run: runId });
  log.info("rerun", { failedItems: body.failedItems, newShards: shards?.length, caller: call.principal.subject });
  await firstStep(deps, runId, log, {
    ...(body.tasks !== undefined ? { taskCount: body.tasks } : {}),
    ...(body.parallelism !== undefined ? { parallelism: body.parallelism } : {}),
    ...(shards?.length ? { shards } : {}),
  });
  return { status: 202, json: await readRunStatus(deps.store, runId, deps.launcher) };
};

const cancelRunHandler: Handler = async (call) => {
  const { deps } = call;
  const run = await requireRun(deps, call.params.id);
  parseInput(EmptyBody, (await call.body()) ?? {}, "body");
  const runId = run.value.runId;
  const result = await cancelRun({ store: deps.store, launcher: deps.launcher, runId, logger: call.logger.child({ run: runId }), now: deps.now });
  if (result.kind === "finished") throw new HttpError(409, "run_finished", `run ${runId} already finished (${result.state}): nothing to cancel`);
  call.logger.child({ run: runId }).info("run cancelled", { already: result.kind === "already-cancelled", caller: call.principal.subject });
  return { status: 200, json: await readRunStatus(deps.store, runId, deps.launcher) };
};

/** Status and dead letter from one read of the checkpoints (the run page needs both). */
export async function statusAndDeadLetter(deps: ServiceDeps, run: RunRecord) {
  const [checkpoints, launches] = await Promise.all([readCheckpoints(deps.store, run), readLaunches(deps.store, run.runId)]);
  const views = await Promise.all(launches.map((l) => launchStatus(l.value, deps.launcher)));
  return { status: computeStatus(run, checkpoints, views), deadLetter: failedItems(run, checkpoints) };
}

const deadLetter: Handler = async (call) => {
  const { deps } = call;
  const run = await requireRun(deps, call.params.id);
  const q = parseInput(DeadLetterQuery, queryObject(call.query), "query");
  const items = failedItems(run.value, await readCheckpoints(deps.store, run.value));
  const from = q.pageToken !== undefined ? Number(q.pageToken) : 0;
  const page = items.slice(from, from + q.pageSize);
  const end = from + page.length;
  return { status: 200, json: { runId: run.value.runId, total: items.length, items: page, ...(end < items.length ? { nextPageToken: String(end) } : {}) } };
};

export const runRoutes = {
  startRun,
  listRuns: listRunsHandler,
  getRun,
  rerunRun,
  cancelRun: cancelRunHandler,
  deadLetter,
} satisfies Record<string, Handler>;
