/** The run commands: thin layers over the orchestrator. Flags are parsed by commander (program.ts). */
import { ExitCode } from "../core/errors.js";
import { SETTING_DEFAULTS, budgetOf, parseTolerance, shardPolicyOf } from "../core/settings.js";
import type { RunStatus } from "../core/status.js";
import type { Launcher } from "../launcher/port.js";
import { driveRun } from "../orchestrator/drive.js";
import { mergedOutput, repairRun, verifyRun } from "../orchestrator/output.js";
import { listRuns, readRun, readRunStatus } from "../orchestrator/read.js";
import { planFailedItems } from "../orchestrator/rerun.js";
import { assertNotLive, setRunBudget } from "../orchestrator/control.js";
import { readFailedItems, setRunState } from "../orchestrator/drive.js";
import { chooseFailed, describeLeftOut } from "../orchestrator/failed-choice.js";
import type { ObjectStore } from "../store/port.js";
import { keyValues, killGraceFromFlags, rerunSettingsFromFlags, startSettingsFromFlags, wholeFlag, type RerunFlags, type RunFlags, type StoreFlags } from "./flags.js";
import { colorsFor, formatDuration, paintState } from "./format.js";
import { commandHint, type HintContext } from "./hints.js";
import { hintContext, launcherFor, openCliStore, readerFor, type Io } from "./io.js";
import { ProgressBars } from "./progress-bars.js";

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
  const policy = shardPolicyOf(settings);
  const runBudget = budgetOf(settings.budgets);

  const run = await planRun({
    store: s,
    job: prepared.job,
    module: prepared.module,
    version: prepared.version,
    bundle: { key: prepared.key, bytes: prepared.bundle.bytes },
    args,
    ...(policy ? { policy } : {}),
    settings: {
      leaseTtlMs: 30_000,
      taskTimeoutSeconds: settings.taskTimeoutSeconds,
      maxRetries: settings.maxRetries,
      maxLaunches: settings.maxLaunches,
      ...(settings.maxFailedItems !== undefined ? { maxFailedItems: parseTolerance(settings.maxFailedItems) } : {}),
      ...(runBudget ? { runBudget } : {}),
      ...(settings.tasks !== undefined ? { tasks: settings.tasks } : {}),
      ...(settings.parallelism !== undefined ? { parallelism: settings.parallelism } : {}),
      ...(settings.itemTimeoutSeconds !== undefined ? { itemTimeoutMs: settings.itemTimeoutSeconds * 1000 } : {}),
      ...(settings.crashLimit !== undefined ? { crashLimit: settings.crashLimit } : {}),
      ...(settings.concurrency !== undefined ? { concurrency: settings.concurrency } : {}),
    },
    trigger: "cli",
    // Driven right away: run.json is written once now, not again within a second.
    driving: true,
  });
  if (!flags.json) io.stderr.write(`run ${run.runId}: ${run.plan.totalItems} items in ${run.plan.shardCount} shards, ${run.settings.tasks} tasks\n`);
  const hints = hintContext(io, s);
  const status = await drive(s, launcher, run.runId, io, flags.json === true, hints, flags.local === true, { maxLaunches: settings.maxLaunches });
  return finish(status, io, flags.json === true, hints, flags.local === true);
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

async function drive(
  s: ObjectStore,
  launcher: Launcher,
  runId: string,
  io: Io,
  json: boolean,
  hints: HintContext,
  local: boolean,
  o: { maxLaunches: number; taskCount?: number; parallelism?: number; shards?: string[] },
): Promise<RunStatus> {
  const progress = json ? null : new ProgressBars({ stream: io.stderr, ...(io.env ? { env: io.env } : {}) });
  const stop = new AbortController();
  const onInt = () => {
    progress?.stop();
    io.stderr.write(
      `\nstopped watching; the run goes on. See where it is: ${commandHint(hints, "status", runId)}\n` +
        `Once its launch has ended, this finishes what is left: ${commandHint(hints, "rerun", runId, ...(local ? ["--local"] : []))}\n`,
    );
    stop.abort();
  };
  process.once("SIGINT", onInt);
  try {
    return await driveRun({
      store: s,
      launcher,
      runId,
      maxLaunches: o.maxLaunches,
      ...(o.taskCount !== undefined ? { taskCount: o.taskCount } : {}),
      ...(o.parallelism !== undefined ? { parallelism: o.parallelism } : {}),
      ...(o.shards ? { shards: o.shards } : {}),
      signal: stop.signal,
      ...(progress ? { onProgress: (st, ex) => progress.update(st, ex) } : {}),
    });
  } finally {
    progress?.stop();
    process.off("SIGINT", onInt);
  }
}

