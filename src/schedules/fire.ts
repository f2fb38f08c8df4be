/**
 * Schedules declared in job definitions, and firing one: a fire starts the run of one schedule
 * for one scheduled time, at most once, however often it is called.
 *
 * Why it is idempotent (Cloud Scheduler retries a fire; two replicas of the service may get the
 * same one): the fire record `schedules/<name>/<stamp>.json` is written create-only before
 * anything else, and the run id is a pure function of (job, schedule, scheduled time). Of several
 * fires of one time exactly one creates the record and plans the run; the others find the record
 * and return its run. The record holds a planning lease, renewed while planning: when the fire
 * that created it dies before run.json exists, a retry after the lease expired takes the planning
 * over (compare-and-swap on the record), clears the shard files the dead planner left, and plans
 * the same run id again. A run planned but never driven (the fire died in between) is driven by
 * the retry that finds it.
 */
import { z } from "zod";
import { InvalidInputError, PreconditionFailed, ShardrunError, errorMessage, isShardrunError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import { silentLogger, type Logger } from "../core/log.js";
import { RunRecord } from "../core/model.js";
import type { Launcher } from "../launcher/port.js";
import { advanceRun, startDriving } from "../orchestrator/drive.js";
import { planRun } from "../orchestrator/plan.js";
import { readLaunches } from "../orchestrator/read.js";
import { getJson, putJson, type Versioned } from "../store/json.js";
import { listAll, type ObjectStore } from "../store/port.js";
import { loadScheduleCatalog } from "./load.js";
import { scheduledRunId, type LoadSchedulesOptions, type LoadedSchedule } from "./schedule.js";


/** `20261122T020000Z`: the scheduled time in the fire record's key, to the second. */
export function fireStamp(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
}

/** The trigger recorded on runs a schedule started. */
export function scheduleTrigger(name: string): string {
  return `schedule:${name}`;
}

export const FireRecord = z.object({
  v: z.literal(1),
  schedule: z.string(),
  job: z.string(),
  /** ISO time, whole seconds. */
  scheduledTime: z.string(),
  runId: z.string(),
  firedAt: z.string(),
  /** Renewed while the run is being planned; a retry takes the planning over once it is older than the lease. */
  heartbeatAt: z.string(),
  /** Planners that took over from a dead one. */
  takeovers: z.number().int().min(0),
  /** Why the last planning failed, when it did. */
  error: z.string().optional(),
});
export type FireRecord = z.infer<typeof FireRecord>;

/** Launch settings of scheduled runs (the flags of `shardrun run`). */
export interface ScheduledRunSettings {
  /** @default 3600 */
  taskTimeoutSeconds?: number;
  /** Retries per task after its first attempt. @default 3 */
  maxRetries?: number;
  /** Launches before giving up on unfinished shards. @default 5 */
  maxLaunches?: number;
  /** @default 30000 */
  leaseTtlMs?: number;
}

export interface FireScheduleOptions extends LoadSchedulesOptions {
  store: ObjectStore;
  launcher: Launcher;
  /** @default silent */
  logger?: Logger;
  scheduleName: string;
  /** The time the schedule was due (Cloud Scheduler's X-CloudScheduler-ScheduleTime), not the time now. Cut to whole seconds. */
  scheduledTime: Date;
  /** Already loaded schedules (a server loads them once); otherwise loaded from `root` / `jobs`. */
  schedules?: readonly LoadedSchedule[];
  settings?: ScheduledRunSettings;
  /**
   * How long a planning fire may go without renewing its lease before a retry takes over.
   * @default 60000
   */
  planningLeaseMs?: number;
  /** @default () => new Date() */
  now?: () => Date;
}

export interface FireResult {
  runId: string;
  /** True only for the call that started the run; every retry of the same time gets false. */
  created: boolean;
  job: string;
  /** The scheduled time as used: ISO, whole seconds. */
  scheduledTime: string;
  /** The run is planned, but its first launch failed; reconcile launches it later. */
  launchError?: string;
}

/**
 * Starts the run of `scheduleName` for `scheduledTime`, once: a retried or concurrent fire of the
 * same time returns the same run with `created: false` and starts nothing. Throws a NOT_FOUND
 * `ShardrunError` for an unknown schedule.
 */
export async function fireSchedule(o: FireScheduleOptions): Promise<FireResult> {
  const ms = o.scheduledTime.getTime();
  if (!Number.isFinite(ms)) throw new InvalidInputError(`schedule "${o.scheduleName}": the scheduled time is not a valid date`);
  const time = new Date(Math.floor(ms / 1000) * 1000);
  const { schedules, unavailable } = o.schedules ? { schedules: o.schedules, unavailable: [] } : await loadScheduleCatalog(o);
  const schedule = schedules.find((s) => s.name === o.scheduleName);
  if (!schedule) {
    const known = schedules.map((s) => s.name).join(", ") || "none";
    // The schedule may be one of a job that does not build now: say so rather than only "no such schedule".
    const broken = unavailable.map((u) => `; job ${u.job} does not load, its schedules are unavailable: ${u.reason}`).join("");
    throw new ShardrunError("NOT_FOUND", `no schedule named "${o.scheduleName}" (schedules: ${known})${broken}`);
  }
  const now = o.now ?? (() => new Date());
  const logger = (o.logger ?? silentLogger).child({ schedule: schedule.name });
  const key = keys.scheduleFire(schedule.name, fireStamp(time));
  const record: FireRecord = {
    v: 1,
    schedule: schedule.name,
    job: schedule.job,
    scheduledTime: time.toISOString(),
    runId: scheduledRunId(schedule.job, schedule.name, time),
    firedAt: now().toISOString(),
    heartbeatAt: now().toISOString(),
    takeovers: 0,
  };
  const result = (created: boolean, runId = record.runId, launchError?: string): FireResult => ({
    runId,
    created,
    job: schedule.job,
    scheduledTime: record.scheduledTime,
    ...(launchError ? { launchError } : {}),
  });
  let generation: string;
  try {
    generation = await putJson(o.store, key, record, { ifGenerationMatch: 0 });
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
    return retriedFire(o, schedule, key, logger, now, result);
  }
  logger.info("schedule fired", { runId: record.runId, scheduledTime: record.scheduledTime });
  const launchError = await planAndStart(o, schedule, key, { value: record, generation }, logger, now, false);
  return result(true, record.runId, launchError);
}

/** A fire that found the record: report its run, and finish what a dead fire left undone. */
async function retriedFire(
  o: FireScheduleOptions,
  schedule: LoadedSchedule,
  key: string,
  logger: Logger,
  now: () => Date,
  result: (created: boolean, runId?: string, launchError?: string) => FireResult,
): Promise<FireResult> {
  const existing = await getJson(o.store, key, FireRecord);
  if (!existing) throw new ShardrunError("INTERNAL", `${key} was there a moment ago and is gone: fire again`);
  const { runId } = existing.value;
  const run = await getJson(o.store, keys.run(runId), RunRecord);
  if (run) {
    if (run.value.trigger !== scheduleTrigger(schedule.name)) {
      throw new ShardrunError("INTERNAL", `run ${runId} of schedule "${schedule.name}" exists with trigger "${run.value.trigger}": a run id collision; fire again later or start the run by hand`);
    }
    // Planned but never launched: the fire that planned it died before its first launch (a
    // second fire's launch is create-only, so two at once start one execution).
    const unlaunched = run.value.state === "planned" || (run.value.state === "running" && !(await readLaunches(o.store, runId)).length);
    const launchError = unlaunched ? await drive(o, runId, logger) : undefined;
    return result(false, runId, launchError);
  }
  const leaseMs = o.planningLeaseMs ?? 60_000;
  if (now().getTime() - Date.parse(existing.value.heartbeatAt) < leaseMs) return result(false, runId); // being planned now
  if (existing.value.job !== schedule.job) {
    throw new InvalidInputError(`schedule "${schedule.name}" now belongs to job "${schedule.job}", but its fire of ${existing.value.scheduledTime} was for job "${existing.value.job}"`);
  }
  const taken: FireRecord = { ...existing.value, heartbeatAt: now().toISOString(), takeovers: existing.value.takeovers + 1 };
  let generation: string;
  try {
    generation = await putJson(o.store, key, taken, { ifGenerationMatch: existing.generation });
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
    return result(false, runId); // another retry took it over first
  }
  logger.warn("taking over the planning of a fire whose planner went silent", { runId, scheduledTime: taken.scheduledTime, takeovers: taken.takeovers });
  return result(false, runId, await planAndStart(o, schedule, key, { value: taken, generation }, logger, now, true));
}

/**
 * Plans the run under the fire record's lease, then marks it driven and takes one step (the first
 * launch). Returns the launch error, if the launch failed: the run stands, reconcile launches it.
 */
async function planAndStart(
  o: FireScheduleOptions,
  schedule: LoadedSchedule,
  key: string,
  record: Versioned<FireRecord>,
  logger: Logger,
  now: () => Date,
  takeover: boolean,
): Promise<string | undefined> {
  const leaseMs = o.planningLeaseMs ?? 60_000;
  const lost = new AbortController();
  let current = record;
  // Heartbeats in a chain: a slow write must not overlap the next one.
  let beats = Promise.resolve();
  const renew = async () => {
    if (lost.signal.aborted) return;
    const next: FireRecord = { ...current.value, heartbeatAt: now().toISOString() };
    try {
      current = { value: next, generation: await putJson(o.store, key, next, { ifGenerationMatch: current.generation }) };
    } catch (e) {
      // Someone took the planning over (we were too slow): stop planning at once.
      lost.abort(new ShardrunError("PRECONDITION_FAILED", `the planning of ${record.value.runId} was taken over`, { cause: e }));
    }
  };
  const timer = setInterval(() => (beats = beats.then(renew)), Math.max(1000, Math.floor(leaseMs / 3)));
  timer.unref();
  try {
    if (takeover) await clearPartialPlan(o.store, record.value.runId);
    const s = o.settings ?? {};
    await planRun({
      store: o.store,
      job: schedule.handle,
      module: schedule.module,
      version: schedule.version,
      ...(schedule.bundle ? { bundle: schedule.bundle } : {}),
      args: schedule.args,
      settings: {
        leaseTtlMs: s.leaseTtlMs ?? 30_000,
        taskTimeoutSeconds: s.taskTimeoutSeconds ?? 3600,
        maxRetries: s.maxRetries ?? 3,
        maxLaunches: s.maxLaunches ?? 5,
      },
      trigger: scheduleTrigger(schedule.name),
      // Driven right away (below): run.json is written once now, not again within a second.
      driving: true,
      runId: record.value.runId,
      now: now(),
      signal: lost.signal,
    });
  } catch (e) {
    clearInterval(timer);
    await beats;
    if (!lost.signal.aborted) await releaseLease(o.store, key, current, errorMessage(e));
    throw e;
  }
  clearInterval(timer);
  await beats;
  logger.info("scheduled run planned", { runId: record.value.runId });
  return drive(o, record.value.runId, logger);
}

/** Expires the lease after a failed planning, so that the next retry plans again at once. */
async function releaseLease(store: ObjectStore, key: string, record: Versioned<FireRecord>, error: string): Promise<void> {
  const next: FireRecord = { ...record.value, heartbeatAt: new Date(0).toISOString(), error };
  try {
    await putJson(store, key, next, { ifGenerationMatch: record.generation });
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
  }
}

/** Shard files a dead planner wrote before run.json: planRun writes them create-only, so they must go first. */
async function clearPartialPlan(store: ObjectStore, runId: string): Promise<void> {
  for await (const key of listAll(store, keys.runPrefix(runId))) {
    const obj = await store.get(key);
    if (!obj) continue;
    try {
      await store.delete(key, { ifGenerationMatch: obj.generation });
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
    }
  }
}

/** Marks the run driven and takes one step (its first launch); a failed launch is left to reconcile. */
async function drive(o: FireScheduleOptions, runId: string, logger: Logger): Promise<string | undefined> {
  await startDriving(o.store, runId);
  try {
    const step = await advanceRun({ store: o.store, launcher: o.launcher, runId, logger });
    logger.info("scheduled run started", { runId, step: step.kind });
    return undefined;
  } catch (e) {
    if (isShardrunError(e, "USAGE") || isShardrunError(e, "INVALID_INPUT")) throw e;
    logger.error("the first launch of a scheduled run failed; reconcile will launch it", { runId, error: errorMessage(e) });
    return errorMessage(e);
  }
}
