/** The commands: thin layers over the orchestrator. */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ExitCode, UsageError } from "../core/errors.js";
import type { Budget } from "../core/budget.js";
import { FailureTolerance, parseTolerance, type ShardPolicy } from "../core/job.js";
import type { RunStatus } from "../core/status.js";
import { existsSync } from "node:fs";
import { cloudSettings, requireProjectRegion } from "../config/cloud.js";
import { ENV } from "../config/env.js";
import { jobVersion, loadJob, modulePath, resolveJob } from "../config/jobs.js";
import { LocalLauncher } from "../launcher/local.js";
import type { Launcher } from "../launcher/port.js";
import { driveRun } from "../orchestrator/drive.js";
import { mergedOutput } from "../orchestrator/output.js";
import { planRun } from "../orchestrator/plan.js";
import { listRuns, readLaunches, readRun, readRunStatus } from "../orchestrator/read.js";
import { assertNotLive, checkVersion, planFailedItems, setRunBudget } from "../orchestrator/rerun.js";
import { openStore } from "../store/open.js";
import type { ObjectStore } from "../store/port.js";
import { intFlag, keyValues, oneRunId, parse, type Options, type Parsed } from "./args.js";
import { Progress, formatDuration } from "./progress.js";

export interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  cwd: string;
}

const COMMON: Options = {
  store: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  project: { type: "string" },
  region: { type: "string" },
};
const LAUNCH: Options = {
  local: { type: "boolean" },
  "budget-tokens": { type: "string" },
  "budget-usd": { type: "string" },
  "budget-minutes": { type: "string" },
  tasks: { type: "string" },
  parallelism: { type: "string" },
  "max-launches": { type: "string" },
  "kill-grace": { type: "string" },
};

/** --store, else SHARDRUN_STORE_URL, else ./.shardrun. */
async function store(values: Parsed["values"], io: Io): Promise<ObjectStore> {
  const url = typeof values.store === "string" ? values.store : process.env[ENV.defaultStore] || join(io.cwd, ".shardrun");
  return openStore(url, io.cwd);
}

function localStateDir(s: ObjectStore, io: Io): string {
  return s.url.startsWith("file://") ? join(fileURLToPath(s.url), ".executions") : join(io.cwd, ".shardrun", ".executions");
}

async function launcherFor(values: Parsed["values"], s: ObjectStore, io: Io, command: string): Promise<Launcher> {
  if (!values.local) {
    const settings = cloudSettings(cloudFlags(values), io.cwd);
    const { project, region } = requireProjectRegion(settings, command);
    if (s.url.startsWith("file://")) {
      throw new UsageError(`${command}: Cloud Run tasks cannot reach a local folder store (${s.url}); give --store gs://bucket/prefix, or add --local`);
    }
    return cloudRunLauncher(project, region);
  }
  const grace = intFlag(values, "kill-grace", 0, 3600);
  return new LocalLauncher({ stateDir: localStateDir(s, io), ...(grace !== undefined ? { killGraceSeconds: grace } : {}) });
}

async function cloudRunLauncher(project: string, region: string): Promise<Launcher> {
  // Loaded only for cloud runs: local runs never pay for the gRPC clients.
  const [{ CloudRunLauncher }, { cloudRunClientOptions }] = await Promise.all([import("../launcher/cloud-run.js"), import("../launcher/cloud-run-endpoint.js")]);
  const clientOptions = cloudRunClientOptions();
  return new CloudRunLauncher({ project, region, ...(clientOptions ? { clientOptions } : {}) });
}

function cloudFlags(values: Parsed["values"]): { project?: string; region?: string } {
  return {
    ...(typeof values.project === "string" ? { project: values.project } : {}),
    ...(typeof values.region === "string" ? { region: values.region } : {}),
  };
}

/**
 * A launcher to read (not start) the executions of a run, for status: Cloud Run when the run's
 * launches went there and a project and region are known, else the local state folder.
 */
async function readerFor(s: ObjectStore, io: Io, values: Parsed["values"], runId?: string): Promise<Launcher> {
  if (runId) {
    const launches = await readLaunches(s, runId);
    if (launches.some((l) => l.value.launcher === "cloud-run")) {
      const settings = cloudSettings(cloudFlags(values), io.cwd);
      if (settings.project && settings.region) return cloudRunLauncher(settings.project, settings.region);
    }
  }
  return new LocalLauncher({ stateDir: localStateDir(s, io) });
}

