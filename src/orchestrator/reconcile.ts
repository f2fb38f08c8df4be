/**
 * Reconcile and cancel, for runs no process is watching (the scheduler service calls them on a
 * timer or on request). Reconcile advances every run in flight by one non-blocking step
 * (`advanceRun`: record ended launches, continue unfinished shards, finish the run); it is what
 * keeps a run going after its tasks time out. Both are safe to run twice at
 * once: launches are created create-only and run.json changes by compare-and-swap.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import pLimit from "p-limit";
import { z } from "zod";
import { pacedWriteGapMs } from "../core/cadence.js";
import { PreconditionFailed, errorMessage } from "../core/errors.js";
import { isRunId } from "../core/ids.js";
import { keys } from "../core/keys.js";
import type { Logger } from "../core/log.js";
import { silentLogger } from "../core/log.js";
import { RunRecord } from "../core/model.js";
import type { Launcher } from "../launcher/port.js";
import { advanceRun, startDriving } from "./drive.js";
import { claimLaunch, LAUNCH_START_GRACE_MS, readLaunchClaim, recordLaunchEnd } from "./launch.js";
import { readLaunches, readRun } from "./read.js";
import { putRunRecord } from "./run-record.js";
import { sleep } from "../core/time.js";
import { getJson, putJson, type Versioned } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";
import { markLive, recordRunState } from "./run-index-hooks.js";
import { liveRuns } from "./runs-index.js";

export interface ReconcileOptions {
  store: ObjectStore;
  launcher: Launcher;
  /** @default silentLogger */
  logger?: Logger;
  /**
   * Runs advanced at once. Each step reads a run's checkpoints and may start an execution.
   * @default 4
   */
  concurrency?: number;
  /**
   * Run ids this process is advancing right now (shared between the timer and the API):
   * skipped without a store round trip. Other processes are kept out by the driver lease.
   */
  busy?: Set<string>;
  /**
   * Leave a run alone while a launch has a record but no claimed execution yet, for this long
   * (ms): someone is calling the launcher right now, or its tasks have yet to start and claim
   * it (protocol 6). After this long the launch is given up and advanceRun settles it.
   * @default LAUNCH_START_GRACE_MS (10 minutes)
   */
  startingGraceMs?: number;
  /** Also sweep runs cancelled this recently (ms), for a launch that raced the cancel. @default 600000 */
  cancelSweepMs?: number;
  now?: () => Date;
}

const IN_FLIGHT = new Set(["planned", "running"]);

/** What one reconcile did: the service answers `POST /v1/reconcile` with it. */
export interface ReconcileResult {
  /** Runs in flight looked at. */
  checked: number;
  runs: {
    runId: string;
    /** skipped: this process is advancing it already; starting: a launch of it is being started by another caller; unreadable: its run.json cannot be read (error says why, object which). */
    outcome: "live" | "launched" | "finished" | "skipped" | "starting" | "error" | "unreadable";
    state?: string;
    error?: string;
    object?: string;
  }[];
  durationMs: number;
}

/**
 * `runs/<id>/driver.json`: who is advancing the run right now, until when. `advanceRun` alone is
 * not safe twice at once: a second caller that reads a launch record whose execution is still
 * being started (Cloud Run's runJob takes a round trip) takes it for dead and starts another.
 * Reconcile and the API's first step therefore advance a run only under this lease.
 */
const driverKey = (runId: string) => `${keys.runPrefix(runId)}driver.json`;
const DriverLease = z.object({ holder: z.string(), until: z.number() });
const HOLDER = `${hostname()}/${process.pid}/${randomBytes(3).toString("hex")}`;

/**
 * Runs `fn` under the run's driver lease, or returns `{ ran: false }` when someone else holds
 * it. The lease outlives a crashed holder by at most `ttlMs`.
 */
