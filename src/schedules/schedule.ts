/**
 * What the schedules room passes around: a schedule as listed, as loaded with its job, and the
 * run ids a schedule's fires get. Its own file, so that loading, firing, cron and the Cloud
 * Scheduler sync share them without importing one another.
 */
import { createHash } from "node:crypto";
import { newRunId } from "../core/ids.js";
import type { Job, Schedule } from "../core/job.js";
import type { RecordedBundle } from "../orchestrator/bundle-store.js";
import type { UnavailableJob } from "../config/jobs.js";

/** A schedule as `schedules list` shows it: the definition plus the job that declares it. */
export interface ListedSchedule extends Schedule {
  /** The job the schedule starts runs of. */
  job: string;
}

/** A schedule with the loaded job it belongs to, ready to fire. */
export interface LoadedSchedule extends ListedSchedule {
  handle: Job;
  /** The job's entry as recorded in run.json (relative to the package root when inside it). */
  module: string;
  version: string;
  /** The job's bundle, recorded with every run the schedule starts. */
  bundle?: RecordedBundle;
}

/** A loaded job module, as `collectSchedules` takes it. */
export interface JobModule {
  job: Job;
  module: string;
  version: string;
  bundle?: RecordedBundle;
}

/** The schedules of the jobs that load, and the jobs that do not: their schedules are unavailable until they are fixed. */
export interface ScheduleCatalog {
  schedules: LoadedSchedule[];
  unavailable: UnavailableJob[];
}

/** A schedule without what firing it needs. */
export function listed({ handle: _h, module: _m, version: _v, bundle: _b, ...s }: LoadedSchedule): ListedSchedule {
  return s;
}

export interface LoadSchedulesOptions {
  /** The package whose `jobs/` folders are read. @default the shardrun package root */
  root?: string;
  /**
   * Job names or module paths to read instead of every folder under `jobs/` (tests, fixtures).
   * @default every job under `<root>/jobs/`
   */
  jobs?: readonly string[];
  /** Resolves relative paths in `jobs`. @default process.cwd() */
  cwd?: string;
}

/** The run id suffix of a schedule: four hex digits of a hash of its name, the same on every retry. */
export function runSuffix(name: string): string {
  return createHash("sha256").update(`shardrun-schedule:${name}`).digest("hex").slice(0, 4);
}

/** The run a schedule starts for a scheduled time: `20261122-020000-<job>-<hash of the schedule name>`. */
export function scheduledRunId(job: string, schedule: string, scheduledTime: Date): string {
  const n = parseInt(runSuffix(schedule), 16);
  return newRunId(job, scheduledTime, () => n / 0x10000);
}
