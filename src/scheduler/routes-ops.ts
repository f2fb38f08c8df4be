/**
 * The service's other endpoints: health, the OpenAPI document, schedule fires, reconcile, and
 * the dashboard pages. Schedules and the dashboard are other modules of the scheduler, loaded
 * on first use: a service that never renders a page never loads the page code.
 */
import pLimit from "p-limit";
import { listRuns, readRunStatus } from "../orchestrator/read.js";
import { EmptyBody, ScheduleName, ScheduleTime, parseInput } from "./api.js";
import { openApiDocument } from "./openapi.js";
import { HttpError } from "./router.js";
import { requireRun, statusAndDeadLetter } from "./routes-runs.js";
import type { Handler } from "./server.js";

/** Runs the dashboard's list shows, newest first. */
const PAGE_RUNS = 50;

/** Imports a sibling module, or answers 501 when this build does not have it. */
async function optional<T>(load: () => Promise<T>, what: string): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND") throw new HttpError(501, "not_implemented", `${what} is not part of this build`);
    throw e;
  }
}

const health: Handler = async () => ({ status: 200, json: { status: "ok" } });

// Built once per service (it names the service's URL), on first request.
const documents = new WeakMap<object, Record<string, unknown>>();
const openapi: Handler = async ({ deps }) => {
  let doc = documents.get(deps);
  if (!doc) documents.set(deps, (doc = openApiDocument({ version: deps.version, ...(deps.serverUrl ? { serverUrl: deps.serverUrl } : {}) })));
  return { status: 200, json: doc };
};

/**
 * The scheduled time a fire is for: Cloud Scheduler's header (the same on each retry of one
 * fire, hence the idempotency key), else the current minute (a hand-made fire, retried within
 * the minute, is still one fire).
 */
export function scheduledTime(header: string | string[] | undefined, now: Date): Date {
  if (header === undefined) return new Date(Math.floor(now.getTime() / 60_000) * 60_000);
  const value = Array.isArray(header) ? header[0] : header;
  const parsed = ScheduleTime.safeParse(value);
  if (!parsed.success) {
    throw new HttpError(400, "invalid_argument", "X-CloudScheduler-ScheduleTime: expected an RFC 3339 time like 2026-11-22T02:00:00Z", { field: "X-CloudScheduler-ScheduleTime" });
  }
  return new Date(parsed.data);
}

const fire: Handler = async (call) => {
  const { deps } = call;
  const name = parseInput(ScheduleName, call.params.name, "path", "name");
  const time = scheduledTime(call.headers["x-cloudscheduler-scheduletime"], deps.now());
  const { fireSchedule } = await optional(() => import("./schedules.js"), "firing schedules");
  const result = await fireSchedule({
    store: deps.store,
    launcher: deps.launcher,
    logger: call.logger,
    scheduleName: name,
    scheduledTime: time,
    root: deps.root,
    ...(deps.scheduleJobs ? { jobs: deps.scheduleJobs, cwd: deps.root } : {}),
    now: deps.now,
  });
  call.logger.child({ run: result.runId }).info(result.created ? "schedule fired" : "schedule fire repeated", { schedule: name, scheduledTime: result.scheduledTime, caller: call.principal.subject });
  return { status: result.created ? 202 : 200, json: result };
};

const reconcileHandler: Handler = async (call) => {
  parseInput(EmptyBody, (await call.body()) ?? {}, "body");
  const result = await call.deps.reconcile(call.logger);
  const failed = result.runs.filter((r) => r.outcome === "error").length;
  call.logger.info("reconciled", { checked: result.checked, failed, durationMs: result.durationMs });
  return { status: 200, json: result };
};

const runsPage: Handler = async (call) => {
  const { deps } = call;
  const { renderRunsPage } = await optional(() => import("./dashboard.js"), "the dashboard");
  const runs = await listRuns(deps.store, PAGE_RUNS);
  const limit = pLimit(8);
  const views = await Promise.all(
    runs.map((r) =>
      limit(async () => {
        try {
          const st = await readRunStatus(deps.store, r.runId, deps.launcher);
          return { ...r, state: st.state, progress: { succeeded: st.items.succeeded, failed: st.items.failed, total: st.items.total }, usage: st.usage };
        } catch {
          return r; // a run being written or damaged: list it without progress
        }
      }),
    ),
  );
  return { status: 200, html: renderRunsPage(views, { now: deps.now() }) };
};

const runPage: Handler = async (call) => {
  const { deps } = call;
  const { renderRunPage } = await optional(() => import("./dashboard.js"), "the dashboard");
  const run = await requireRun(deps, call.params.id);
  const { status, deadLetter } = await statusAndDeadLetter(deps, run.value);
  return { status: 200, html: renderRunPage(status, deadLetter, { now: deps.now() }) };
};

export const opsRoutes = {
  health,
  openapi,
  fireSchedule: fire,
  reconcile: reconcileHandler,
  runsPage,
  runPage,
} satisfies Record<string, Handler>;
