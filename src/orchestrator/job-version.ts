/**
 * The code a run runs. A run records its job's bundle (content-addressed, create-only, shared by
 * every run of the same code) and the bundle's version; its tasks, reruns included, run that
 * bundle. Only `rerun --upgrade` changes it: it rebuilds the job from its source and records the
 * new bundle. Runs recorded before bundles (a compiled module, no bundle) keep the old rule:
 * a rerun refuses changed code unless upgraded.
 */
import { putRunRecord } from "./run-record.js";
import { existsSync } from "node:fs";
import { PreconditionFailed, UsageError, errorMessage, isShardrunError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import type { RunRecord } from "../core/model.js";
import { modulePath, moduleVersion, prepareJob, recordedModule, sourceOf, type PreparedJob } from "../config/jobs.js";
import { putJson } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";
import { putBundle } from "./bundle-store.js";
import { readRun } from "./read.js";
import { checkVersion } from "./rerun.js";

export interface JobUpgrade {
  from: string;
  to: string;
}

/**
 * Settles which code a rerun runs. Without `upgrade`: the recorded bundle, unchanged (a run
 * recorded before bundles: its compiled module, refused when it changed). With `upgrade`: the job
 * rebuilt from its source now, recorded on the run when it differs. Returns the change, or null.
 */
export async function settleRerunCode(store: ObjectStore, runId: string, upgrade: boolean): Promise<JobUpgrade | null> {
  const run = await readRun(store, runId);
  const job = run.value.job;
  if (!upgrade) {
    if (job.bundle) return null;
    const module = modulePath(job.module);
    if (!existsSync(module)) throw new UsageError(`run ${runId} was recorded before job bundles and its job module is gone (${module}): rerun with --upgrade to build the job from its source`);
    return checkVersion(store, runId, moduleVersion(module), false);
  }
  const source = sourceOf(job.module);
  if (!existsSync(source)) throw new UsageError(`rerun --upgrade: the source of job "${job.name}" is not here (${source}): upgrade from a checkout that has it`);
  const prepared = await prepareJob({ module: recordedModule(source), absPath: source });
  if (prepared.job.name !== job.name) throw new UsageError(`rerun --upgrade: ${prepared.module} now defines job "${prepared.job.name}", not "${job.name}"`);
  return recordJobCode(store, runId, prepared);
}

/** Whether a rerun with `upgrade` would run other code than the run recorded. */
export type CodeChange =
  | { changed: false; version: string }
  | { changed: true; recorded: string; current: string }
  /** The job's source is not here, or does not build now: an upgrade would fail, for this reason. */
  | { changed: "unknown"; reason: string };

/**
 * Compares the code a run recorded with what its job's source builds to now, as `rerun --upgrade`
 * would build it (a job none of whose files changed is not built again). Changes nothing.
 */
export async function jobCodeChange(run: RunRecord): Promise<CodeChange> {
  const job = run.job;
  try {
    if (!job.bundle) {
      // Recorded before bundles: its compiled module is what a rerun loads and compares.
      const module = modulePath(job.module);
      if (!existsSync(module)) return { changed: "unknown", reason: `the job module is not here (${job.module})` };
      const current = moduleVersion(module);
      return current === job.version ? { changed: false, version: current } : { changed: true, recorded: job.version, current };
    }
    const source = sourceOf(job.module);
    if (!existsSync(source)) return { changed: "unknown", reason: `the job's source is not here (${job.module})` };
    const { bundleJob } = await import("../config/bundle.js");
    const current = (await bundleJob(source)).version;
    return current === job.version ? { changed: false, version: current } : { changed: true, recorded: job.version, current };
  } catch (e) {
    if (isShardrunError(e, "INVALID_INPUT") || isShardrunError(e, "USAGE")) return { changed: "unknown", reason: errorMessage(e) };
    throw e;
  }
}

/** Records a prepared job's bundle and version on the run (compare-and-swap on run.json). */
export async function recordJobCode(store: ObjectStore, runId: string, prepared: Pick<PreparedJob, "module" | "version" | "key" | "bundle">): Promise<JobUpgrade | null> {
  await putBundle(store, { key: prepared.key, bytes: prepared.bundle.bytes });
  for (let tries = 0; tries < 5; tries++) {
    const run = await readRun(store, runId);
    const from = run.value.job;
    if (from.bundle === prepared.key && from.version === prepared.version) return null;
    const next: RunRecord = { ...run.value, job: { ...from, module: prepared.module, version: prepared.version, bundle: prepared.key } };
    try {
      await putRunRecord(store, run, next);
      return { from: from.version, to: prepared.version };
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
    }
  }
  throw new Error(`run ${runId}: could not record the upgraded job (run.json keeps changing)`);
}
