/**
 * The dashboard's pages as routes: the runs list (filtered), a run, its output as a download
 * (JSONL or CSV, with the dead letter or without, through output-format.ts as the CLI writes it),
 * the schedules. The pages themselves are another room (src/dashboard), pure functions from
 * status objects to HTML, loaded on first use: a service that never renders a page never loads
 * the page code. A browser without credentials gets the sign-in page instead of the API's JSON.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import pLimit from "p-limit";
import { errorMessage, isShardrunError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import { JOB_NAME_PATTERN } from "../core/job.js";
import { LISTED_STATES, type ListedState } from "../core/states.js";
import { jobFolderNames } from "../config/jobs.js";
import type { Logger } from "../core/log.js";
import type { OutputFormat } from "../orchestrator/output-format.js";
import { readRunStatus } from "../orchestrator/read.js";
import { readRunView } from "../orchestrator/run-view.js";
import type { ServiceApp, ServiceDeps, ServiceEnv, Guards } from "./context.js";
import { HttpError } from "./http-error.js";
import { errors, noRun, optional } from "./route-kit.js";
import { requireRun } from "./routes-runs.js";
import { RunId } from "./schemas.js";

/** Runs the list shows unless asked for more, and the most it shows. */
const PAGE_RUNS = 50;
const MAX_PAGE_RUNS = 200;
/** Next fire times shown per schedule. */
const NEXT_FIRES = 3;

const html = { description: "HTML page.", content: { "text/html": { schema: z.string() } } };
const token = z.string().optional().describe("The API token, for a browser opening the page (pages cannot send headers on navigation).");

/** The runs list's query, as the page takes it: checked by `runsFilters`, which answers a page, not JSON. */
const RunsPageQuery = z.object({
  job: z.string().optional().describe("Only runs of this job."),
  state: z.string().optional().describe("Only runs in this state (a word of `shardrun status`; pending finds runs planned and not launched)."),
  since: z.string().optional().describe("Only runs created since: a date (2026-11-22), a date-time with offset, or a span back from now (90m, 24h, 7d)."),
  limit: z.string().optional().describe(`Runs shown, newest first (1 to ${MAX_PAGE_RUNS}; default ${PAGE_RUNS}).`),
  token,
});

/** The formats of `shardrun output --format`, a route each (output-format.ts is loaded on first download). */
const OUTPUT_FORMATS = ["jsonl", "csv"] as const satisfies readonly OutputFormat[];
const FailedQuery = z.enum(["true", "false"]).optional().describe("`true`: the failed items (the dead letter) too, as `shardrun output --failed` adds them.");

const DOWNLOADS = {
  jsonl: { description: "JSON Lines: {i, key, output} per succeeded item; with failed=true, then {i, key, failed} per failed item.", content: { "application/x-ndjson": { schema: z.string() } } },
  csv: { description: "CSV (RFC 4180): a header, then a row per succeeded item; with failed=true, status, reason, error and attempts columns and a row per failed item.", content: { "text/csv": { schema: z.string() } } },
} as const;
const CONTENT_TYPES = { jsonl: "application/x-ndjson; charset=utf-8", csv: "text/csv; charset=utf-8; header=present" } as const satisfies Record<OutputFormat, string>;

/**
 * A download's body from its text, a chunk of up to 64 KiB at a time as the reader takes it: the
 * output is never held whole. Its first piece is read before answering, so that a damaged run is
 * an error answer, not a cut file.
 */
async function textStream(text: AsyncGenerator<string>, log: Logger): Promise<ReadableStream<Uint8Array>> {
  let pending: IteratorResult<string> | null;
  try {
    pending = await text.next();
  } catch (e) {
    if (isShardrunError(e, "DAMAGED")) throw new HttpError(500, "damaged", e.message);
    throw e;
  }
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        let chunk = "";
        while (chunk.length < 1 << 16) {
          const next: IteratorResult<string> = pending ?? (await text.next());
          pending = null;
          if (next.done) {
            if (chunk) controller.enqueue(encoder.encode(chunk));
            controller.close();
            return;
          }
          chunk += next.value;
        }
        controller.enqueue(encoder.encode(chunk));
      } catch (e) {
        // Headers are gone: the download fails visibly (cut off) rather than end short and look whole.
        log.error("output download failed midway", { error: e instanceof Error ? e.message : String(e) });
        controller.error(e);
      }
    },
    async cancel() {
      await text.return(undefined);
    },
  });
}