function finish(status: RunStatus, io: Io, json: boolean, hints: HintContext, local: boolean): number {
  if (json) io.stdout.write(JSON.stringify(status, null, 2) + "\n");
  else io.stdout.write(summary(status, io, hints, local));
  if (status.state === "succeeded") return ExitCode.ok;
  if (status.state === "budget_exhausted") return ExitCode.runIncomplete;
  if (status.items.failed > 0 && status.items.pending === 0) return ExitCode.itemsFailed;
  return status.state === "failed" && status.items.pending > 0 ? ExitCode.runIncomplete : ExitCode.itemsFailed;
}

/** What to run next for a run that stopped short, written so that it runs as printed. */
function nextSteps(st: RunStatus, hints: HintContext, local: boolean): string[] {
  const where = local ? ["--local"] : [];
  const live = st.state === "running" || st.state === "pending";
  if (live) return [];
  const lines: string[] = [];
  if (st.state === "budget_exhausted") {
    const b = st.budgets.run;
    const raise = b?.tokens !== undefined ? ["--budget-tokens", String(b.tokens * 2)] : b?.usd !== undefined ? ["--budget-usd", String(b.usd * 2)] : b?.ms !== undefined ? ["--budget-minutes", String(Math.ceil((b.ms * 2) / 60_000))] : [];
    lines.push(`  budget    raise it and go on: ${commandHint(hints, "rerun", st.runId, ...where, ...raise)}`);
  } else if (st.items.pending > 0) {
    lines.push(`  unfinished ${st.items.pending} items: ${commandHint(hints, "rerun", st.runId, ...where)}`);
  }
  if (st.items.failed) lines.push(`  failed    ${commandHint(hints, "rerun", st.runId, ...where, "--failed-items")}`);
  return lines;
}

function summary(st: RunStatus, io: Io, hints: HintContext, local: boolean): string {
  const c = colorsFor(io.stdout, io.env ?? process.env);
  const took = st.finishedAt ? ` in ${formatDuration(Date.parse(st.finishedAt) - Date.parse(st.createdAt))}` : "";
  const budget = st.budgets.run;
  return [
    `run ${st.runId} (${st.job}): ${paintState(c, st.state)}${took}${st.reason ? ` — ${st.reason}` : ""}`,
    `  items     ${st.items.succeeded} succeeded, ${st.items.failed ? c.red(`${st.items.failed} failed`) : "0 failed"}, ${st.items.pending} pending of ${st.items.total}`,
    `  shards    ${st.shards.done}/${st.shards.total} done`,
    `  launches  ${st.launches.map((l) => `#${l.n} ${l.execution ?? "-"} (${l.taskCount} tasks, ${l.state})`).join("; ") || "none"}`,
    ...st.launches.filter((l) => l.url).map((l) => `            #${l.n} ${l.url}`),
    `  executions ${st.executions} item executions for ${st.items.total} items`,
    ...(st.usage.tokens || st.usage.usd || budget
      ? [
          `  spend     ${st.usage.tokens} tokens, $${st.usage.usd}${budget ? ` (run budget: ${[budget.tokens !== undefined && `${budget.tokens} tokens`, budget.usd !== undefined && `$${budget.usd}`, budget.ms !== undefined && `${Math.round(budget.ms / 60000)} min`].filter(Boolean).join(", ")})` : ""}`,
        ]
      : []),
    `  outputs   ${commandHint(hints, "output", st.runId)}`,
    ...nextSteps(st, hints, local),
    "",
  ].join("\n");
}

