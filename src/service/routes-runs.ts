/**
 * The run endpoints: start, list, read, rerun, cancel, dead letter. Each route declares its
 * inputs with the schemas of schemas.ts, so a bad request is refused before its handler runs and
 * changes nothing; each long-running part is one non-blocking orchestrator step (reconcile takes
 * it from there).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createRoute, z } from "@hono/zod-openapi";
import { errorMessage, isShardrunError } from "../core/errors.js";
import { isRunId } from "../core/ids.js";
import { JOB_NAME_PATTERN, type Job } from "../core/job.js";
import { keys } from "../core/keys.js";
import type { Logger } from "../core/log.js";
import { RunRecord } from "../core/model.js";
import { budgetOf } from "../core/settings.js";
import { planningStatus, type RunStatus } from "../core/status.js";
import { modulePath, moduleVersion, prepareJob, resolveJob, type PreparedJob, type ResolvedJob } from "../config/jobs.js";
import { settleRerunCode } from "../orchestrator/job-version.js";
import { advanceRun, startDriving } from "../orchestrator/drive.js";
import { PlanLimitExceeded } from "../core/plan.js";
import { planRun } from "../orchestrator/plan.js";
import { readRun, readRunStatus } from "../orchestrator/read.js";
import { readFailedItems, setRunState } from "../orchestrator/drive.js";
import { chooseFailed } from "../orchestrator/failed-choice.js";
import { repairRun } from "../orchestrator/output.js";
import { cancelRun, withRunLease } from "../orchestrator/reconcile.js";
import { planFailedItems, ReplanConflict } from "../orchestrator/rerun.js";
import { assertNotLive, RunLive, setRunBudget } from "../orchestrator/control.js";
import { listRunSummaries } from "../orchestrator/run-list.js";
import { readRunView } from "../orchestrator/run-view.js";
import { cancelPlanning, findIndexEntry } from "../orchestrator/runs-index.js";
import { startPlan } from "../orchestrator/start-settings.js";
import { getJson, type Versioned } from "../store/json.js";
import type { Guards, ServiceApp, ServiceDeps } from "./context.js";
import { HttpError } from "./http-error.js";
import { body, errors, json, noRun, singleQueryValues } from "./route-kit.js";
import { DeadLetterPage, DeadLetterQuery, EmptyBody, ErrorSchema, JobName, ListRunsQuery, RerunBody, RunId, RunStatusSchema, RunsPage, StartRunBody, parseInput, type StartRunBody as StartBody } from "./schemas.js";

const runParams = z.object({ id: RunId });

/** The run record for a path's `{id}` (already checked against RunId): 404 when absent, 500 when it cannot be read. */
export async function requireRun(deps: ServiceDeps, id: string): Promise<Versioned<RunRecord>> {
  const run = await getJson(deps.store, keys.run(id), RunRecord).catch((e: unknown) => {
    // A run.json that does not parse is the store's damage, not the caller's mistake (as in requireView).
    if (isShardrunError(e, "INVALID_INPUT")) throw new HttpError(500, "run_unreadable", `run ${id} cannot be read: ${errorMessage(e)}`);
    throw e;
  });
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
 * `leased`: the caller holds the run's driver lease already (a rerun).
 */
async function firstStep(deps: ServiceDeps, runId: string, log: Logger, o: { taskCount?: number; parallelism?: number; shards?: string[] }, leased = false): Promise<void> {
  await startDriving(deps.store, runId);
  const step = () => advanceRun({ store: deps.store, launcher: deps.launcher, runId, logger: log, ...o });
  if (leased) {
    try {
      log.info("run advanced", { step: (await step()).kind });
    } catch (e) {
      log.error("the launch failed; reconcile will retry it", { error: errorMessage(e) });
    }
    return;
  }
  if (deps.busy.has(runId)) return;
  deps.busy.add(runId);
  try {
    const r = await withRunLease(deps.store, runId, step);
    log.info(r.ran ? "run advanced" : "run being advanced by another caller", r.ran ? { step: r.value.kind } : {});
  } catch (e) {
    log.error("the launch failed; reconcile will retry it", { error: errorMessage(e) });
  } finally {
    deps.busy.delete(runId);
  }
}

/** A plan's failure as the answer to its request: a limit names itself. */
function refusal(e: unknown): unknown {
  return e instanceof PlanLimitExceeded ? new HttpError(400, "limit_exceeded", `body: ${e.message}`, { field: e.limit }) : e;
}

/** Background plan failures remembered for their run's 404 (the newest this many). */
const PLAN_FAILURES_KEPT = 1000;

function rememberPlanFailure(deps: ServiceDeps, runId: string, message: string): void {
  deps.planFailures.set(runId, message);
  for (const k of deps.planFailures.keys()) {
    if (deps.planFailures.size <= PLAN_FAILURES_KEPT) break;
    deps.planFailures.delete(k);
  }
}

/**
 * The limits of a run a start request asks for: the service's own, or lower ones from the body.
 * A body asking for more than the service allows is refused before anything is read or written.
 */
function requestLimits(deps: ServiceDeps, body: StartBody): { maxItems: number; maxShards: number } {
  const { maxItems, maxShards } = deps.limits;
  if (body.maxItems !== undefined && body.maxItems > maxItems) {
    throw new HttpError(400, "invalid_argument", `body: maxItems: this service plans at most ${maxItems} items a run (SHARDRUN_MAX_ITEMS), got ${body.maxItems}`, { field: "maxItems" });
  }
  if (body.maxShards !== undefined && body.maxShards > maxShards) {
    throw new HttpError(400, "invalid_argument", `body: maxShards: this service plans at most ${maxShards} shards a run (SHARDRUN_MAX_SHARDS), got ${body.maxShards}`, { field: "maxShards" });
  }
  if (body.shards !== undefined && body.shards > (body.maxShards ?? maxShards)) {
    throw new HttpError(400, "invalid_argument", `body: shards: at most ${body.maxShards ?? maxShards} shards a run (maxShards), got ${body.shards}`, { field: "shards" });
  }
  return { maxItems: body.maxItems ?? maxItems, maxShards: body.maxShards ?? maxShards };
}

/** The page token of `GET /v1/runs`: the last run of the page, as the list sorts them. */
const encodeToken = (r: { createdAt: string; runId: string }) => Buffer.from(JSON.stringify({ c: r.createdAt, r: r.runId })).toString("base64url");
const PageToken = z.object({ c: z.string().max(40), r: z.string().refine(isRunId) });
function decodeToken(token: string): { createdAt: string; runId: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    parsed = null;
  }
  const t = PageToken.safeParse(parsed);
  if (!t.success) throw new HttpError(400, "invalid_argument", "query: pageToken is not one this service gave out", { field: "pageToken" });
  return { createdAt: t.data.c, runId: t.data.r };
}