export async function withRunLease<T>(store: ObjectStore, runId: string, fn: () => Promise<T>, ttlMs = 120_000): Promise<{ ran: true; value: T } | { ran: false }> {
  const key = driverKey(runId);
  // This process's own release of the lease comes first (it may still be waiting out its second),
  // and a second passes after it before this process writes the lease again.
  await releasing.get(key);
  const gap = pacedWriteGapMs(store.limits);
  const since = lastWrite.get(key);
  if (since !== undefined && since + gap > Date.now()) await sleep(since + gap - Date.now());
  const current = await store.get(key);
  if (current) {
    const lease = DriverLease.safeParse(safeJson(current.bytes));
    if (lease.success && lease.data.until > Date.now()) return { ran: false };
  }
  let generation: string;
  try {
    generation = await putJson(store, key, { holder: HOLDER, until: Date.now() + ttlMs }, { ifGenerationMatch: current?.generation ?? 0 });
  } catch (e) {
    if (e instanceof PreconditionFailed) return { ran: false };
    throw e;
  }
  const takenAt = Date.now();
  if (gap) noteWrite(key);
  try {
    return { ran: true, value: await fn() };
  } finally {
    const release = async () => {
      try {
        await store.delete(key, { ifGenerationMatch: generation });
      } catch (e) {
        if (!(e instanceof PreconditionFailed)) throw e; // taken over after our TTL: theirs now
      } finally {
        if (gap) noteWrite(key);
      }
    };
    // Released no sooner than a second after it was taken: one write a second per object name
    // (on a store that limits it). That wait is not the caller's: the release finishes in the
    // background (the service waits for it when it drains); a release that fails leaves the lease
    // to expire at its TTL.
    const wait = takenAt + gap - Date.now();
    if (wait <= 0) await release();
    else {
      const p = sleep(wait)
        .then(release)
        .catch(() => undefined)
        .finally(() => releasing.delete(key));
      releasing.set(key, p);
    }
  }
}

/** Driver leases this process is giving back, by key. */
const releasing = new Map<string, Promise<void>>();
/**
 * When this process last wrote or deleted each driver lease (on stores that take one write a
 * second per object); entries older than a few seconds are dropped as new ones come.
 */
const lastWrite = new Map<string, number>();
function noteWrite(key: string): void {
  const now = Date.now();
  if (lastWrite.size > 1000) for (const [k, t] of lastWrite) if (now - t > 10_000) lastWrite.delete(k);
  lastWrite.set(key, now);
}

/** Resolves when every driver lease this process took has been given back. */
export async function leaseReleases(): Promise<void> {
  while (releasing.size) await Promise.all([...releasing.values()]);
}

function safeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null; // a damaged lease is an expired one
  }
}

/**
 * The records of the runs the index says are live (planned, being driven, or cancelled a moment
 * ago): O(live runs), never a read of every run in the store. Unreadable ones are skipped (and
 * logged).
 */
async function readRuns(store: ObjectStore, logger: Logger): Promise<{ runs: Versioned<RunRecord>[]; unreadable: ReconcileResult["runs"] }> {
  const ids = (await liveRuns(store)).filter(isRunId);
  const limit = pLimit(16);
  const unreadable: ReconcileResult["runs"] = [];
  const runs = await Promise.all(
    ids.map((id) =>
      limit(async () => {
        try {
          return await getJson(store, keys.run(id), RunRecord);
        } catch (e) {
          logger.error("cannot read run record", { runId: id, error: errorMessage(e) });
          unreadable.push({ runId: id, outcome: "unreadable", error: errorMessage(e), object: keys.run(id) });
          return null;
        }
      }),
    ),
  );
  return { runs: runs.filter((r): r is Versioned<RunRecord> => r !== null), unreadable };
}

/** Advances every run in flight one step. Never throws for one run's failure: it is reported. */
export async function reconcile(o: ReconcileOptions): Promise<ReconcileResult> {
  const started = Date.now();
  const logger = o.logger ?? silentLogger;
  const concurrency = o.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError("Expected `concurrency` to be a number from 1 and up");
  const busy = o.busy ?? new Set<string>();
  const now = (o.now ?? (() => new Date()))().getTime();
  const { runs, unreadable } = await readRuns(o.store, logger);
  const inFlight = runs.filter((r) => IN_FLIGHT.has(r.value.state)).sort((a, b) => (a.value.runId < b.value.runId ? -1 : 1));
  const sweepMs = o.cancelSweepMs ?? 600_000;
  const cancelled = runs.filter((r) => r.value.state === "cancelled" && r.value.finishedAt && now - Date.parse(r.value.finishedAt) < sweepMs);
  // Finished, or cancelled longer ago than the sweep looks back: no longer live.
  for (const r of runs) {
    if (IN_FLIGHT.has(r.value.state) || cancelled.includes(r)) continue;
    await markLive(o.store, r.value.runId, false);
  }

  const limit = pLimit(concurrency);
  const results = await Promise.all(
    inFlight.map((r) =>
      limit(async (): Promise<ReconcileResult["runs"][number]> => {
        const runId = r.value.runId;
        if (busy.has(runId)) return { runId, outcome: "skipped" };
        busy.add(runId);
        const log = logger.child({ run: runId });
        try {
          const leased = await withRunLease(o.store, runId, async (): Promise<ReconcileResult["runs"][number]> => {
            // A schedule fire advances without the lease: a launch record without its execution
            // may be its launch in progress.
            const grace = o.startingGraceMs ?? LAUNCH_START_GRACE_MS;
            const unclaimed = (await readLaunches(o.store, runId)).filter((l) => l.value.state === "pending" && !l.value.execution && now - Date.parse(l.value.createdAt) < grace);
            for (const l of unclaimed) if ((await readLaunchClaim(o.store, runId, l.value.n)) === null) return { runId, outcome: "starting" };
            // A planned run was never started (its planner died, or it was planned elsewhere).
            if (r.value.state === "planned") await startDriving(o.store, runId);
            const step = await advanceRun({ store: o.store, launcher: o.launcher, runId, logger: log, startingGraceMs: grace });
            if (step.kind === "launched") log.info("reconcile launched a continuation", { launch: step.launch });
            if (step.kind === "finished") log.info("reconcile finished the run", { state: step.status.state });
            return { runId, outcome: step.kind, ...(step.kind === "launched" ? {} : { state: step.status.state }) };
          });
          return leased.ran ? leased.value : { runId, outcome: "skipped" };
        } catch (e) {
          log.error("reconcile failed for a run", { error: errorMessage(e) });
          return { runId, outcome: "error", error: errorMessage(e) };
        } finally {
          busy.delete(runId);
        }
      }),
    ),
  );
  for (const r of cancelled) {
    try {
      await sweepLaunches(o.store, o.launcher, r.value.runId, { now, logger });
    } catch (e) {
      logger.error("cannot sweep the launches of a cancelled run", { runId: r.value.runId, error: errorMessage(e) });
    }
  }
  return { checked: inFlight.length, runs: [...results, ...unreadable], durationMs: Date.now() - started };
}

