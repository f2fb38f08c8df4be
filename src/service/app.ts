/**
 * The scheduler service as a Hono app (`@hono/zod-openapi`), served by node:http through
 * `@hono/node-server`. Each route (routes-*.ts) is declared once with its zod schemas, which
 * validate the request and make the OpenAPI document at `/openapi.json`. This file adds what
 * every request gets: auth, JSON bodies within a size limit, errors as
 * `{error: {code, message, field}}` (never a stack), security headers, 405 with `Allow`, and one
 * structured log line per request with Cloud Logging's trace field.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { OpenAPIHono, createRoute, z } from "@hono/zod-openapi";
import { getRequestListener } from "@hono/node-server";
import type { MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { PatternRouter } from "hono/router/pattern-router";
import { secureHeaders } from "hono/secure-headers";
import { getPath } from "hono/utils/url";
import { errorMessage, isShardrunError } from "../core/errors.js";
import { withFields, type Logger } from "../core/log.js";
import { packageRoot, packageVersion } from "../config/paths.js";
import type { Launcher } from "../launcher/port.js";
import { leaseReleases, reconcile, type ReconcileResult } from "../orchestrator/reconcile.js";
import type { PlanLimits } from "../core/plan.js";
import { resolveLimits } from "../orchestrator/plan.js";
import type { ObjectStore } from "../store/port.js";
import type { Authenticator, Principal } from "./auth.js";
import { jsonBody } from "./body.js";
import type { Guards, ServiceApp, ServiceDeps, ServiceEnv } from "./context.js";
import { ClientClosedRequest, HttpError } from "./http-error.js";
import { registerOpsRoutes } from "./routes-ops.js";
import { pageErrorAnswer, registerPageRoutes } from "./routes-pages.js";
import { registerRunRoutes } from "./routes-runs.js";
import { invalidInput, type InputPlace } from "./schemas.js";
import { traceFields } from "./trace.js";

export type { ServiceDeps } from "./context.js";

export interface ServiceOptions {
  store: ObjectStore;
  /** Starts and cancels executions: Cloud Run Jobs, or local processes. */
  launcher: Launcher;
  auth: Authenticator;
  logger: Logger;
  /** The clock (fire times default to its current minute). @default () => new Date() */
  now?: () => Date;
  /**
   * Accept a job module path (URL-encoded) in `POST /v1/jobs/{job}/runs`, resolved against
   * `root`. For tests only: a caller could otherwise run any module on the server's disk.
   * @default false
   */
  allowJobPaths?: boolean;
  /** The package whose `jobs/` folders hold the jobs. @default the shardrun package root */
  root?: string;
  /** Job names or module paths whose schedules `…:fire` knows. @default every job under `<root>/jobs/` */
  scheduleJobs?: readonly string[];
  /** Google Cloud project, for the trace field of log lines. */
  project?: string;
  /** @default 1048576 (1 MiB) */
  maxBodyBytes?: number;
  /** Runs a reconcile advances at once. @default 4 */
  reconcileConcurrency?: number;
  /** The service's own URL, shown in the OpenAPI document. */
  serverUrl?: string;
  /**
   * The most one request may plan. A body may ask for less (`maxItems`, `maxShards`), never more.
   * @default SHARDRUN_MAX_ITEMS / SHARDRUN_MAX_SHARDS, else 10,000,000 items and 200,000 shards
   */
  limits?: Partial<PlanLimits>;
  /**
   * How long `POST /v1/jobs/{job}/runs` waits for its plan to read and check every item (limits,
   * keys, settings) before it answers 202 with the run `planning`: a request over a limit found
   * within it is refused with nothing written; the plan goes on in the background after it.
   * @default 1000
   */
  planAnswerMs?: number;
}

export interface Service {
  /** The Hono app; `app.request()` answers without a socket (tests). */
  app: ServiceApp;
  /** The node:http request listener. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Advances every run in flight once (the local timer calls it). */
  reconcile(): Promise<ReconcileResult>;
  /** Resolves once every request started so far has been answered (graceful shutdown). */
  drain(): Promise<void>;
}

/** Where zod-openapi's validators found the value, as error messages name it. */
const PLACES: Record<string, InputPlace> = { json: "body", query: "query", param: "path", header: "header" };

/** Not an HTTP status anyone receives: nginx's code for "the client closed the request", for the log line. */
const CLIENT_CLOSED = 499;

/**
 * The path to route on, as the client sent it: node-server builds the Request's URL with the
 * WHATWG parser, which resolves "..", "%2e%2e" included, and ids must be judged as sent.
 */
function rawPath(request: Request, options?: { env?: unknown }): string {
  const incoming = (options?.env as ServiceEnv["Bindings"] | undefined)?.incoming;
  // Hono's getPath reads only `url`; a Request object would normalize it again.
  return getPath(incoming?.url?.startsWith("/") ? ({ url: `http://raw${incoming.url}` } as Request) : request);
}

