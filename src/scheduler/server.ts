/**
 * The scheduler service as a node:http request handler: routing, auth, JSON bodies with a size
 * limit, errors as `{error: {code, message, field}}` (never a stack), and one structured log
 * line per request with Cloud Logging's trace field. The handlers live in routes-runs.ts and
 * routes-ops.ts; this file knows HTTP, they know runs.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { errorMessage, isShardrunError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { packageRoot, packageVersion } from "../config/paths.js";
import type { Launcher } from "../launcher/port.js";
import type { ObjectStore } from "../store/port.js";
import { OPERATIONS, type ReconcileResult } from "./api.js";
import type { Authenticator, Principal } from "./auth.js";
import { reconcile } from "./reconcile.js";
import { HttpError, Router } from "./router.js";
import { opsRoutes } from "./routes-ops.js";
import { runRoutes } from "./routes-runs.js";

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
}

/** What handlers get: the service's parts, fixed at creation. */
export interface ServiceDeps extends Required<Pick<ServiceOptions, "store" | "launcher" | "logger" | "allowJobPaths" | "root" | "maxBodyBytes" | "reconcileConcurrency">> {
  now: () => Date;
  scheduleJobs?: readonly string[];
  serverUrl?: string;
  version: string;
  /** Runs being advanced by this process now (API calls and the timer share it). */
  busy: Set<string>;
  reconcile(logger?: Logger): Promise<ReconcileResult>;
}

/** One request, as a handler sees it. */
export interface Call {
  deps: ServiceDeps;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The JSON body, or undefined when empty; 413/415/400 when too big, not JSON, or malformed. */
  body(): Promise<unknown>;
  logger: Logger;
  principal: Principal;
}

export interface Reply {
  status: number;
  json?: unknown;
  html?: string;
  headers?: Record<string, string>;
}

export type Handler = (call: Call) => Promise<Reply>;

export interface Service {
  /** The node:http request listener. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Advances every run in flight once (the local timer calls it). */
  reconcile(): Promise<ReconcileResult>;
  /** Resolves once every request started so far has been answered (graceful shutdown). */
  drain(): Promise<void>;
}

/** Adds fields (the trace) to every line a logger writes. */
export function withFields(logger: Logger, fields: Record<string, unknown>): Logger {
  return {
    debug: (m, f) => logger.debug(m, { ...fields, ...f }),
    info: (m, f) => logger.info(m, { ...fields, ...f }),
    warn: (m, f) => logger.warn(m, { ...fields, ...f }),
    error: (m, f) => logger.error(m, { ...fields, ...f }),
    child: (labels) => withFields(logger.child(labels), fields),
  };
}

/**
 * Cloud Logging's trace field from `X-Cloud-Trace-Context: TRACE/SPAN;o=1` (or W3C
 * `traceparent`), so that a request's lines group under its trace in the console.
 */
export function traceFields(headers: IncomingHttpHeaders, project: string | undefined): Record<string, string> {
  const legacy = /^([0-9a-f]{32})(?:\/(\d+))?/i.exec(String(headers["x-cloud-trace-context"] ?? ""));
  const w3c = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-/i.exec(String(headers.traceparent ?? ""));
  const trace = legacy?.[1] ?? w3c?.[1];
  if (!trace || !project) return {};
  const span = legacy?.[2] ?? (w3c?.[2] ? BigInt(`0x${w3c[2]}`).toString() : undefined);
  return { "logging.googleapis.com/trace": `projects/${project}/traces/${trace}`, ...(span ? { "logging.googleapis.com/spanId": span } : {}) };
}

/** Reads a JSON body within the limit. Content-Length is checked before a byte is read. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? NaN);
  const tooBig = () => new HttpError(413, "payload_too_large", `the body is larger than ${limit} bytes`, { headers: { Connection: "close" } });
  if (declared > limit) throw tooBig();
  const type = String(req.headers["content-type"] ?? "");
  // A form or text body is refused even when empty: only JSON clients may change state.
  if (type && !/^application\/json\s*(;|$)/i.test(type)) throw new HttpError(415, "unsupported_media_type", `expected Content-Type: application/json, got ${type.slice(0, 100)}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooBig();
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    throw new HttpError(400, "invalid_json", "the body is not valid JSON", { field: "body" });
  }
}

/** Errors of the layers below, as answers: only messages written for users pass through. */
function toHttpError(e: unknown, logger: Logger): HttpError {
  if (e instanceof HttpError) return e;
  if (isShardrunError(e, "USAGE") || isShardrunError(e, "INVALID_INPUT")) return new HttpError(400, "invalid_argument", e.message);
  if (isShardrunError(e, "NOT_FOUND")) return new HttpError(404, "not_found", e.message);
  if (isShardrunError(e, "PRECONDITION_FAILED")) return new HttpError(409, "conflict", "the run changed while this request ran: try again");
  logger.error("internal error", { error: errorMessage(e), stack: e instanceof Error ? e.stack : undefined });
  return new HttpError(500, "internal", "internal error (see the service's logs)");
}

/** The request URL for logs, with a `token` query parameter (a dashboard link) masked. */
function loggedUrl(url: string): string {
  return url.replace(/([?&]token=)[^&]*/g, "$1REDACTED");
}

