/**
 * The service's other endpoints: health, schedule fires and reconcile (the OpenAPI document is
 * the app's own, see app.ts). Schedules are another
 * room (src/schedules), loaded on first use: a service that never fires one never loads it.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Guards, ServiceApp, ServiceDeps } from "./context.js";
import { body, errors, json, optional } from "./route-kit.js";
import { EmptyBody, ErrorSchema, FireResult, Health, ReconcileResultSchema, ScheduleName, ScheduleTime } from "./schemas.js";

/**
 * The scheduled time a fire is for: Cloud Scheduler's header (the same on each retry of one
 * fire, hence the idempotency key), else the current minute (a hand-made fire, retried within
 * the minute, is still one fire).
 */
export function scheduledTime(header: string | undefined, now: Date): Date {
  if (header === undefined) return new Date(Math.floor(now.getTime() / 60_000) * 60_000);
  return new Date(header);
}

export function registerOpsRoutes(app: ServiceApp, deps: ServiceDeps, guard: Guards): void {
  app.openapi(
    createRoute({ method: "get", path: "/healthz", operationId: "health", summary: "Liveness check.", security: [], responses: { 200: json(Health, "Serving.") } }),
    (c) => c.json({ status: "ok" as const }, 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/schedules/{name}:fire",
      operationId: "fireSchedule",
      summary: "Start the run of a schedule for one scheduled time (idempotent per time).",
      middleware: [guard.api] as const,
      request: {
        params: z.object({ name: ScheduleName }),
        headers: z.object({
          "x-cloudscheduler-scheduletime": ScheduleTime.optional().describe(
            "X-CloudScheduler-ScheduleTime: the scheduled time (RFC 3339), the idempotency key; default: the current minute. Any body is ignored.",
          ),
        }),
      },
      responses: {
        202: json(FireResult, "A run was started."),
        200: json(FireResult, "This schedule time already has its run."),
        ...errors,
        404: json(ErrorSchema, "No such schedule."),
      },
    }),
    async (c) => {
      const name = c.req.valid("param").name;
      const time = scheduledTime(c.req.valid("header")["x-cloudscheduler-scheduletime"], deps.now());
      const { fireSchedule } = await optional(() => import("../schedules/fire.js"), "firing schedules");
      const result = await fireSchedule({
        store: deps.store,
        launcher: deps.launcher,
        logger: c.var.logger,
        scheduleName: name,
        scheduledTime: time,
        root: deps.root,
        ...(deps.scheduleJobs ? { jobs: deps.scheduleJobs, cwd: deps.root } : {}),
        now: deps.now,
      });
      c.var.logger.child({ run: result.runId }).info(result.created ? "schedule fired" : "schedule fire repeated", { schedule: name, scheduledTime: result.scheduledTime, caller: c.var.principal.subject });
      return result.created ? c.json(result, 202) : c.json(result, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/v1/reconcile",
      operationId: "reconcile",
      summary: "Advance every run in flight one step.",
      middleware: [guard.api, guard.body] as const,
      request: { body: body(EmptyBody) },
      responses: { 200: json(ReconcileResultSchema, "What each run did."), ...errors },
    }),
    async (c) => {
      const result = await deps.reconcile(c.var.logger);
      const failed = result.runs.filter((r) => r.outcome === "error").length;
      c.var.logger.info("reconciled", { checked: result.checked, failed, durationMs: result.durationMs });
      return c.json(result, 200);
    },
  );
}