export type CancelResult = { kind: "cancelled" } | { kind: "already-cancelled" } | { kind: "finished"; state: RunRecord["state"] };

export interface CancelOptions {
  store: ObjectStore;
  launcher: Launcher;
  runId: string;
  logger?: Logger;
  now?: () => Date;
}

/**
 * Cancels a run: marks run.json cancelled first (by compare-and-swap, so that a reconcile that
 * read it before sees a conflict rather than launching again), then cancels its live executions.
 * A run that already finished stays as it is. A rerun resumes a cancelled run.
 */
export async function cancelRun(o: CancelOptions): Promise<CancelResult> {
  const now = o.now ?? (() => new Date());
  let result: CancelResult | undefined;
  for (let tries = 0; tries < 5 && !result; tries++) {
    const run = await readRun(o.store, o.runId);
    const state = run.value.state;
    if (state === "cancelled") result = { kind: "already-cancelled" };
    else if (!IN_FLIGHT.has(state)) return { kind: "finished", state };
    else {
      const { launchBase: _base, ...rest } = run.value;
      const next: RunRecord = { ...rest, state: "cancelled", finishedAt: now().toISOString(), reason: "cancelled on request" };
      try {
        await putRunRecord(o.store, run, next);
        await recordRunState(o.store, next);
        // Live for the cancel sweep's window (an execution that raced the cancel); reconcile clears it.
        await markLive(o.store, o.runId, true);
        result = { kind: "cancelled" };
      } catch (e) {
        if (!(e instanceof PreconditionFailed)) throw e;
      }
    }
  }
  if (!result) throw new Error(`run ${o.runId}: could not record the cancel (run.json keeps changing)`);
  await sweepLaunches(o.store, o.launcher, o.runId, { now: now().getTime(), ...(o.logger ? { logger: o.logger } : {}) });
  return result;
}

/**
 * Cancels the executions of a run's live launches and records them cancelled. A launch no
 * execution has claimed yet is given up (protocol 6): its execution, should one start, does
 * nothing, and its starter cancels it.
 */
async function sweepLaunches(store: ObjectStore, launcher: Launcher, runId: string, o: { now: number; logger?: Logger }): Promise<void> {
  for (const launch of await readLaunches(store, runId)) {
    const l = launch.value;
    if (l.state !== "pending" && l.state !== "running") continue;
    if (l.launcher !== launcher.kind) continue; // only the launcher that started it can stop it
    // Unclaimed: give it up now, so that an execution of it that starts late does nothing;
    // if one of its tasks claimed it first, that is the execution to cancel.
    const execution = l.execution ?? (await claimLaunch(store, runId, l.n, null, "driver")).execution;
    if (execution) {
      await launcher.cancel(execution);
      o.logger?.info("cancelled an execution", { runId, launch: l.n, execution });
    }
    await recordLaunchEnd(store, { ...launch, value: { ...l, ...(execution ? { execution } : {}) } }, "cancelled", new Date(o.now));
  }
}
