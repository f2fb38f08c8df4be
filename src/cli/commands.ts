/** The run commands: thin layers over the orchestrator. Flags are parsed by commander (program.ts). */
import { ExitCode, errorMessage } from "../core/errors.js";
import { SETTING_DEFAULTS, budgetOf } from "../core/settings.js";
import { exitCodeOf } from "../core/states.js";
import type { RunStatus } from "../core/status.js";
import type { Launcher } from "../launcher/port.js";
import { driveRun } from "../orchestrator/drive.js";
import { startPlan } from "../orchestrator/start-settings.js";
import { repairRun, verifyRun } from "../orchestrator/output.js";
import { readRun } from "../orchestrator/read.js";
import { planFailedItems } from "../orchestrator/rerun.js";
import { setRunBudget } from "../orchestrator/control.js";
import { readFailedItems, setRunState } from "../orchestrator/drive.js";
import { chooseFailed, describeLeftOut } from "../orchestrator/failed-choice.js";
import type { ObjectStore } from "../store/port.js";
import { keyValues, killGraceFromFlags, rerunSettingsFromFlags, startSettingsFromFlags, type ReadFlags, type RerunFlags, type RunFlags } from "./flags.js";
import { commandHint, type HintContext } from "./hints.js";
import { hintContext, launcherFor, openCliStore, readerFor, refuseLive, type Io } from "./io.js";
import { ProgressBars } from "./progress-bars.js";
import { failureReasons, summary } from "./summary.js";

export type { Io } from "./io.js";

export async function runCommand(jobSpec: string, flags: RunFlags, io: Io): Promise<number> {
  // Every flag is checked before anything is loaded or written.
  const settings = startSettingsFromFlags(flags);
  const killGrace = killGraceFromFlags(flags);
  const args = keyValues(flags.arg);

  // Built now from the source as it is: no `make build` between an edit and a run. Planning and
  // building are loaded here, not by every command.
  const [{ prepareJob, resolveJob }, { planRun }] = await Promise.all([import("../config/jobs.js"), import("../orchestrator/plan.js")]);
  const prepared = await prepareJob(resolveJob(jobSpec, io.cwd));
  const s = await openCliStore(flags, io);
  const launcher = await launcherFor(flags, s, io, "run", killGrace);
  warnParallelism(launcher, settings.parallelism, io);
  const start = startPlan(settings);
  const source = flags.items !== undefined ? (await import("../orchestrator/items-source.js")).itemsFromJsonl(flags.items, { cwd: io.cwd }) : undefined;

  // Ctrl-C while planning stops the plan, which removes what it wrote.
  const planning = new AbortController();
  const onInt = () => planning.abort();
  process.once("SIGINT", onInt);
  const run = await planRun({
    signal: planning.signal,
    store: s,
    job: prepared.job,
    module: prepared.module,
    version: prepared.version,
    bundle: { key: prepared.key, bytes: prepared.bundle.bytes },
    args,
    ...start,
    ...(source ? { source } : {}),
    trigger: "cli",
    // Driven right away: run.json is written once now, not again within a second.
    driving: true,
  })
    .catch((e: unknown) => {
      if (!planning.signal.aborted) throw e;
      io.stderr.write(`\nstopped planning: ${errorMessage(e)}\n`);
      return null;
    })
    .finally(() => process.off("SIGINT", onInt));
  if (!run) return ExitCode.interrupted;
  if (!flags.json) io.stderr.write(`run ${run.runId}: ${run.plan.totalItems} items in ${run.plan.shardCount} shards, ${run.settings.tasks} tasks\n`);
  const hints = hintContext(io, s);
  const watched = await drive(s, launcher, run.runId, io, flags.json === true, hints, { maxLaunches: settings.maxLaunches });
  return finish(s, watched, io, flags.json === true, hints, flags.local === true);
}

/**
 * Cloud Run fixes parallelism on the job and refuses an execution whose task count is below it,
 * so `shardrun deploy` leaves it unset and every task of an execution runs at once: there a
 * --parallelism below the task count cannot hold, and the user is told what does.
 */
function warnParallelism(launcher: Launcher, parallelism: number | undefined, io: Io): void {
  if (!launcher.runsAllTasksAtOnce || parallelism === undefined) return;
  io.stderr.write(
    `shardrun: note: on Cloud Run every task of an execution runs at once (the jobs are deployed with parallelism unset, so that every launch is valid): --parallelism ${parallelism} is not applied; --tasks ${parallelism} runs ${parallelism} at once\n`,
  );
}

/** How a watch ended: the run's status, and whether the user stopped watching (Ctrl-C). */
export interface Watched {
  status: RunStatus;
  interrupted: boolean;
}

/**
 * Drives a run with progress bars until it ends. Ctrl-C stops watching only: the tasks go on
 * (they run in their own process group, or on Cloud Run), and the command that re-attaches is
 * printed as the user would type it.
 */