/** Errors of the layers below, as answers: only messages written for users pass through. */
function toHttpError(e: unknown, logger: Logger): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof ClientClosedRequest) return new HttpError(CLIENT_CLOSED, "client_closed_request", e.message);
  if (e instanceof HTTPException && e.status === 415) return new HttpError(415, "unsupported_media_type", "expected Content-Type: application/json");
  if (e instanceof HTTPException && e.status < 500) return new HttpError(e.status, "invalid_argument", e.message);
  if (isShardrunError(e, "USAGE") || isShardrunError(e, "INVALID_INPUT")) return new HttpError(400, "invalid_argument", e.message);
  if (isShardrunError(e, "NOT_FOUND")) return new HttpError(404, "not_found", e.message);
  if (isShardrunError(e, "PRECONDITION_FAILED")) return new HttpError(409, "conflict", "the run changed while this request ran: try again");
  logger.error("internal error", { error: errorMessage(e), stack: e instanceof Error ? e.stack : undefined });
  return new HttpError(500, "internal", "internal error (see the service's logs)");
}

function answer(e: HttpError): Response {
  return new Response(JSON.stringify(e.body()), { status: e.status, headers: { "Content-Type": "application/json; charset=utf-8", ...e.headers } });
}

/** The request URL for logs, with a `token` query parameter (a dashboard link) masked. */
function loggedUrl(url: string): string {
  return url.replace(/([?&]token=)[^&]*/g, "$1REDACTED");
}

/** The access log: one line per request, with its latency, status and caller. */
function requestLog(logger: Logger, project: string | undefined): MiddlewareHandler<ServiceEnv> {
  return async (c, next) => {
    const started = process.hrtime.bigint();
    const url = new URL(c.req.url);
    const rawUrl = c.env?.incoming?.url ?? `${url.pathname}${url.search}`;
    const reqLogger = withFields(logger, traceFields(c.req.header(), project));
    c.set("logger", reqLogger);
    try {
      await next();
    } finally {
      const status = c.res.status;
      const principal = c.get("principal") as Principal | undefined;
      const userAgent = c.req.header("user-agent");
      const remoteIp = c.env?.incoming?.socket.remoteAddress;
      const line = {
        httpRequest: {
          requestMethod: c.req.method,
          requestUrl: loggedUrl(rawUrl).slice(0, 2000),
          status,
          latency: `${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(3)}s`,
          ...(userAgent ? { userAgent: userAgent.slice(0, 300) } : {}),
          ...(remoteIp ? { remoteIp } : {}),
        },
        ...(principal ? { caller: principal.subject } : {}),
      };
      // A client that hangs up is its own business: one plain line, no stack.
      if (status === CLIENT_CLOSED) reqLogger.info("client closed the connection before the request was read", line);
      else if (rawUrl === "/healthz") reqLogger.debug("request", line);
      else if (status >= 500) reqLogger.error("request failed", line);
      else reqLogger.info("request", line);
    }
  };
}

function authGuard(auth: Authenticator, pages: boolean): MiddlewareHandler<ServiceEnv> {
  return async (c, next) => {
    // Pages are opened by navigation, which cannot set headers: they also take `?token=`.
    const token = pages ? c.req.query("token") : undefined;
    const authorization = c.req.header("authorization") ?? (token ? `Bearer ${token}` : undefined);
    c.set("principal", await auth.authenticate({ authorization }));
    await next();
  };
}

/** Hono routes a method it has no handler for as a 404; the API says 405 and what is allowed. */
function methodNotAllowed(app: ServiceApp): void {
  const byPath = new Map<string, Set<string>>();
  for (const def of app.openAPIRegistry.definitions) {
    if (def.type !== "route") continue;
    (byPath.get(def.route.path) ?? byPath.set(def.route.path, new Set()).get(def.route.path)!).add(def.route.method.toUpperCase());
  }
  for (const [path, methods] of byPath) {
    const allow = [...methods].join(", ");
    // A parameter stops at a custom method's colon: `POST /v1/runs/x:explode` is no endpoint.
    app.all(path.replace(/\{(\w+)\}/g, ":$1{[^/:]+}"), (c) => {
      throw new HttpError(405, "method_not_allowed", `${c.req.method} is not allowed here; use ${allow}`, { headers: { Allow: allow } });
    });
  }
}

