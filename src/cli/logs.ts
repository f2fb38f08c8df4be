/**
 * `shardrun logs <runId>`: the structured log lines of a run's tasks, filtered by the labels the
 * worker writes (shard, item, task). Local executions are read from the executions folder next
 * to the store; Cloud Run executions from Cloud Logging (src/log/cloud-logging.ts, loaded only
 * then). `--follow` keeps printing until the run has no live launch.
 */
import { ExitCode, UsageError } from "../core/errors.js";
import { SHARD_ID_PATTERN, shardId } from "../core/ids.js";
import { cloudSettings } from "../config/cloud.js";
import { readLocalLogs } from "../log/local-reader.js";
import type { LogFilter, LogRecord } from "../log/records.js";
import { readLaunches, readRun } from "../orchestrator/read.js";
import type { ObjectStore } from "../store/port.js";
import { wholeFlag, type ReadFlags } from "./flags.js";
import { colorsFor, type Colors } from "./format.js";
import { localStateDir, openCliStore, type Io } from "./io.js";

export interface LogsFlags extends ReadFlags {
  shard?: string;
  item?: string;
  task?: string;
  follow?: boolean;
}

function shardFlag(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (SHARD_ID_PATTERN.test(text)) return text;
  if (/^\d{1,6}$/.test(text)) return shardId(Number(text));
  throw new UsageError(`--shard: expected a shard id like s000012 (or its number, 12), got "${text}"`);
}

function severityColor(c: Colors, severity: string): (s: string) => string {
  if (severity === "ERROR" || severity === "CRITICAL" || severity === "ALERT" || severity === "EMERGENCY") return c.red;
  if (severity === "WARNING") return c.yellow;
  if (severity === "DEBUG") return c.dim;
  return (s) => s;
}

/** `2026-11-22T02:00:01.123Z INFO    [task 0 #1 s000003 item-12] message {"fields":…}` */
export function formatRecord(r: LogRecord, c: Colors): string {
  const l = r.labels;
  const tags = [l.task !== undefined ? `task ${l.task}${l.attempt !== undefined ? ` #${l.attempt}` : ""}` : undefined, l.shard, l.item].filter(Boolean).join(" ");
  const extra = Object.keys(r.fields).length ? ` ${c.dim(JSON.stringify(r.fields))}` : "";
  return `${c.dim(r.time || "-".repeat(24))} ${severityColor(c, r.severity)(r.severity.padEnd(7))} ${tags ? `[${tags}] ` : ""}${r.message}${extra}`;
}

/** Whether the run may still write lines: a launch live, or a state that will launch. */
async function runLive(s: ObjectStore, runId: string): Promise<boolean> {
  const run = await readRun(s, runId);
  if (run.value.state === "running" || run.value.state === "planned") return true;
  return (await readLaunches(s, runId)).some((l) => l.value.state === "pending" || l.value.state === "running");
}

export async function logsCommand(runId: string, flags: LogsFlags, io: Io): Promise<number> {
  const shard = shardFlag(flags.shard);
  const task = wholeFlag(flags.task, "--task", 0, 9_999);
  const s = await openCliStore(flags, io);
  const run = (await readRun(s, runId)).value;
  const filter: LogFilter = { runId, ...(shard ? { shard } : {}), ...(flags.item !== undefined ? { item: flags.item } : {}), ...(task !== undefined ? { task } : {}) };
  const stop = new AbortController();
  const onInt = () => stop.abort();
  process.once("SIGINT", onInt);
  const follow = { follow: flags.follow === true, done: async () => !(await runLive(s, runId)), signal: stop.signal };
  const launches = await readLaunches(s, runId);
  const cloud = launches.filter((l) => l.value.launcher === "cloud-run");
  const sources: AsyncIterable<LogRecord>[] = [];
  if (cloud.length) {
    const settings = cloudSettings({ ...(flags.project !== undefined ? { project: flags.project } : {}), ...(flags.region !== undefined ? { region: flags.region } : {}) }, io.cwd, io.env ?? process.env);
    if (!settings.project) throw new UsageError(`logs: run ${runId} ran on Cloud Run, whose logs are in Cloud Logging: give --project (or set SHARDRUN_PROJECT)`);
    const { CloudLogReader } = await import("../log/cloud-logging.js");
    const jobNames = [...new Set(cloud.flatMap((l) => /\/jobs\/([^/]+)\//.exec(l.value.execution ?? "")?.[1] ?? []))];
    sources.push(new CloudLogReader({ project: settings.project }).read({ ...filter, since: run.createdAt, ...(jobNames.length ? { jobNames } : {}) }, follow));
  }
  if (!cloud.length || launches.some((l) => l.value.launcher === "local")) {
    const stateDir = localStateDir(s, io.cwd);
    const executions = async () => (await readLaunches(s, runId)).filter((l) => l.value.launcher === "local" && l.value.execution).map((l) => l.value.execution!);
    sources.push(readLocalLogs({ stateDir, executions }, filter, follow));
  }
  const c = colorsFor(io.stdout, io.env ?? process.env);
  let printed = 0;
  try {
    for (const source of sources) {
      for await (const r of source) {
        const text = flags.json ? JSON.stringify(r) : formatRecord(r, c);
        if (!io.stdout.write(text + "\n")) await new Promise<void>((res) => io.stdout.once("drain", () => res()));
        printed++;
      }
    }
  } finally {
    process.off("SIGINT", onInt);
  }
  if (!printed && !flags.json) io.stderr.write(`run ${runId}: no log lines${shard || flags.item !== undefined || task !== undefined ? " match" : " yet"}\n`);
  return stop.signal.aborted ? ExitCode.interrupted : ExitCode.ok;
}
