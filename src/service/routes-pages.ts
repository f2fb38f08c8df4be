/**
 * The dashboard's pages as routes. The pages themselves are another room (src/dashboard), pure
 * functions from status objects to HTML, loaded on first use: a service that never renders a
 * page never loads the page code.
 */
import { createRoute, z } from "@hono/zod-openapi";
import pLimit from "p-limit";
import { errorMessage, isShardrunError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import type { RunRecord } from "../core/model.js";
import { readFailedItems } from "../orchestrator/drive.js";
import { readRunStatus, statusOf } from "../orchestrator/read.js";
import { listRunSummaries } from "../orchestrator/run-list.js";
import type { Guards, ServiceApp, ServiceDeps } from "./context.js";
import { errors, noRun, optional } from "./route-kit.js";
import { requireRun } from "./routes-runs.js";
import { RunId } from "./schemas.js";

/** Runs the dashboard's list shows, newest first. */
const PAGE_RUNS = 50;

const html = { description: "HTML page.", content: { "text/html": { schema: z.string() } } };

/** Status (with its shards) and dead letter (the run page needs both). */
async function statusAndDeadLetter(deps: ServiceDeps, run: RunRecord) {
  const status = await statusOf(deps.store, run, deps.launcher, { shards: true });
  return { status, deadLetter: await readFailedItems(deps.store, run) };
}

export function registerPageRoutes(app: ServiceApp, deps: ServiceDeps, guard: Guards): void {
  app.openapi(
    createRoute({ method: "get", path: "/", operationId: "runsPage", summary: "Dashboard: the runs.", middleware: [guard.page] as const, responses: { 200: html, ...errors } }),
    async (c) => {
      const { renderRunsPage } = await optional(() => import("../dashboard/pages.js"), "the dashboard");
      // From the runs index: an unreadable run is listed as such, and never fails the page.
      const runs = await listRunSummaries(deps.store, { limit: PAGE_RUNS });
      const limit = pLimit(8);
      const views = await Promise.all(
        runs.map((r) =>
          limit(async () => {
            if (r.state === "unreadable" || r.state === "planning") return r;
            try {
              const st = await readRunStatus(deps.store, r.runId, deps.launcher);
              return { ...r, state: st.state, progress: { succeeded: st.items.succeeded, failed: st.items.failed, total: st.items.total }, usage: st.usage };
            } catch (e) {
              // Damaged since it was indexed: listed as such, never a failed page.
              if (isShardrunError(e, "INVALID_INPUT")) return { ...r, state: "unreadable" as const, reason: errorMessage(e), object: keys.run(r.runId) };
              return r; // a run being written: list it without progress
            }
          }),
        ),
      );
      return c.html(renderRunsPage(views, { now: deps.now() }), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/runs/{id}",
      operationId: "runPage",
      summary: "Dashboard: one run.",
      middleware: [guard.page] as const,
      request: { params: z.object({ id: RunId }) },
      responses: { 200: html, ...errors, ...noRun },
    }),
    async (c) => {
      const { renderRunPage } = await optional(() => import("../dashboard/pages.js"), "the dashboard");
      const run = await requireRun(deps, c.req.valid("param").id);
      const { status, deadLetter } = await statusAndDeadLetter(deps, run.value);
      return c.html(renderRunPage(status, deadLetter, { now: deps.now() }), 200);
    },
  );
}
