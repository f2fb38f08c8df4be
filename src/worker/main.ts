/**
 * The task entrypoint (`shardrun worker`, or this file directly for a faster start). Reads the
 * Cloud Run and SHARDRUN_* environment, works its shards, and exits with a code that tells the
 * launcher whether to retry: 0 done, 75 stopped with work left, 1 internal error.
 */
import { hostname } from "node:os";
import { ExitCode, errorMessage, isShardrunError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import { createLogger } from "../log/logger.js";
import { LaunchRecord, RunRecord } from "../core/model.js";
import { readTaskConfig } from "../config/env.js";
import { loadRunJob } from "../config/jobs.js";
import { getJson } from "../store/json.js";
import { openStore } from "../store/open.js";
import { abortGraceMs } from "./item.js";
import { checkLaunchClaim } from "./launch-claim.js";
import { runTask } from "./task.js";
import { startWatchdog, type Watchdog } from "./watchdog.js";

/** Seconds before the deadline at which a task stops taking items: 10% of it, 0.5 s to 60 s. */
export function deadlineMargin(timeoutSeconds: number): number {
  return Math.min(60, Math.max(0.5, timeoutSeconds * 0.1));
}

export async function workerMain(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const startedAt = Date.now() - Math.round(process.uptime() * 1000);
  const config = readTaskConfig(env);
  const logger = createLogger({
    format: config.logFormat,
    write: (l) => process.stderr.write(l),
    labels: { run: config.runId, task: String(config.taskIndex), attempt: String(config.attempt) },
  });
  const stop = new AbortController();
  const abortItems = new AbortController();
  const timers: NodeJS.Timeout[] = [];
  let checkpointActive: (() => Promise<void>) | null = null;
  let watchdog: Watchdog | null = null;

  if (config.deadlineSeconds) {
    const deadline = startedAt + config.deadlineSeconds * 1000;
    const margin = (config.deadlineMarginSeconds ?? deadlineMargin(config.deadlineSeconds)) * 1000;
    // Protocol 4: stop taking items before the deadline; abandon the ones in flight a little
    // later, leaving time for the last checkpoint.
    timers.push(setTimeout(() => stop.abort(new Error("deadline")), Math.max(0, deadline - margin - Date.now())));
    timers.push(setTimeout(() => abortItems.abort(new Error("deadline")), Math.max(0, deadline - margin / 2 - Date.now())));
  }
  const onTerm = () => {
    logger.info("SIGTERM: checkpointing and stopping");
    stop.abort(new Error("SIGTERM"));
    timers.push(setTimeout(() => abortItems.abort(new Error("SIGTERM")), 2000));
  };
  const onTstp = () => {
    logger.info("SIGTSTP: checkpointing");
    void checkpointActive?.();
  };
  process.on("SIGTERM", onTerm);
  process.on("SIGINT", onTerm);
  process.on("SIGTSTP", onTstp);
  try {
    const store = await openStore(config.store);
    const run = await getJson(store, keys.run(config.runId), RunRecord);
    if (!run) throw new Error(`run ${config.runId} not found in ${store.url}`);
    const launch = await getJson(store, keys.launch(config.runId, config.launch), LaunchRecord);
    if (!launch) throw new Error(`launch ${config.launch} of run ${config.runId} not found in ${store.url}`);
    // Protocol 6: only the execution that claimed the launch works it. Exit 0 otherwise, so
    // that the task is not retried.
    const elsewhere = await checkLaunchClaim(store, config.runId, config.launch, { job: config.jobName, execution: config.execution });
    if (elsewhere) {
      logger.warn(elsewhere);
      return ExitCode.ok;
    }
    const job = await loadRunJob(store, run.value.job);
    const itemTimeout = run.value.settings.itemTimeoutMs;
    // A spinning item blocks its own time limit: a thread the loop cannot starve ends the process.
    if (itemTimeout !== undefined) watchdog = startWatchdog(itemTimeout + abortGraceMs(itemTimeout) + 2000, { run: config.runId, task: String(config.taskIndex) });
    const outcome = await runTask({
      store,
      job,
      run: run.value,
      launch: launch.value,
      me: { execution: config.execution, taskIndex: config.taskIndex, attempt: config.attempt, launch: config.launch, host: hostname(), pid: process.pid },
      logger,
      stopping: stop.signal,
      abortItems: abortItems.signal,
      onActiveShard: (fn) => (checkpointActive = fn),
      ...(config.previousExit ? { previousExit: config.previousExit } : {}),
    });
    logger.info("task finished", { outcome });
    return outcome === "stopped" ? ExitCode.retryTask : ExitCode.ok;
  } catch (e) {
    logger.error("task failed", { error: errorMessage(e), code: isShardrunError(e) ? e.code : undefined });
    return isShardrunError(e, "INVALID_INPUT") ? ExitCode.usage : ExitCode.internal;
  } finally {
    for (const t of timers) clearTimeout(t);
    watchdog?.stop();
    process.off("SIGTERM", onTerm);
    process.off("SIGINT", onTerm);
    process.off("SIGTSTP", onTstp);
  }
}

// Run directly as the task's entry point (node dist/src/worker/main.js).
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, "/"))) {
  workerMain().then((code) => process.exit(code));
}