export async function statusCommand(runId: string, flags: StoreFlags & { json?: boolean }, io: Io): Promise<number> {
  const s = await openCliStore(flags, io);
  await readRun(s, runId);
  const reader = await readerFor(s, io, flags, runId);
  const st = await readRunStatus(s, runId, reader.launcher);
  if (flags.json) io.stdout.write(JSON.stringify(st, null, 2) + "\n");
  else {
    io.stdout.write(summary(st, io, hintContext(io, s), reader.local));
    const grid = st.shardList.map((sh) => (sh.state === "done" ? (sh.failed ? "x" : "#") : sh.state === "running" ? ">" : ".")).join("");
    io.stdout.write(`  grid      ${grid}   (# done, x done with failures, > running, . pending)\n`);
  }
  return ExitCode.ok;
}

export async function runsCommand(flags: StoreFlags & { json?: boolean; limit?: string }, io: Io): Promise<number> {
  const limit = wholeFlag(flags.limit, "--limit", 1, 100_000) ?? 50;
  const runs = await listRuns(await openCliStore(flags, io), limit);
  if (flags.json) {
    io.stdout.write(JSON.stringify(runs, null, 2) + "\n");
    return ExitCode.ok;
  }
  if (!runs.length) io.stdout.write("no runs yet\n");
  const c = colorsFor(io.stdout, io.env ?? process.env);
  for (const r of runs) io.stdout.write(`${r.runId.padEnd(48)} ${r.job.padEnd(20)} ${paintState(c, r.state.padEnd(10))} ${String(r.items).padStart(7)} items  ${r.createdAt}\n`);
  return ExitCode.ok;
}

export async function outputCommand(runId: string, flags: StoreFlags, io: Io): Promise<number> {
  const s = await openCliStore(flags, io);
  await readRun(s, runId);
  let buf = "";
  for await (const line of mergedOutput(s, runId)) {
    buf += line + "\n";
    if (buf.length > 1 << 16) {
      if (!io.stdout.write(buf)) await new Promise<void>((r) => io.stdout.once("drain", () => r()));
      buf = "";
    }
  }
  io.stdout.write(buf);
  return ExitCode.ok;
}

export async function rerunCommand(runId: string, flags: RerunFlags, io: Io): Promise<number> {
  const settings = rerunSettingsFromFlags(flags);
  const killGrace = killGraceFromFlags(flags);
  const s = await openCliStore(flags, io);
  const launcher = await launcherFor(flags, s, io, "rerun", killGrace);
  warnParallelism(launcher, settings.parallelism, io);
  const run = await readRun(s, runId);
  await assertNotLive(s, runId, launcher);
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
  const status = await drive(s, launcher, runId, io, flags.json === true, hints, flags.local === true, {
    maxLaunches: settings.maxLaunches ?? SETTING_DEFAULTS.maxLaunches,
    ...(settings.tasks !== undefined ? { taskCount: settings.tasks } : {}),
    ...(settings.parallelism !== undefined ? { parallelism: settings.parallelism } : {}),
    ...(shards ? { shards } : {}),
  });
  return finish(status, io, flags.json === true, hints, flags.local === true);
}

export async function verifyCommand(runId: string, flags: StoreFlags & { json?: boolean }, io: Io): Promise<number> {
  const s = await openCliStore(flags, io);
  const problems = await verifyRun(s, runId);
  if (flags.json) io.stdout.write(JSON.stringify({ runId, ok: problems.length === 0, problems }, null, 2) + "\n");
  else if (!problems.length) io.stdout.write(`run ${runId}: every object is as its checkpoints recorded\n`);
  else {
    io.stdout.write(`run ${runId}: ${problems.length} problem${problems.length === 1 ? "" : "s"}\n`);
    for (const p of problems) io.stdout.write(`  ${p.object}\n    ${p.problem}${p.repairable ? "" : " (not repairable item by item)"}\n`);
    if (problems.some((p) => p.repairable)) io.stdout.write(`repair: ${commandHint(hintContext(io, s), `rerun ${runId} --local --repair`)}\n`);
  }
  return problems.length ? ExitCode.internal : ExitCode.ok;
}
