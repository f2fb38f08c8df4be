/**
 * `shardrun serve`: the scheduler service. On Cloud Run (the default) it launches Cloud Run
 * Jobs executions, checks Google-signed OIDC tokens, and is reconciled by a Cloud Scheduler job
 * calling `POST /v1/reconcile`. With `--local` it launches local processes, checks a bearer
 * token, reconciles itself on a timer, and fires the jobs' schedules itself (croner).
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { UsageError, errorMessage } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { createLogger } from "../log/logger.js";
import { cloudSettings, requireProjectRegion } from "../config/cloud.js";
import { ENV } from "../config/env.js";
import { LocalLauncher } from "../launcher/local.js";
import type { Launcher } from "../launcher/port.js";
import { authenticatorFromEnv, tokenAuthenticator, type Authenticator } from "../service/auth.js";
import { createService } from "../service/app.js";
import { killGraceFromFlags, portNumber, wholeFlag, type StoreFlags } from "./flags.js";
import { localStateDir, openCliStore, type Io } from "./io.js";

/** Seconds Cloud Run waits between SIGTERM and SIGKILL, less a margin for the last log lines. */
const SHUTDOWN_MS = 8_000;

export interface ServeFlags extends StoreFlags {
  local?: boolean;
  port?: string;
  host?: string;
  reconcileEvery?: string;
  killGrace?: string;
}

export async function serveCommand(flags: ServeFlags, io: Io): Promise<number> {
  const env = io.env ?? process.env;
  const local = flags.local === true;
  const port = flags.port !== undefined ? portNumber(flags.port, "--port") : env[ENV.port] ? portNumber(env[ENV.port]!, ENV.port) : 8080;
  // Locally only this machine may connect; Cloud Run routes to the container's interfaces.
  const host = flags.host ?? (local ? "127.0.0.1" : "0.0.0.0");
  const every = wholeFlag(flags.reconcileEvery, "--reconcile-every", 0, 24 * 3600) ?? (local ? 10 : 0);
  const grace = killGraceFromFlags(flags);
  const logger = createLogger({ format: "json", write: (line) => io.stdout.write(line), labels: { component: "scheduler" } });

  // Auth first: a service that would refuse every call should not get as far as a launcher.
  const auth = chooseAuth(local, logger, env);
  const store = await openCliStore(flags, io);
  const settings = cloudSettings({ ...(flags.project !== undefined ? { project: flags.project } : {}), ...(flags.region !== undefined ? { region: flags.region } : {}) }, io.cwd, env);
  let launcher: Launcher;
  if (local) {
    launcher = new LocalLauncher({ stateDir: localStateDir(store, io.cwd), ...(grace !== undefined ? { killGraceSeconds: grace } : {}) });
  } else {
    const { project, region } = requireProjectRegion(settings, "serve");
    if (store.url.startsWith("file://")) throw new UsageError(`serve: Cloud Run tasks cannot reach a local folder store (${store.url}); give --store gs://bucket/prefix, or add --local`);
    const [{ CloudRunLauncher }, { cloudRunClientOptions }] = await Promise.all([import("../launcher/cloud-run.js"), import("../launcher/cloud-run-endpoint.js")]);
    const clientOptions = cloudRunClientOptions();
    launcher = new CloudRunLauncher({ project, region, ...(clientOptions ? { clientOptions } : {}) });
  }

  const service = createService({
    store,
    launcher,
    auth,
    logger,
    ...(settings.project ? { project: settings.project } : {}),
    ...(env[ENV.oidcAudience] ? { serverUrl: env[ENV.oidcAudience]!.split(",")[0]!.trim() } : {}),
  });
  // Listened for before the port opens: a SIGTERM right after start must still stop gracefully.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  const server = createServer(service.handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => reject(e.code === "EADDRINUSE" ? new UsageError(`serve: port ${port} on ${host} is in use (give --port)`) : e));
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  logger.info("serving", { url: `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`, store: store.url, launcher: launcher.kind, auth: auth.kind, reconcileEverySeconds: every });

  // The reconcile timer: the next round is set when the last one ends, so rounds never overlap.
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<unknown> = Promise.resolve();
  let stopping = false;
  const schedule = () => {
    if (stopping || every <= 0) return;
    timer = setTimeout(() => {
      round = service
        .reconcile()
        .then((r) => {
          if (r.runs.some((x) => x.outcome !== "live" && x.outcome !== "skipped")) logger.info("reconciled", { checked: r.checked, runs: r.runs });
        })
        .catch((e: unknown) => logger.error("reconcile failed", { error: errorMessage(e) }))
        .finally(schedule);
    }, every * 1000);
  };
  schedule();

  let cron: { stop(): void; idle(): Promise<void> } | undefined;
  if (local) {
    try {
      const { startLocalCron } = await import("../schedules/cron.js");
      cron = startLocalCron({ store, launcher, logger: logger.child({ component: "cron" }) });
    } catch (e) {
      logger.warn("local cron unavailable: schedules will not fire by themselves", { error: errorMessage(e) });
    }
  }

  // Graceful shutdown: stop taking work, let requests and the current reconcile round finish.
  const signal = await stopSignal;
  stopping = true;
  logger.info("shutting down", { signal });
  clearTimeout(timer);
  cron?.stop();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // The driver leases the last round took are given back after it (a second after each was taken).
  const finished = Promise.all([closed, service.drain(), round, cron?.idle()]).then(() => service.drain());
  const timedOut = await Promise.race([finished.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), SHUTDOWN_MS).unref())]);
  if (timedOut) {
    logger.warn("shutdown deadline reached with work in flight; reconcile will pick it up", {});
    server.closeAllConnections();
  }
  logger.info("stopped", {});
  return 0;
}

/**
 * OIDC when SHARDRUN_OIDC_AUDIENCE is set, else SHARDRUN_API_TOKEN. Locally with neither, a
 * random token for this session (printed once): the API is never open, not even on loopback,
 * where any web page could otherwise reach it. On Cloud Run with neither, refuse to start.
 */
function chooseAuth(local: boolean, logger: Logger, env: NodeJS.ProcessEnv): Authenticator {
  let auth: Authenticator | null;
  try {
    auth = authenticatorFromEnv(env, logger);
  } catch (e) {
    throw new UsageError(`serve: ${errorMessage(e)}`);
  }
  if (auth) return auth;
  if (!local) {
    throw new UsageError(`serve: set ${ENV.oidcAudience} (the service URL) and ${ENV.allowedServiceAccounts} (who may call), or ${ENV.apiToken}; or add --local`);
  }
  const token = randomBytes(24).toString("hex");
  logger.warn(`no ${ENV.apiToken} set: this session's API token is ${token} (send "Authorization: Bearer ${token}"; the dashboard takes ?token=${token})`, {});
  return tokenAuthenticator({ token });
}