export function createService(options: ServiceOptions): Service {
  const logger = options.logger;
  const busy = new Set<string>();
  const now = options.now ?? (() => new Date());
  const deps: ServiceDeps = {
    store: options.store,
    launcher: options.launcher,
    logger,
    now,
    allowJobPaths: options.allowJobPaths ?? false,
    root: options.root ?? packageRoot(),
    maxBodyBytes: options.maxBodyBytes ?? 1 << 20,
    ...(options.scheduleJobs ? { scheduleJobs: options.scheduleJobs } : {}),
    ...(options.serverUrl ? { serverUrl: options.serverUrl } : {}),
    version: packageVersion(),
    busy,
    limits: resolveLimits(options.limits),
    planAnswerMs: options.planAnswerMs ?? 1000,
    plans: new Map(),
    planFailures: new Map(),
    reconcile: (log = logger) => reconcile({ store: options.store, launcher: options.launcher, logger: log, busy, concurrency: options.reconcileConcurrency ?? 4, now }),
  };

  const app: ServiceApp = new OpenAPIHono<ServiceEnv>({
    // Google-style custom methods (`/v1/runs/{id}:rerun`) put a verb after a parameter in one
    // path segment; of Hono's routers only the PatternRouter matches a parameter that does not
    // fill its segment. The service has a dozen routes: a linear scan costs nothing.
    router: new PatternRouter(),
    getPath: rawPath,
    defaultHook: (result, c) => {
      if (!result.success) throw invalidInput(result.error, PLACES[result.target] ?? "body", (result as { data?: unknown }).data ?? (result.target === "header" ? c.req.header() : undefined));
    },
  });
  // A browser opening a page gets its errors as a page (routes-pages.ts); API clients get JSON.
  app.onError(async (e, c) => {
    const error = toHttpError(e, c.get("logger") ?? logger);
    return (await pageErrorAnswer(c, error)) ?? answer(error);
  });
  app.notFound(async (c) => {
    const path = c.req.path.slice(0, 200);
    return (await pageErrorAnswer(c, new HttpError(404, "not_found", `there is no page at ${path}`))) ?? answer(new HttpError(404, "not_found", `no such endpoint: ${c.req.method} ${path}`));
  });

  app.use(requestLog(logger, options.project));
  app.use(
    secureHeaders({
      // The dashboard must not be framed by another site (clickjacking of its rerun and cancel buttons).
      contentSecurityPolicy: { frameAncestors: ["'none'"] },
      xFrameOptions: "DENY",
      // A dashboard URL may carry ?token=, and its pages link out (Cloud Console).
      referrerPolicy: "no-referrer",
    }),
  );
  app.use(async (c, next) => {
    await next();
    c.header("Cache-Control", "no-store");
  });

  const guards: Guards = { api: authGuard(options.auth, false), page: authGuard(options.auth, true), body: jsonBody(deps.maxBodyBytes) };
  registerOpsRoutes(app, deps, guards);
  registerRunRoutes(app, deps, guards);
  registerPageRoutes(app, deps, guards);

  // Built once per service (it names the service's URL), on first request.
  let doc: unknown;
  app.openapi(
    createRoute({
      method: "get",
      path: "/openapi.json",
      operationId: "openapi",
      summary: "This document.",
      security: [],
      responses: { 200: { description: "OpenAPI 3.1 document.", content: { "application/json": { schema: z.record(z.string(), z.unknown()) } } } },
    }),
    (c) => c.json((doc ??= openApiDocument(app, deps)) as Record<string, unknown>, 200),
  );
  methodNotAllowed(app);

  const listener = getRequestListener((request, env) => app.fetch(request, env));
  const inFlight = new Set<Promise<void>>();
  return {
    app,
    handler(req, res) {
      const p = listener(req, res).catch((e: unknown) => {
        // Only a failure to write the answer gets here: the client has gone.
        logger.warn("could not answer a request", { error: errorMessage(e) });
      });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    },
    reconcile: () => deps.reconcile(),
    async drain() {
      // Answered requests first, then the plans they left running in the background.
      while (inFlight.size) await Promise.allSettled([...inFlight]);
      while (deps.plans.size) await Promise.allSettled([...deps.plans.values()].map((p) => p.done));
      // Then the driver leases they took, given back a second after they were taken.
      await leaseReleases();
    },
  };
}

/** The OpenAPI 3.1 document, from the routes' own schemas. */
export function openApiDocument(app: ServiceApp, deps: Pick<ServiceDeps, "version" | "serverUrl">): unknown {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "A Google-signed OIDC ID token (Cloud Run) or the local API token.",
  });
  return app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "shardrun scheduler",
      version: deps.version,
      description:
        "Starts, watches, continues, reruns and cancels shardrun runs. Every call but /healthz and /openapi.json needs `Authorization: Bearer <token>`: " +
        "on Cloud Run a Google-signed OIDC ID token for the service's audience from an allowed service account; locally the SHARDRUN_API_TOKEN.",
    },
    ...(deps.serverUrl ? { servers: [{ url: deps.serverUrl }] } : {}),
    security: [{ bearer: [] }],
  });
}