export async function runCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("run", argv, {
    ...COMMON,
    ...LAUNCH,
    shards: { type: "string" },
    "items-per-shard": { type: "string" },
    "task-timeout": { type: "string" },
    "max-retries": { type: "string" },
    "max-failed-items": { type: "string" },
    arg: { type: "string", multiple: true },
  });
  if (positionals.length !== 1) throw new UsageError(`run: expected one job name or path, got ${positionals.length ? positionals.join(" ") : "none"} (see \`shardrun run --help\`)`);
  const shards = intFlag(values, "shards", 1, 100_000);
  const perShard = intFlag(values, "items-per-shard", 1);
  if (shards !== undefined && perShard !== undefined) throw new UsageError("run: give --shards or --items-per-shard, not both");
  const tasks = intFlag(values, "tasks", 1, 10_000);
  const parallelism = intFlag(values, "parallelism", 1, 10_000);
  const timeout = intFlag(values, "task-timeout", 1, 7 * 24 * 3600) ?? 3600;
  const maxRetries = intFlag(values, "max-retries", 0, 10) ?? 3;
  const maxLaunches = intFlag(values, "max-launches", 1, 1000) ?? 5;
  const args = keyValues(values, "arg");
  const tolerance = toleranceFlag(values);
  const runBudget = budgetFlags(values);

  const resolved = resolveJob(positionals[0]!, io.cwd);
  const job = await loadJob(resolved.absPath, resolved.requestedName);
  const s = await store(values, io);
  const launcher = await launcherFor(values, s, io, "run");
  const policy: ShardPolicy | undefined = shards !== undefined ? { count: shards } : perShard !== undefined ? { itemsPerShard: perShard } : undefined;

  const run = await planRun({
    store: s,
    job,
    module: resolved.module,
    version: jobVersion(resolved.absPath),
    args,
    ...(policy ? { policy } : {}),
    settings: {
      leaseTtlMs: 30_000,
      taskTimeoutSeconds: timeout,
      maxRetries,
      maxLaunches,
      ...(tolerance ? { maxFailedItems: tolerance } : {}),
      ...(runBudget ? { runBudget } : {}),
      ...(tasks !== undefined ? { tasks } : {}),
      ...(parallelism !== undefined ? { parallelism } : {}),
    },
    trigger: "cli",
    // Driven right away: run.json is written once now, not again within a second.
    driving: true,
  });
  if (!values.json) io.stderr.write(`run ${run.runId}: ${run.plan.totalItems} items in ${run.plan.shards.length} shards, ${run.settings.tasks} tasks\n`);
  const status = await drive(s, launcher, run.runId, io, values, { maxLaunches });
  return finish(status, s, io, values);
}

async function drive(
  s: ObjectStore,
  launcher: Launcher,
  runId: string,
  io: Io,
  values: Parsed["values"],
  o: { maxLaunches: number; taskCount?: number; parallelism?: number; shards?: string[] },
): Promise<RunStatus> {
  const progress = values.json ? null : new Progress({ stream: io.stderr });
  const stop = new AbortController();
  const onInt = () => {
    io.stderr.write(`\nstopped watching; the run goes on. Resume watching with: shardrun rerun ${runId} --local\n`);
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
    process.off("SIGINT", onInt);
  }
}

function finish(status: RunStatus, s: ObjectStore, io: Io, values: Parsed["values"]): number {
  if (values.json) io.stdout.write(JSON.stringify(publicStatus(status), null, 2) + "\n");
  else io.stdout.write(summary(status, s));
  if (status.state === "succeeded") return ExitCode.ok;
  if (status.state === "budget_exhausted") return ExitCode.runIncomplete;
  if (status.items.failed > 0 && status.items.pending === 0) return ExitCode.itemsFailed;
  return status.state === "failed" && status.items.pending > 0 ? ExitCode.runIncomplete : ExitCode.itemsFailed;
}

/** The status object of `status --json` and `run --json`. */
export function publicStatus(status: RunStatus): Omit<RunStatus, "shardList"> & { shardList: RunStatus["shardList"] } {
  return status;
}

function summary(st: RunStatus, s: ObjectStore): string {
  const took = st.finishedAt ? ` in ${formatDuration(Date.parse(st.finishedAt) - Date.parse(st.createdAt))}` : "";
  const storeFlag = s.url.startsWith("file://") ? fileURLToPath(s.url) : s.url;
  return [
    `run ${st.runId} (${st.job}): ${st.state}${took}${st.reason ? ` — ${st.reason}` : ""}`,
    `  items     ${st.items.succeeded} succeeded, ${st.items.failed} failed, ${st.items.pending} pending of ${st.items.total}`,
    `  shards    ${st.shards.done}/${st.shards.total} done`,
    `  launches  ${st.launches.map((l) => `#${l.n} ${l.execution ?? "-"} (${l.taskCount} tasks, ${l.state})`).join("; ") || "none"}`,
    ...st.launches.filter((l) => l.url).map((l) => `            #${l.n} ${l.url}`),
    `  executions ${st.executions} item executions for ${st.items.total} items`,
    ...(st.usage.tokens || st.usage.usd || st.budgets.run
      ? [`  spend     ${st.usage.tokens} tokens, $${st.usage.usd}${st.budgets.run ? ` (run budget: ${[st.budgets.run.tokens !== undefined && `${st.budgets.run.tokens} tokens`, st.budgets.run.usd !== undefined && `$${st.budgets.run.usd}`, st.budgets.run.ms !== undefined && `${Math.round(st.budgets.run.ms / 60000)} min`].filter(Boolean).join(", ")})` : ""}`]
      : []),
    `  outputs   shardrun output ${st.runId} --store ${storeFlag}`,
    ...(st.items.failed ? [`  failed    shardrun rerun ${st.runId} --local --failed-items --store ${storeFlag}`] : []),
    "",
  ].join("\n");
}