export async function drive(
  s: ObjectStore,
  launcher: Launcher,
  runId: string,
  io: Io,
  json: boolean,
  hints: HintContext,
  o: { maxLaunches?: number; taskCount?: number; parallelism?: number; shards?: string[]; attach?: boolean },
): Promise<Watched> {
  const progress = json ? null : new ProgressBars({ stream: io.stderr, ...(io.env ? { env: io.env } : {}) });
  const stop = new AbortController();
  const onInt = () => {
    progress?.stop();
    io.stderr.write(
      `\nstopped watching; the run goes on. Watch it again (and let it continue): ${commandHint(hints, "watch", runId)}\n` +
        `See where it is: ${commandHint(hints, "status", runId)}   Stop it: ${commandHint(hints, "cancel", runId)}\n`,
    );
    stop.abort();
  };
  process.once("SIGINT", onInt);
  try {
    const status = await driveRun({
      store: s,
      launcher,
      runId,
      ...(o.maxLaunches !== undefined ? { maxLaunches: o.maxLaunches } : {}),
      ...(o.taskCount !== undefined ? { taskCount: o.taskCount } : {}),
      ...(o.parallelism !== undefined ? { parallelism: o.parallelism } : {}),
      ...(o.shards ? { shards: o.shards } : {}),
      ...(o.attach ? { attach: true } : {}),
      signal: stop.signal,
      ...(progress ? { onProgress: (st, ex) => progress.update(st, ex) } : {}),
    });
    return { status, interrupted: stop.signal.aborted };
  } finally {
    progress?.stop();
    process.off("SIGINT", onInt);
  }
}

/** Prints how the watch ended; the exit code is the run's state (core/states.ts), 130 after Ctrl-C. */
export async function finish(s: ObjectStore, w: Watched, io: Io, json: boolean, hints: HintContext, local: boolean): Promise<number> {
  if (json) io.stdout.write(JSON.stringify(w.status, null, 2) + "\n");
  else if (!w.interrupted) {
    const reasons = w.status.items.failed ? await failureReasons(s, w.status.runId) : undefined;
    io.stdout.write(summary(w.status, io, hints, { local, ...(reasons ? { failureReasons: reasons } : {}) }));
  }
  return w.interrupted ? ExitCode.interrupted : exitCodeOf(w.status);
}

export async function rerunCommand(runId: string, flags: RerunFlags, io: Io): Promise<number> {
  const settings = rerunSettingsFromFlags(flags);
  const killGrace = killGraceFromFlags(flags);
  const s = await openCliStore(flags, io);
  const launcher = await launcherFor(flags, s, io, "rerun", killGrace);
  warnParallelism(launcher, settings.parallelism, io);
  const run = await readRun(s, runId);
  await refuseLive(s, runId, launcher, hintContext(io, s));
  // The recorded bundle, unless --upgrade rebuilds the job from its source now.
  const { settleRerunCode } = await import("../orchestrator/job-version.js");
  const upgraded = await settleRerunCode(s, runId, settings.upgrade);
  const runBudget = budgetOf({ tokens: settings.budgetTokens, usd: settings.budgetUsd, minutes: settings.budgetMinutes });
  if (runBudget) await setRunBudget(s, runId, runBudget);
  if (upgraded && !flags.json) io.stderr.write(`rerun ${runId}: upgrading job version ${upgraded.from} -> ${upgraded.to}\n`);
  if (settings.repair) {
    const repaired = await repairRun(s, runId);
    if (!flags.json) io.stderr.write(`rerun ${runId}: repaired ${repaired.shards.length} shard${repaired.shards.length === 1 ? "" : "s"}; ${repaired.items} item${repaired.items === 1 ? "" : "s"} will run again\n`);
    const cur = await readRun(s, runId);
    if (repaired.shards.length && cur.value.state !== "running") await setRunState(s, cur, "running");
  }
  let shards: string[] | undefined;
  if (settings.failedItems) {
    const choice = chooseFailed(await readFailedItems(s, run.value), settings.reasons);
    const replanned = await planFailedItems(s, runId, choice.retry);
    shards = replanned?.shards ?? [];
    const leftOut = describeLeftOut(choice.leftOut);
    if (!flags.json) io.stderr.write(`rerun ${runId}: ${shards.length ? `${choice.retry.length} failed items re-planned into ${shards.length} new shards` : "no failed items to rerun"}${leftOut ? `; ${leftOut}` : ""}\n`);
  }
  const hints = hintContext(io, s);
  const watched = await drive(s, launcher, runId, io, flags.json === true, hints, {
    maxLaunches: settings.maxLaunches ?? SETTING_DEFAULTS.maxLaunches,
    ...(settings.tasks !== undefined ? { taskCount: settings.tasks } : {}),
    ...(settings.parallelism !== undefined ? { parallelism: settings.parallelism } : {}),
    ...(shards ? { shards } : {}),
  });
  return finish(s, watched, io, flags.json === true, hints, flags.local === true);
}

export async function verifyCommand(runId: string, flags: ReadFlags, io: Io): Promise<number> {
  const s = await openCliStore(flags, io);
  const problems = await verifyRun(s, runId);
  if (flags.json) io.stdout.write(JSON.stringify({ runId, ok: problems.length === 0, problems }, null, 2) + "\n");
  else if (!problems.length) io.stdout.write(`run ${runId}: every object is as its checkpoints recorded\n`);
  else {
    io.stdout.write(`run ${runId}: ${problems.length} problem${problems.length === 1 ? "" : "s"}\n`);
    for (const p of problems) io.stdout.write(`  ${p.object}\n    ${p.problem}${p.repairable ? "" : " (not repairable item by item)"}\n`);
    const local = (await readerFor(s, io, flags, runId)).local;
    if (problems.some((p) => p.repairable)) io.stdout.write(`repair: ${commandHint(hintContext(io, s), "rerun", runId, ...(local ? ["--local"] : []), "--repair")}\n`);
  }
  return problems.length ? ExitCode.internal : ExitCode.ok;
}