const INSTANT = z.union([z.iso.date(), z.iso.datetime({ offset: true })]);
const SPAN_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

interface ParsedFilters {
  shown: { job?: string; state?: string; since?: string; limit: number };
  /** For listRuns. */
  query: { job?: string; state?: ListedState; since?: Date; limit: number };
}

/** The filters, or a one-line message naming the one refused and what it takes. */
export function runsFilters(q: z.infer<typeof RunsPageQuery>, now: Date): ParsedFilters | string {
  const got = (v: string) => `, got ${JSON.stringify(v.slice(0, 80))}`;
  const shown: ParsedFilters["shown"] = { limit: PAGE_RUNS };
  const query: ParsedFilters["query"] = { limit: PAGE_RUNS };
  const job = q.job?.trim();
  if (job) {
    if (!JOB_NAME_PATTERN.test(job)) return `job: expected a job name of lowercase letters, digits and dashes, starting with a letter${got(job)}`;
    shown.job = query.job = job;
  }
  if (q.state) {
    if (!(LISTED_STATES as readonly string[]).includes(q.state)) return `state: expected one of ${LISTED_STATES.join(", ")}${got(q.state)}`;
    shown.state = q.state;
    query.state = q.state as ListedState;
  }
  if (q.since) {
    const span = /^(\d{1,5})([mhd])$/.exec(q.since);
    const since = span ? new Date(now.getTime() - Number(span[1]) * SPAN_MS[span[2] as keyof typeof SPAN_MS]) : INSTANT.safeParse(q.since).success ? new Date(q.since) : null;
    if (!since || Number.isNaN(since.getTime())) return `since: expected a span back from now like 24h or 7d, a date like 2026-11-22 or a date-time like 2026-11-22T02:00:00Z${got(q.since)}`;
    shown.since = q.since;
    query.since = since;
  }
  if (q.limit !== undefined) {
    const n = /^\d{1,4}$/.test(q.limit) ? Number(q.limit) : NaN;
    if (!(n >= 1 && n <= MAX_PAGE_RUNS)) return `limit: expected a whole number from 1 to ${MAX_PAGE_RUNS}${got(q.limit)}`;
    shown.limit = query.limit = n;
  }
  return { shown, query };
}

/** Paths of the JSON API and the service's own documents: never answered with a page. */
const NOT_PAGES = /^\/(v1(\/|$)|openapi\.json$|healthz$)/;

/** Headings for errors that are the store's damage, not a fault of the page or the service. */
const PAGE_ERROR_HEADINGS: Record<string, string> = {
  run_unreadable: "This run's record cannot be read",
  damaged: "This run's output is damaged",
};

/**
 * The error answer for a browser opening a page: an HTML page saying what went wrong, with the
 * way back to the runs list (an unknown page or run is a 404 page, not the API's JSON). Null for
 * API clients (they do not ask for HTML), API paths, and what the sign-in page answers (401, 403).
 */
export async function pageErrorAnswer(c: Context<ServiceEnv>, e: HttpError): Promise<Response | null> {
  if (e.status < 400 || e.status === 401 || e.status === 403 || e.status > 599 || !acceptsHtml(c) || NOT_PAGES.test(c.req.path)) return null;
  try {
    const { renderNoticePage } = await import("../dashboard/pages.js");
    const heading = PAGE_ERROR_HEADINGS[e.code];
    return c.html(renderNoticePage({ status: e.status, message: e.message, ...(heading ? { heading } : {}) }), e.status as 400, e.headers);
  } catch {
    return null; // a build without the dashboard: the JSON error
  }
}

const acceptsHtml = (c: Context<ServiceEnv>) => /\btext\/html\b/i.test(c.req.header("accept") ?? "");

/**
 * The page guard, with the sign-in page for a browser it turns away (401 or 403, before any
 * handler ran). API clients, which do not ask for HTML, get the API's JSON error as before.
 */