export async function statusCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("status", argv, COMMON);
  const runId = oneRunId("status", positionals);
  const s = await store(values, io);
  const st = await readRunStatus(s, runId, await readerFor(s, io, values, runId));
  if (values.json) io.stdout.write(JSON.stringify(publicStatus(st), null, 2) + "\n");
  else {
    io.stdout.write(summary(st, s));
    const grid = st.shardList.map((sh) => (sh.state === "done" ? (sh.failed ? "x" : "#") : sh.state === "running" ? ">" : ".")).join("");
    io.stdout.write(`  grid      ${grid}   (# done, x done with failures, > running, . pending)\n`);
  }
  return ExitCode.ok;
}

export async function runsCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("runs", argv, { ...COMMON, limit: { type: "string" } });
  if (positionals.length) throw new UsageError(`runs: takes no arguments, got ${positionals.join(" ")}`);
  const limit = intFlag(values, "limit", 1, 100_000) ?? 50;
  const runs = await listRuns(await store(values, io), limit);
  if (values.json) {
    io.stdout.write(JSON.stringify(runs, null, 2) + "\n");
    return ExitCode.ok;
  }
  if (!runs.length) io.stdout.write("no runs yet\n");
  for (const r of runs) io.stdout.write(`${r.runId.padEnd(48)} ${r.job.padEnd(20)} ${r.state.padEnd(10)} ${String(r.items).padStart(7)} items  ${r.createdAt}\n`);
  return ExitCode.ok;
}

export async function outputCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("output", argv, COMMON);
  const runId = oneRunId("output", positionals);
  const s = await store(values, io);
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

export async function rerunCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("rerun", argv, { ...COMMON, ...LAUNCH, "failed-items": { type: "boolean" }, upgrade: { type: "boolean" } });
  const runId = oneRunId("rerun", positionals);
  const s = await store(values, io);
  const launcher = await launcherFor(values, s, io, "rerun");
  const run = await readRun(s, runId);
  await assertNotLive(s, runId);
  const module = modulePath(run.value.job.module);
  if (!existsSync(module)) throw new UsageError(`rerun: the job module of run ${runId} is gone (${module}); build it or rerun from the same checkout`);
  const upgraded = await checkVersion(s, runId, jobVersion(module), values.upgrade === true);
  const runBudget = budgetFlags(values);
  if (runBudget) await setRunBudget(s, runId, runBudget);
  if (upgraded && !values.json) io.stderr.write(`rerun ${runId}: upgrading job version ${upgraded.from} -> ${upgraded.to}\n`);
  const tasks = intFlag(values, "tasks", 1, 10_000);
  const parallelism = intFlag(values, "parallelism", 1, 10_000);
  const maxLaunches = intFlag(values, "max-launches", 1, 1000) ?? 5;
  let shards: string[] | undefined;
  if (values["failed-items"]) {
    shards = await planFailedItems(s, runId);
    if (!values.json) io.stderr.write(shards.length ? `rerun ${runId}: failed items re-planned into ${shards.length} new shards\n` : `rerun ${runId}: no failed items\n`);
  }
  const status = await drive(s, launcher, runId, io, values, {
    maxLaunches,
    ...(tasks !== undefined ? { taskCount: tasks } : {}),
    ...(parallelism !== undefined ? { parallelism } : {}),
    ...(shards ? { shards } : {}),
  });
  return finish(status, s, io, values);
}

/** `--max-failed-items 5` or `--max-failed-items 2%`. */
function toleranceFlag(values: Parsed["values"]): { count?: number; percent?: number } | undefined {
  const raw = values["max-failed-items"];
  if (raw === undefined) return undefined;
  const parsed = FailureTolerance.safeParse(typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : raw);
  if (!parsed.success) throw new UsageError(`--max-failed-items: expected a count like 5 or a percentage like 2%, got "${String(raw)}"`);
  return parseTolerance(parsed.data);
}

/** `--budget-tokens N`, `--budget-usd X`, `--budget-minutes M`: run-level budget limits. */
function budgetFlags(values: Parsed["values"]): Budget | undefined {
  const tokens = intFlag(values, "budget-tokens", 1);
  const minutes = intFlag(values, "budget-minutes", 1);
  const rawUsd = values["budget-usd"];
  let usd: number | undefined;
  if (rawUsd !== undefined) {
    usd = Number(rawUsd);
    if (typeof rawUsd !== "string" || !/^\d+(\.\d+)?$/.test(rawUsd) || !(usd > 0)) throw new UsageError(`--budget-usd: expected an amount of dollars above 0 like 12.50, got "${String(rawUsd)}"`);
  }
  if (tokens === undefined && usd === undefined && minutes === undefined) return undefined;
  return { ...(tokens !== undefined ? { tokens } : {}), ...(usd !== undefined ? { usd } : {}), ...(minutes !== undefined ? { ms: minutes * 60_000 } : {}) };
}
