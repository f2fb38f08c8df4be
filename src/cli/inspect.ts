/** The commands that read runs: `status`, `runs` and `failures`. Each prints JSON with --json. */
import { UsageError } from "../core/errors.js";
import { FailureReason } from "../core/model.js";
import { LISTED_STATES, exitCodeOf, type ListedState } from "../core/states.js";
import { ExitCode } from "../core/errors.js";
import { readFailedItems } from "../orchestrator/drive.js";
import { byReasons, groupFailures, messageShape } from "../orchestrator/failure-groups.js";
import { readRun } from "../orchestrator/read.js";
import { listRunSummaries, type RunSummary } from "../orchestrator/run-list.js";
import { readRunView } from "../orchestrator/run-view.js";
import { wholeFlag, type ReadFlags } from "./flags.js";
import { colorsFor, formatDuration, paintState } from "./format.js";
import { commandHint } from "./hints.js";
import { hintContext, openCliStore, readerFor, type Io } from "./io.js";
import { failureReasons, summary } from "./summary.js";

export interface StatusFlags extends ReadFlags {
  exitStatus?: boolean;
}

export async function statusCommand(runId: string, flags: StatusFlags, io: Io): Promise<number> {
  const s = await openCliStore(flags, io);
  const reader = await readerFor(s, io, flags, runId);
  const st = await readRunView(s, runId, reader.launcher);
  if (!st) throw new UsageError(`no run ${runId} in ${s.url}`);
  if (flags.json) io.stdout.write(JSON.stringify(st, null, 2) + "\n");
  else {
    const reasons = st.items.failed ? await failureReasons(s, runId) : undefined;
    io.stdout.write(summary(st, io, hintContext(io, s), { local: reader.local, tasks: true, ...(reasons ? { failureReasons: reasons } : {}) }));
    if (st.shardList.length) {
      const grid = st.shardList.map((sh) => (sh.state === "done" ? (sh.failed ? "x" : "#") : sh.state === "running" ? ">" : ".")).join("");
      io.stdout.write(`  grid      ${grid}   (# done, x done with failures, > running, . pending)\n`);
    }
  }
  return flags.exitStatus ? exitCodeOf(st) : ExitCode.ok;
}

export interface RunsFlags extends ReadFlags {
  limit?: string;
  job?: string;
  state?: string;
  since?: string;
}

/** `--since`: a date, a date-time, or an age like 90m, 24h, 7d. */
export function sinceFlag(text: string | undefined, now = Date.now()): Date | undefined {
  if (text === undefined) return undefined;
  const age = /^(\d{1,6})([mhd])$/.exec(text.trim());
  if (age) return new Date(now - Number(age[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as "m" | "h" | "d"]);
  const t = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim()) ? Date.parse(text.trim()) : NaN;
  if (Number.isNaN(t)) throw new UsageError(`--since: expected a date (2026-11-22), a date-time (2026-11-22T02:00:00Z) or an age (90m, 24h, 7d), got "${text}"`);
  return new Date(t);
}

function stateFlag(text: string | undefined): ListedState | undefined {
  if (text === undefined) return undefined;
  if (!(LISTED_STATES as readonly string[]).includes(text)) throw new UsageError(`--state: expected one of ${LISTED_STATES.join(", ")}, got "${text}"`);
  return text as ListedState;
}

function jobFlag(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (!/^[a-z][a-z0-9-]{0,47}$/.test(text)) throw new UsageError(`--job: expected a job name (lowercase letters, digits and dashes), got "${text}"`);
  return text;
}

export async function runsCommand(flags: RunsFlags, io: Io): Promise<number> {
  const limit = wholeFlag(flags.limit, "--limit", 1, 100_000) ?? 50;
  const job = jobFlag(flags.job);
  const state = stateFlag(flags.state);
  const since = sinceFlag(flags.since);
  const s = await openCliStore(flags, io);
  const runs = await listRunSummaries(s, { limit, ...(job ? { job } : {}), ...(state ? { state } : {}), ...(since ? { since } : {}) });
  if (flags.json) {
    io.stdout.write(JSON.stringify(runs, null, 2) + "\n");
    return ExitCode.ok;
  }
  if (!runs.length) {
    io.stdout.write(job || state || since ? "no runs match\n" : `no runs yet in ${s.url}\n`);
    return ExitCode.ok;
  }
  const c = colorsFor(io.stdout, io.env ?? process.env);
  const now = Date.now();
  const rows = runs.map((r) => row(r, now));
  const widths = HEADER.map((h, k) => Math.max(h.length, ...rows.map((cells) => cells[k]!.length)));
  // Padded before the state is coloured, so that escape codes do not upset the columns.
  const line = (cells: readonly string[], state?: string) =>
    cells
      .map((cell, k) => (k === 2 && state ? paintState(c, state) + " ".repeat(widths[k]! - cell.length) : RIGHT.has(k) ? cell.padStart(widths[k]!) : cell.padEnd(widths[k]!)))
      .join("  ")
      .trimEnd();
  io.stdout.write(c.dim(line(HEADER)) + "\n");
  for (const [k, r] of runs.entries()) {
    io.stdout.write(line(rows[k]!, r.state) + "\n");
    if (r.state === "unreadable") io.stdout.write(`  ${c.red(`${r.object}: ${r.reason}`)}\n`);
  }
  if (runs.length === limit) io.stdout.write(c.dim(`(the newest ${limit}; --limit to see more)`) + "\n");
  return ExitCode.ok;
}

