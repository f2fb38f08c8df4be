/**
 * The run endpoints: start, list, read, rerun, cancel, dead letter. Each route declares its
 * inputs with the schemas of schemas.ts, so a bad request is refused before its handler runs and
 * changes nothing; each long-running part is one non-blocking orchestrator step (reconcile takes
 * it from there).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createRoute, z } from "@hono/zod-openapi";
import pLimit from "p-limit";
import { errorMessage, isShardrunError } from "../core/errors.js";
import { isRunId } from "../core/ids.js";
import { JOB_NAME_PATTERN, type Job } from "../core/job.js";
import { keys } from "../core/keys.js";
import type { Logger } from "../core/log.js";
import { RunRecord } from "../core/model.js";
import { budgetOf, parseTolerance, shardPolicyOf } from "../core/settings.js";
import { modulePath, moduleVersion, prepareJob, resolveJob, type PreparedJob, type ResolvedJob } from "../config/jobs.js";
import { settleRerunCode } from "../orchestrator/job-version.js";
import { advanceRun, startDriving } from "../orchestrator/drive.js";
import { planRun } from "../orchestrator/plan.js";
import { readRun, readRunStatus, type RunSummary } from "../orchestrator/read.js";
import { readFailedItems, setRunState } from "../orchestrator/drive.js";
import { chooseFailed } from "../orchestrator/failed-choice.js";
import { repairRun } from "../orchestrator/output.js";
import { cancelRun, withRunLease } from "../orchestrator/reconcile.js";
import { planFailedItems } from "../orchestrator/rerun.js";
import { assertNotLive, setRunBudget } from "../orchestrator/control.js";
import { getJson, type Versioned } from "../store/json.js";
import { listPrefixes } from "../store/port.js";
import type { Guards, ServiceApp, ServiceDeps } from "./context.js";
import { HttpError } from "./http-error.js";
import { body, errors, json, noRun, singleQueryValues } from "./route-kit.js";
import { DeadLetterPage, DeadLetterQuery, EmptyBody, ErrorSchema, JobName, ListRunsQuery, RerunBody, RunId, RunStatusSchema, RunsPage, StartRunBody, parseInput } from "./schemas.js";

const runParams = z.object({ id: RunId });

/** The run record for a path's `{id}` (already checked against RunId): 404 when absent. */
export async function requireRun(deps: ServiceDeps, id: string): Promise<Versioned<RunRecord>> {
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

/**
 * Marks the run driven and takes one step. The run is accepted whatever the launcher says: a
 * failed launch is logged and retried by reconcile, so a client's retry cannot start a twin run.
 */
async function firstStep(deps: ServiceDeps, runId: string, log: Logger, o: { taskCount?: number; parallelism?: number; shards?: string[] }): Promise<void> {
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

export function registerRunRoutes(app: ServiceApp, deps: ServiceDeps, guard: Guards): void {
  const jobParams = z.object({ job: deps.allowJobPaths ? z.string().min(1).describe("A job name (or, on a test service, a module path).") : JobName });

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/jobs/{job}/runs",
      operationId: "startRun",
      summary: "Plan a run of a job and launch its first tasks.",
      middleware: [guard.api, guard.body] as const,
      request: { params: jobParams, body: body(StartRunBody) },
      responses: { 202: json(RunStatusSchema, "Planned and launched; reconcile drives it on."), ...errors, 404: json(ErrorSchema, "No such job.") },
    }),
    async (c) => {
      const settings = c.req.valid("json");
      const prepared = await requireJob(deps, c.req.valid("param").job);
      const job = prepared.job;
      checkArgs(job, settings.args);
      const policy = shardPolicyOf(settings);
      const runBudget = budgetOf(settings.budgets);
      const run = await planRun({
        store: deps.store,
        job,
        module: prepared.module,
        version: prepared.version,
        bundle: { key: prepared.key, bytes: prepared.bundle.bytes },
        args: settings.args,
        ...(policy ? { policy } : {}),
        settings: {
          leaseTtlMs: 30_000,
          taskTimeoutSeconds: settings.taskTimeoutSeconds,
          maxRetries: settings.maxRetries,
          maxLaunches: settings.maxLaunches,
          ...(settings.maxFailedItems !== undefined ? { maxFailedItems: parseTolerance(settings.maxFailedItems) } : {}),
          ...(runBudget ? { runBudget } : {}),
          ...(settings.tasks !== undefined ? { tasks: settings.tasks } : {}),
          ...(settings.parallelism !== undefined ? { parallelism: settings.parallelism } : {}),
        },
        trigger: "api",
        now: deps.now(),
      });
      const log = c.var.logger.child({ run: run.runId });
      log.info("run planned", { job: job.name, items: run.plan.totalItems, shards: run.plan.shardCount, caller: c.var.principal.subject });
      await firstStep(deps, run.runId, log, {});
      return c.json(await readRunStatus(deps.store, run.runId, deps.launcher), 202, { Location: `/v1/runs/${run.runId}` });
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/runs",
      operationId: "listRuns",
      summary: "Runs, newest first.",
      middleware: [guard.api, singleQueryValues] as const,
      request: { query: ListRunsQuery },
      responses: { 200: json(RunsPage, "A page of runs."), ...errors },
    }),
    async (c) => {
      const q = c.req.valid("query");
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
      return c.json({ runs, ...(more && lastId ? { nextPageToken: encodeToken(lastId) } : {}) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/runs/{id}",
      operationId: "getRun",
      summary: "A run's status.",
      middleware: [guard.api] as const,
      request: { params: runParams },
      responses: { 200: json(RunStatusSchema, "The status object."), ...errors, ...noRun },
    }),
    async (c) => {
      const run = await requireRun(deps, c.req.valid("param").id);
      return c.json(await readRunStatus(deps.store, run.value.runId, deps.launcher), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/runs/{id}:rerun",
      operationId: "rerunRun",
      summary: "Launch what is not done, or only the failed items.",
      middleware: [guard.api, guard.body] as const,
      request: { params: runParams, body: body(RerunBody) },
      responses: { 202: json(RunStatusSchema, "Relaunched."), ...errors, ...noRun, 409: json(ErrorSchema, "A launch is live, or the job's code changed (give upgrade).") },
    }),
    async (c) => {
      const run = await requireRun(deps, c.req.valid("param").id);
      const runId = run.value.runId;
      const settings = c.req.valid("json");
      // A launch recorded as live whose execution is gone (its supervisor died) is settled first.
      await assertNotLive(deps.store, runId, deps.launcher).catch((e: unknown) => {
        if (!isShardrunError(e, "USAGE")) throw e;
        const live = e.message.match(/\(([^)]*)\)/)?.[1] ?? "a launch";
        throw new HttpError(409, "run_live", `run ${runId} has a live launch (${live}): wait for it or cancel the run first`);
      });
      if (settings.upgrade) {
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
      const budget = budgetOf({ tokens: settings.budgetTokens, usd: settings.budgetUsd, minutes: settings.budgetMinutes });
      if (budget) await setRunBudget(deps.store, runId, budget);
      if (settings.repair) {
        const repaired = await repairRun(deps.store, runId);
        const cur = await readRun(deps.store, runId);
        if (repaired.shards.length && cur.value.state !== "running") await setRunState(deps.store, cur, "running");
      }
      const shards = settings.failedItems ? ((await planFailedItems(deps.store, runId, chooseFailed(await readFailedItems(deps.store, run.value), settings.reasons).retry))?.shards ?? []) : undefined;
      const log = c.var.logger.child({ run: runId });
      log.info("rerun", { failedItems: settings.failedItems, newShards: shards?.length, caller: c.var.principal.subject });
      await firstStep(deps, runId, log, {
        ...(settings.tasks !== undefined ? { taskCount: settings.tasks } : {}),
        ...(settings.parallelism !== undefined ? { parallelism: settings.parallelism } : {}),
        ...(shards?.length ? { shards } : {}),
      });
      return c.json(await readRunStatus(deps.store, runId, deps.launcher), 202);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/runs/{id}:cancel",
      operationId: "cancelRun",
      summary: "Cancel the live executions and mark the run cancelled.",
      middleware: [guard.api, guard.body] as const,
      request: { params: runParams, body: body(EmptyBody) },
      responses: { 200: json(RunStatusSchema, "Cancelled."), ...errors, ...noRun, 409: json(ErrorSchema, "The run already finished.") },
    }),
    async (c) => {
      const run = await requireRun(deps, c.req.valid("param").id);
      const runId = run.value.runId;
      const log = c.var.logger.child({ run: runId });
      const result = await cancelRun({ store: deps.store, launcher: deps.launcher, runId, logger: log, now: deps.now });
      if (result.kind === "finished") throw new HttpError(409, "run_finished", `run ${runId} already finished (${result.state}): nothing to cancel`);
      log.info("run cancelled", { already: result.kind === "already-cancelled", caller: c.var.principal.subject });
      return c.json(await readRunStatus(deps.store, runId, deps.launcher), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/runs/{id}/dead-letter",
      operationId: "deadLetter",
      summary: "Items that failed every retry, with their errors.",
      middleware: [guard.api, singleQueryValues] as const,
      request: { params: runParams, query: DeadLetterQuery },
      responses: { 200: json(DeadLetterPage, "A page of failed items."), ...errors, ...noRun },
    }),
    async (c) => {
      const run = await requireRun(deps, c.req.valid("param").id);
      const q = c.req.valid("query");
      const items = await readFailedItems(deps.store, run.value);
      const from = q.pageToken !== undefined ? Number(q.pageToken) : 0;
      const page = items.slice(from, from + q.pageSize);
      const end = from + page.length;
      return c.json({ runId: run.value.runId, total: items.length, items: page, ...(end < items.length ? { nextPageToken: String(end) } : {}) }, 200);
    },
  );
}