function pageGuard(guard: Guards["page"]): MiddlewareHandler<ServiceEnv> {
  return async (c, next) => {
    let passed = false;
    try {
      await guard(c, async () => {
        passed = true;
        await next();
      });
    } catch (e) {
      if (passed || !(e instanceof HttpError) || (e.status !== 401 && e.status !== 403) || !acceptsHtml(c)) throw e;
      const { renderSignInPage } = await optional(() => import("../dashboard/pages.js"), "the dashboard");
      const url = new URL(c.req.url);
      const query = Object.fromEntries([...url.searchParams].filter(([k]) => k !== "token"));
      const page = renderSignInPage({ path: url.pathname, origin: url.origin, query, status: e.status, message: e.message, hadToken: url.searchParams.has("token") });
      return c.html(page, e.status, e.headers);
    }
  };
}

export function registerPageRoutes(app: ServiceApp, deps: ServiceDeps, guards: Guards): void {
  const guard = pageGuard(guards.page);

  app.openapi(
    createRoute({
      method: "get",
      path: "/",
      operationId: "runsPage",
      summary: "Dashboard: the runs, newest first, filtered.",
      middleware: [guard] as const,
      request: { query: RunsPageQuery },
      responses: { 200: html, ...errors },
    }),
    async (c) => {
      const { renderRunsPage } = await optional(() => import("../dashboard/pages.js"), "the dashboard");
      const { listRunSummaries } = await import("../orchestrator/run-list.js");
      const now = deps.now();
      const jobs = jobFolderNames(deps.root);
      const filters = runsFilters(c.req.valid("query"), now);
      if (typeof filters === "string") return c.html(renderRunsPage([], { now, jobs, error: filters, maxLimit: MAX_PAGE_RUNS }), 400);
      // From the runs index: newest first by creation time; an unreadable run is listed as such.
      const summaries = await listRunSummaries(deps.store, filters.query);
      const limit = pLimit(8);
      const views = await Promise.all(
        summaries.map((r) =>
          limit(async () => {
            if (r.state === "unreadable" || r.state === "planning") return r;
            try {
              const st = await readRunStatus(deps.store, r.runId, deps.launcher, { shards: false });
              return { ...r, state: st.state, progress: { succeeded: st.items.succeeded, failed: st.items.failed, total: st.items.total }, usage: st.usage };
            } catch (e) {
              // Damaged since it was indexed: listed as such, never a failed page.
              if (isShardrunError(e, "INVALID_INPUT")) return { ...r, state: "unreadable" as const, reason: errorMessage(e), object: keys.run(r.runId) };
              return r; // a run being written: list it without progress
            }
          }),
        ),
      );
      return c.html(renderRunsPage(views, { now, jobs: [...new Set([...jobs, ...views.map((v) => v.job)])].sort(), filters: filters.shown, maxLimit: MAX_PAGE_RUNS }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/runs/{id}",
      operationId: "runPage",
      summary: "Dashboard: one run.",
      middleware: [guard] as const,
      request: { params: z.object({ id: RunId }), query: z.object({ token }) },
      responses: { 200: html, ...errors, ...noRun },
    }),
    async (c) => {
      const { renderRunPage, renderPlanningPage, renderNoticePage } = await optional(() => import("../dashboard/pages.js"), "the dashboard");
      const { readRunPageData } = await import("../orchestrator/run-page-data.js");
      const id = c.req.valid("param").id;
      let run = await requireRun(deps, id).catch((e: unknown) => {
        if (e instanceof HttpError && e.status === 404) return null;
        throw e;
      });
      if (!run) {
        // Not committed: a run the API is still planning in the background, one whose plan
        // failed or was cancelled (this process remembers why), or none.
        const planning = await readRunView(deps.store, id, deps.launcher);
        if (planning && (planning.state === "planning" || planning.state === "cancelled")) return c.html(renderPlanningPage(planning), 200);
        const failed = deps.planFailures.get(id);
        if (!planning && failed) return c.html(renderNoticePage({ status: 404, heading: `Run ${id} was not planned`, message: `${failed.charAt(0).toUpperCase()}${failed.slice(1)}; nothing of it was left in the store.` }), 404);
        // Committed in between the two reads: its page, as usual.
        run = await requireRun(deps, id);
      }
      const now = deps.now();
      const view = await readRunPageData(deps.store, run.value, { launcher: deps.launcher, now });
      const st = view.status;
      // Only a stopped run with something left to rerun offers the upgrade; checking builds the job.
      const rerunnable = !["planning", "pending", "running"].includes(st.state) && (st.shards.done < st.shards.total || st.items.failed > 0);
      const code = rerunnable ? await (await import("../orchestrator/job-version.js")).jobCodeChange(run.value) : undefined;
      return c.html(renderRunPage(st, view.failed, { now, history: view.history, historySource: "parts", ...(code ? { code } : {}) }), 200);
    },
  );

  for (const format of OUTPUT_FORMATS) {
    app.openapi(
      createRoute({
        method: "get",
        path: `/runs/{id}/output.${format}`,
        operationId: format === "jsonl" ? "runOutputDownload" : "runOutputDownloadCsv",
        summary: `Dashboard: the run's merged output as a ${format.toUpperCase()} download, as \`shardrun output --format ${format}\` writes it (with \`failed=true\`, as \`--failed\` does).`,
        middleware: [guard] as const,
        request: { params: z.object({ id: RunId }), query: z.object({ failed: FailedQuery, token }) },
        responses: { 200: DOWNLOADS[format], ...errors, ...noRun },
      }),
      async (c) => {
        const run = await requireRun(deps, c.req.valid("param").id);
        const failed = c.req.valid("query").failed === "true";
        const runId = run.value.runId;
        const { formatOutput } = await import("../orchestrator/output-format.js");
        const body = await textStream(formatOutput(deps.store, run.value, { format, failed }), c.var.logger.child({ run: runId }));
        const name = `${runId}${failed ? "-with-failed" : ""}.${format}`;
        const answer = c.body(body, 200, { "Content-Type": CONTENT_TYPES[format], "Content-Disposition": `attachment; filename="${name}"` });
        // zod-openapi types any `application/…json…` answer as one JSON document; this one is a stream of lines.
        return answer as unknown as never;
      },
    );
  }

  app.openapi(
    createRoute({
      method: "get",
      path: "/schedules",
      operationId: "schedulesPage",
      summary: "Dashboard: the jobs' schedules, their next fire times and Run now.",
      middleware: [guard] as const,
      request: { query: z.object({ token }) },
      responses: { 200: html, ...errors },
    }),
    async (c) => {
      const { renderSchedulesPage } = await optional(() => import("../dashboard/pages.js"), "the dashboard");
      const { loadScheduleCatalog } = await optional(() => import("../schedules/load.js"), "schedules");
      const { nextFireTimes } = await import("../schedules/cron.js");
      const { scheduleTrigger } = await import("../schedules/fire.js");
      const { listRunSummaries } = await import("../orchestrator/run-list.js");
      const now = deps.now();
      const catalog = await loadScheduleCatalog({ root: deps.root, ...(deps.scheduleJobs ? { jobs: deps.scheduleJobs, cwd: deps.root } : {}) });
      // The newest runs of each job, once: a schedule's last run is the newest with its trigger.
      const byJob = new Map<string, Awaited<ReturnType<typeof listRunSummaries>>>();
      for (const job of new Set(catalog.schedules.map((s) => s.job))) byJob.set(job, await listRunSummaries(deps.store, { job, limit: 50 }));
      const views = catalog.schedules.map((s) => {
        const last = byJob.get(s.job)?.find((r) => r.state !== "unreadable" && r.trigger === scheduleTrigger(s.name));
        return {
          name: s.name,
          job: s.job,
          cron: s.cron,
          timeZone: s.timeZone,
          args: s.args,
          paused: s.paused,
          ...(s.description ? { description: s.description } : {}),
          next: nextFireTimes(s, NEXT_FIRES, now).map((d) => d.toISOString()),
          ...(last ? { lastRun: { runId: last.runId, state: last.state, createdAt: last.createdAt } } : {}),
        };
      });
      return c.html(renderSchedulesPage(views, catalog.unavailable, { now }), 200);
    },
  );
}
