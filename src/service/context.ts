/**
 * What the service's parts share: the dependencies fixed at creation, and the Hono environment
 * every route and middleware is typed with. Its own file, so that the app and its route modules
 * import it and not one another (no import circle).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { Logger } from "../core/log.js";
import type { PlanLimits } from "../core/plan.js";
import type { Launcher } from "../launcher/port.js";
import type { ReconcileResult } from "../orchestrator/reconcile.js";
import type { ObjectStore } from "../store/port.js";
import type { Principal } from "./auth.js";

/** What handlers get: the service's parts, fixed at creation. */
export interface ServiceDeps {
  store: ObjectStore;
  launcher: Launcher;
  logger: Logger;
  now: () => Date;
  /** Accept a job module path in `POST /v1/jobs/{job}/runs` (tests only). */
  allowJobPaths: boolean;
  /** The package whose `jobs/` folders hold the jobs. */
  root: string;
  maxBodyBytes: number;
  scheduleJobs?: readonly string[];
  serverUrl?: string;
  version: string;
  /** Runs being advanced by this process now (API calls and the timer share it). */
  busy: Set<string>;
  /** The most a request may plan: a body asking for more is refused at once. */
  limits: PlanLimits;
  /** How long a start request waits for its plan to read every item before answering 202 `planning`. */
  planAnswerMs: number;
  /** Plans this process runs in the background, by run id: cancelled at once by `:cancel`. */
  plans: Map<string, { abort: AbortController; done: Promise<void> }>;
  /** Why background plans failed after their 202 (recent ones), for the 404 of their run. */
  planFailures: Map<string, string>;
  reconcile(logger?: Logger): Promise<ReconcileResult>;
}

/** The Hono environment: node:http's request and response, and what middleware sets per request. */
export interface ServiceEnv {
  Bindings: { incoming?: IncomingMessage; outgoing?: ServerResponse };
  Variables: {
    /** The request's logger: the service's, with the request's trace fields. */
    logger: Logger;
    /** Who is calling, once auth has passed. */
    principal: Principal;
  };
}

export type ServiceApp = OpenAPIHono<ServiceEnv>;

/** The middleware a route module puts in front of its handlers. */
export interface Guards {
  /** Auth from the Authorization header: the JSON API. */
  api: MiddlewareHandler<ServiceEnv>;
  /** Auth from the header or `?token=`: pages, opened by navigation, cannot set headers. */
  page: MiddlewareHandler<ServiceEnv>;
  /** A JSON body within the size limit, parsed (415, 413 and 400 otherwise). */
  body: MiddlewareHandler<ServiceEnv>;
}