const HEADER = ["RUN", "JOB", "STATE", "ITEMS", "FAILED", "CREATED", "DURATION", "TRIGGER"] as const;
const RIGHT = new Set([3, 4, 6]);

function row(r: RunSummary, now: number): string[] {
  const created = r.createdAt ? r.createdAt.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-";
  const live = r.state === "planning" || r.state === "pending" || r.state === "running";
  const duration = r.state === "unreadable" ? "-" : r.finishedAt ? formatDuration(Date.parse(r.finishedAt) - Date.parse(r.createdAt)) : live ? `${formatDuration(now - Date.parse(r.createdAt))}…` : "-";
  const failed = r.failed !== undefined ? String(r.failed) : "-";
  return [r.runId, r.job, r.state, r.state === "unreadable" ? "-" : String(r.items), failed, created, duration, r.trigger || "-"];
}

export interface FailuresFlags extends ReadFlags {
  reason?: string;
  limit?: string;
}

function reasonsFlag(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const reasons = text.split(",").map((r) => r.trim()).filter(Boolean);
  const known = FailureReason.options as readonly string[];
  const bad = reasons.find((r) => !known.includes(r));
  if (bad !== undefined || !reasons.length) throw new UsageError(`--reason: expected reasons among ${known.join(", ")} (comma-separated), got "${text}"`);
  return reasons;
}

export async function failuresCommand(runId: string, flags: FailuresFlags, io: Io): Promise<number> {
  const reasons = reasonsFlag(flags.reason);
  const limit = wholeFlag(flags.limit, "--limit", 1, 10_000_000);
  const s = await openCliStore(flags, io);
  const run = await readRun(s, runId);
  const failed = byReasons(await readFailedItems(s, run.value), reasons);
  if (flags.json) {
    // One line per item, with the group it falls in: for jq, or for grouping another way.
    let out = "";
    for (const f of failed.slice(0, limit ?? failed.length)) out += JSON.stringify({ ...f, group: messageShape(f.error, f.key) }) + "\n";
    io.stdout.write(out);
    return ExitCode.ok;
  }
  const c = colorsFor(io.stdout, io.env ?? process.env);
  const hints = hintContext(io, s);
  if (!failed.length) {
    io.stdout.write(`run ${runId}: no failed items${reasons ? ` with reason ${reasons.join(", ")}` : ""}\n`);
    return ExitCode.ok;
  }
  const groups = groupFailures(failed);
  const shown = groups.slice(0, limit ?? 20);
  io.stdout.write(`run ${runId}: ${failed.length} failed item${failed.length === 1 ? "" : "s"} in ${groups.length} group${groups.length === 1 ? "" : "s"} (by reason and error)\n`);
  for (const g of shown) {
    io.stdout.write(`\n${c.red(String(g.count).padStart(7))}  ${c.bold(g.reason)}  ${g.shape}\n`);
    if (g.example !== g.shape) io.stdout.write(`         e.g. ${g.example.split("\n")[0]}\n`);
    io.stdout.write(`         keys: ${g.sampleKeys.join(", ")}${g.count > g.sampleKeys.length ? ` … and ${g.count - g.sampleKeys.length} more` : ""}\n`);
    if (g.lastLog) io.stdout.write(`         last log line: ${g.lastLog}\n`);
    if (g.stack) {
      const lines = g.stack.split("\n").slice(0, 8);
      io.stdout.write(`         first stack trace:\n${lines.map((l) => `           ${c.dim(l)}`).join("\n")}\n`);
    }
  }
  if (groups.length > shown.length) io.stdout.write(`\n… ${groups.length - shown.length} more groups (--limit ${groups.length} to see them all)\n`);
  const retriable = failed.filter((f) => f.reason !== "non_retriable" && f.reason !== "corrupt").length;
  io.stdout.write(`\nevery item: ${commandHint(hints, "failures", runId, "--json")}\n`);
  if (retriable) io.stdout.write(`retry the ${retriable} retriable: ${commandHint(hints, "rerun", runId, ...(await localHint(s, io, flags, runId)), "--failed-items")}\n`);
  return ExitCode.ok;
}

async function localHint(s: Awaited<ReturnType<typeof openCliStore>>, io: Io, flags: ReadFlags, runId: string): Promise<string[]> {
  return (await readerFor(s, io, flags, runId)).local ? ["--local"] : [];
}