export function createService(options: ServiceOptions): Service {
  const logger = options.logger;
  const busy = new Set<string>();
  const deps: ServiceDeps = {
    store: options.store,
    launcher: options.launcher,
    logger,
    now: options.now ?? (() => new Date()),
    allowJobPaths: options.allowJobPaths ?? false,
    root: options.root ?? packageRoot(),
    maxBodyBytes: options.maxBodyBytes ?? 1 << 20,
    reconcileConcurrency: options.reconcileConcurrency ?? 4,
    ...(options.scheduleJobs ? { scheduleJobs: options.scheduleJobs } : {}),
    ...(options.serverUrl ? { serverUrl: options.serverUrl } : {}),
    version: packageVersion(),
    busy,
    reconcile: (log = logger) =>
      reconcile({ store: options.store, launcher: options.launcher, logger: log, busy, concurrency: options.reconcileConcurrency ?? 4, now: options.now ?? (() => new Date()) }),
  };
  const handlers = { ...runRoutes, ...opsRoutes };
  const router = new Router<{ handler: Handler; auth: boolean; html: boolean }>();
  for (const op of OPERATIONS) {
    const handler = handlers[op.operationId as keyof typeof handlers];
    if (!handler) throw new Error(`no handler for operation ${op.operationId}`);
    router.add(op.method, op.path, { handler, auth: op.auth !== false, html: Object.values(op.responses).some((r) => "html" in r && r.html) });
  }
  const inFlight = new Set<Promise<void>>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    const rawUrl = req.url ?? "/";
    const method = req.method ?? "GET";
    const reqLogger = withFields(logger, traceFields(req.headers, options.project));
    let status = 500;
    let principal: Principal | undefined;
    try {
      // The raw path, not a URL object's: WHATWG URL parsing resolves "..", "%2e%2e" included,
      // and ids must be judged as sent.
      const q = rawUrl.indexOf("?");
      const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
      const query = new URLSearchParams(q < 0 ? "" : rawUrl.slice(q + 1));
      const found = router.match(method, path);
      if (found.kind === "not-found") throw new HttpError(404, "not_found", `no such endpoint: ${method} ${path.slice(0, 200)}`);
      if (found.kind === "method-not-allowed") {
        throw new HttpError(405, "method_not_allowed", `${method} is not allowed here; use ${found.allow.join(", ")}`, { headers: { Allow: found.allow.join(", ") } });
      }
      const route = found.handler;
      if (route.auth) {
        // Pages are opened by navigation, which cannot set headers: they also take `?token=`.
        const token = route.html ? query.get("token") : null;
        const authorization = req.headers.authorization ?? (token ? `Bearer ${token}` : undefined);
        principal = await options.auth.authenticate({ authorization });
      } else {
        principal = { kind: "open", subject: "anonymous" };
      }
      if (route.html) query.delete("token");
      const call: Call = {
        deps,
        params: found.params,
        query,
        headers: req.headers,
        body: () => readJson(req, deps.maxBodyBytes),
        logger: reqLogger,
        principal,
      };
      const reply = await route.handler(call);
      status = reply.status;
      send(res, method, reply);
    } catch (e) {
      const err = toHttpError(e, reqLogger);
      status = err.status;
      send(res, method, { status: err.status, json: err.body(), headers: err.headers });
    } finally {
      const latency = Number(process.hrtime.bigint() - started) / 1e9;
      const line = {
        httpRequest: {
          requestMethod: method,
          requestUrl: loggedUrl(rawUrl).slice(0, 2000),
          status,
          latency: `${latency.toFixed(3)}s`,
          ...(req.headers["user-agent"] ? { userAgent: String(req.headers["user-agent"]).slice(0, 300) } : {}),
          ...(req.socket.remoteAddress ? { remoteIp: req.socket.remoteAddress } : {}),
        },
        ...(principal ? { caller: principal.subject } : {}),
      };
      if (rawUrl === "/healthz") reqLogger.debug("request", line);
      else if (status >= 500) reqLogger.error("request failed", line);
      else reqLogger.info("request", line);
    }
  };

  return {
    handler(req, res) {
      const p = handle(req, res).catch((e: unknown) => {
        // Only a failure to write the answer gets here: the client has gone.
        logger.warn("could not answer a request", { error: errorMessage(e) });
      });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    },
    reconcile: () => deps.reconcile(),
    async drain() {
      while (inFlight.size) await Promise.allSettled([...inFlight]);
    },
  };
}

function send(res: ServerResponse, method: string, reply: Reply): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // no-referrer: a dashboard URL may carry ?token=, and its pages link out (Cloud Console).
  const headers: Record<string, string> = { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", ...reply.headers };
  let body = "";
  if (reply.html !== undefined) {
    headers["Content-Type"] = "text/html; charset=utf-8";
    body = reply.html;
  } else if (reply.json !== undefined) {
    headers["Content-Type"] = "application/json; charset=utf-8";
    body = JSON.stringify(reply.json);
  }
  headers["Content-Length"] = String(Buffer.byteLength(body));
  res.writeHead(reply.status, headers);
  res.end(method === "HEAD" ? undefined : body);
}