/** The status of a run for `{id}` routes: committed, or still planning; 404 (with why, if its plan failed) otherwise. */
async function requireView(deps: ServiceDeps, id: string): Promise<RunStatus> {
  const st = await readRunView(deps.store, id, deps.launcher).catch((e: unknown) => {
    // A run.json that does not parse is the store's damage, not the caller's mistake.
    if (isShardrunError(e, "INVALID_INPUT")) throw new HttpError(500, "run_unreadable", `run ${id} cannot be read: ${errorMessage(e)}`);
    throw e;
  });
  if (st) return st;
  const failed = deps.planFailures.get(id);
  throw new HttpError(404, "not_found", failed ? `no run ${id}: ${failed}; nothing of it was left in the store` : `no run ${id}`, { field: "id" });
}

export function registerRunRoutes(app: ServiceApp, deps: ServiceDeps, guard: Guards): void {
  const jobParams = z.object({ job: deps.allowJobPaths ? z.string().min(1).describe("A job name (or, on a test service, a module path).") : JobName });

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/jobs/{job}/runs",
      operationId: "startRun",
      summary: "Plan a run of a job (in the background) and launch its first tasks.",
      description:
        "Checks the body, the job's arguments and the service's limits, then plans. It waits up to a second for the plan to read and check every " +
        "item: a plan over a limit (or with duplicate keys, or a bad items file) found by then is refused with nothing written. Then it answers 202: " +
        "with the run `planning` while a large plan goes on in the background (see it with GET, stop it with `:cancel`), or `running` once planned and launched.",
      middleware: [guard.api, guard.body] as const,
      request: { params: jobParams, body: body(StartRunBody) },
      responses: { 202: json(RunStatusSchema, "Accepted: planning, or planned and launched; reconcile drives it on."), ...errors, 404: json(ErrorSchema, "No such job.") },
    }),
    async (c) => {
      const settings = c.req.valid("json");
      const limits = requestLimits(deps, settings);
      const prepared = await requireJob(deps, c.req.valid("param").job);
      const job = prepared.job;
      checkArgs(job, settings.args);
      const start = startPlan(settings);
      const abort = new AbortController();
      let runId: string | undefined;
      let announce: (() => Promise<void>) | undefined;
      const planning = planRun({
        store: deps.store,
        job,
        module: prepared.module,
        version: prepared.version,
        bundle: { key: prepared.key, bytes: prepared.bundle.bytes },
        args: settings.args,
        ...start,
        limits,
        trigger: "api",
        now: deps.now(),
        driving: true,
        // Written only if the plan outlasts the wait below: a refused request writes nothing.
        announce: "deferred",
        signal: abort.signal,
        onStart: (id, now) => {
          runId = id;
          announce = now;
        },
      });
      const outcome = planning.then(
        (run) => ({ ok: true as const, run }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<null>((r) => (timer = setTimeout(() => r(null), deps.planAnswerMs)));
      // The plan's end, or the wait: most plans end within it, and a request over a limit (or with
      // duplicate keys, or a bad items file) is refused then, with nothing written.
      let first = await Promise.race([outcome, waited]);
      clearTimeout(timer);
      // Not even an id yet (its checks before the first write are slow): wait for the plan.
      if (!first && runId === undefined) first = await outcome;
      // Refused at once; the plan removed what it wrote.
      if (first && !first.ok) throw refusal(first.error);
      if (!first) {
        // Still planning: visible (and cancellable) before the 202 says so.
        try {
          await announce?.();
        } catch (e) {
          abort.abort(e);
          await outcome;
          throw e;
        }
      }
      const id = runId!;
      const log = c.var.logger.child({ run: id });
      const after = outcome.then(async (o) => {
        if (!o.ok) {
          // Found after the 202 (a source larger than the limit, a duplicate key far in), or
          // cancelled: the planner removed what it wrote.
          rememberPlanFailure(deps, id, abort.signal.aborted ? "it was cancelled while it was planned" : `its planning failed: ${errorMessage(o.error)}`);
          log.warn(abort.signal.aborted ? "planning cancelled" : "planning failed after the run was accepted", { error: errorMessage(o.error) });
          return;
        }
        log.info("run planned", { job: job.name, items: o.run.plan.totalItems, shards: o.run.plan.shardCount, caller: c.var.principal.subject });
        if (o.run.state !== "cancelled") await firstStep(deps, id, log, {});
      });
      const entry = { abort, done: after.finally(() => deps.plans.delete(id)) };
      deps.plans.set(id, entry);
      // Planned within the wait: answer once its first launch is made, as the run it now is.
      if (first?.ok) await entry.done;
      const view = await readRunView(deps.store, id, deps.launcher).catch(() => null);
      if (!view) {
        // Neither announced nor committed: it ended just after the wait. Answer as it ended.
        const o = await outcome;
        if (!o.ok) throw refusal(o.error);
      }
      return c.json(view ?? (await requireView(deps, id)), 202, { Location: `/v1/runs/${id}` });
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/runs",
      operationId: "listRuns",
      summary: "Runs, newest first by creation time, from the runs index.",
      description: "A run whose records cannot be read is listed with state `unreadable`, the reason and the object; it never fails the list.",
      middleware: [guard.api, singleQueryValues] as const,
      request: { query: ListRunsQuery },
      responses: { 200: json(RunsPage, "A page of runs."), ...errors },
    }),
    async (c) => {
      const q = c.req.valid("query");
      if (q.since !== undefined && q.until !== undefined && Date.parse(q.since) >= Date.parse(q.until)) throw new HttpError(400, "invalid_argument", "query: since must be before until", { field: "since" });
      const after = q.pageToken !== undefined ? decodeToken(q.pageToken) : undefined;
      // One more than a page: whether there is a next page, without a second request.
      const runs = await listRunSummaries(deps.store, {
        limit: q.pageSize + 1,
        ...(q.job !== undefined ? { job: q.job } : {}),
        ...(q.state !== undefined ? { state: q.state } : {}),
        ...(q.since !== undefined ? { since: q.since } : {}),
        ...(q.until !== undefined ? { until: q.until } : {}),
        ...(after ? { after } : {}),
      });
      const page = runs.slice(0, q.pageSize);
      const last = page[page.length - 1];
      return c.json({ runs: page, ...(runs.length > q.pageSize && last ? { nextPageToken: encodeToken(last) } : {}) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/v1/runs/{id}",
      operationId: "getRun",
      summary: "A run's status (a run still being planned included).",
      middleware: [guard.api] as const,
      request: { params: runParams },
      responses: { 200: json(RunStatusSchema, "The status object."), ...errors, ...noRun },
    }),
    async (c) => c.json(await requireView(deps, c.req.valid("param").id), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/runs/{id}:rerun",
      operationId: "rerunRun",
      summary: "Launch what is not done, or only the failed items.",
      description: "One rerun of a run at a time: a request while another is being started, or while a launch of the run is live, gets 409 with a message.",
      middleware: [guard.api, guard.body] as const,
      request: { params: runParams, body: body(RerunBody) },
      responses: {
        202: json(RunStatusSchema, "Relaunched."),
        ...errors,
        ...noRun,
        409: json(ErrorSchema, "A launch is live, another rerun of the run is being started, or the job's code changed (give upgrade)."),
      },
    }),
    async (c) => {
      const run = await requireRun(deps, c.req.valid("param").id);
      const runId = run.value.runId;
      const settings = c.req.valid("json");
      const busy = () => new HttpError(409, "rerun_in_progress", `run ${runId} is being rerun or advanced by another request right now: look at it (GET /v1/runs/${runId}) and try again if it is still stopped`);
      // One rerun at a time: this process's own requests at once, other processes' by the run's driver lease.
      if (deps.busy.has(runId)) throw busy();
      deps.busy.add(runId);
      try {
        // A live launch refuses it before the lease is taken: a refused rerun writes nothing.
        await refuseLive(deps, runId);
        const leased = await withRunLease(deps.store, runId, () => rerun(deps, run, settings, c.var.logger.child({ run: runId }), c.var.principal.subject));
        if (!leased.ran) throw busy();
      } finally {
        deps.busy.delete(runId);
      }
      return c.json(await readRunStatus(deps.store, runId, deps.launcher), 202);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/runs/{id}:cancel",
      operationId: "cancelRun",
      summary: "Cancel the live executions and mark the run cancelled (a run being planned stops planning).",
      middleware: [guard.api, guard.body] as const,
      request: { params: runParams, body: body(EmptyBody) },
      responses: { 200: json(RunStatusSchema, "Cancelled."), ...errors, ...noRun, 409: json(ErrorSchema, "The run already finished.") },
    }),
    async (c) => {
      const id = c.req.valid("param").id;
      const log = c.var.logger.child({ run: id });
      if (!(await getJson(deps.store, keys.run(id), RunRecord))) {
        // Still being planned: its planner stops and removes what it wrote (here at once; elsewhere at its next heartbeat).
        const found = await findIndexEntry(deps.store, id);
        const local = deps.plans.get(id);
        const cancelled = await cancelPlanning(deps.store, id);
        if (!cancelled && !local) {
          await requireView(deps, id); // 404, or the run committed meanwhile: cancel it as a run
          return cancelCommitted(c, deps, id, log);
        }
        local?.abort.abort();
        await local?.done;
        log.info("planning cancelled", { caller: c.var.principal.subject });
        const e = found?.entry;
        const committed = await getJson(deps.store, keys.run(id), RunRecord);
        if (committed) return c.json(await readRunStatus(deps.store, id, deps.launcher), 200);
        return c.json(planningStatus({ runId: id, job: e && e.state !== "unreadable" ? e.job : "", state: "cancelled", createdAt: e?.createdAt ?? deps.now().toISOString(), items: e && e.state !== "unreadable" ? e.items : 0 }), 200);
      }
      return cancelCommitted(c, deps, id, log);
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

type Ctx = Parameters<Parameters<ServiceApp["openapi"]>[1]>[0];

/** 409 while a launch of the run is live; a launch recorded as live whose execution is gone (its supervisor died) is settled first. */
async function refuseLive(deps: ServiceDeps, runId: string): Promise<void> {
  await assertNotLive(deps.store, runId, deps.launcher).catch((e: unknown) => {
    if (!(e instanceof RunLive)) throw e;
    throw new HttpError(409, "run_live", `run ${runId} has a live launch (${e.launch}): wait for it, or cancel the run first`);
  });
}

async function cancelCommitted(c: Ctx, deps: ServiceDeps, runId: string, log: Logger) {
  const result = await cancelRun({ store: deps.store, launcher: deps.launcher, runId, logger: log, now: deps.now });
  if (result.kind === "finished") throw new HttpError(409, "run_finished", `run ${runId} already finished (${result.state}): nothing to cancel`);
  log.info("run cancelled", { already: result.kind === "already-cancelled", caller: c.var.principal.subject });
  return c.json(await readRunStatus(deps.store, runId, deps.launcher), 200);
}

/** A rerun's steps, under the run's driver lease. */
async function rerun(deps: ServiceDeps, run: Versioned<RunRecord>, settings: z.output<typeof RerunBody>, log: Logger, caller: string): Promise<void> {
  const runId = run.value.runId;
  // Again under the lease: another process's rerun may have launched since the first look.
  await refuseLive(deps, runId);
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
  let shards: string[] | undefined;
  if (settings.failedItems) {
    try {
      shards = (await planFailedItems(deps.store, runId, chooseFailed(await readFailedItems(deps.store, run.value), settings.reasons).retry))?.shards ?? [];
    } catch (e) {
      if (e instanceof ReplanConflict) throw new HttpError(409, "rerun_in_progress", e.message);
      throw e;
    }
  }
  log.info("rerun", { failedItems: settings.failedItems, newShards: shards?.length, caller });
  await firstStep(
    deps,
    runId,
    log,
    {
      ...(settings.tasks !== undefined ? { taskCount: settings.tasks } : {}),
      ...(settings.parallelism !== undefined ? { parallelism: settings.parallelism } : {}),
      ...(shards?.length ? { shards } : {}),
    },
    true,
  );
}
