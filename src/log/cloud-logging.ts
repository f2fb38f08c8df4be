/**
 * Task logs of Cloud Run executions, from Cloud Logging through `@google-cloud/logging`
 * (`entries.list`, gRPC). Cloud Run's logging agent turns each structured line a task writes into
 * an entry of resource type `cloud_run_job`, with the line's `logging.googleapis.com/labels`
 * (the worker's run, task, attempt, shard and item) as entry labels beside Cloud Run's own
 * (`run.googleapis.com/execution_name`, `…/task_index`, `…/task_attempt`), and the rest of the
 * line as `jsonPayload`. So the filter asks Cloud Logging for exactly the lines wanted.
 *
 * Following polls `entries.list` (every 2 s by default: the API allows 60 reads a minute per
 * project) from a little before the newest entry seen, because entries can arrive a few seconds
 * after their timestamp; entries seen already are dropped by insertId.
 *
 * With SHARDRUN_CLOUD_LOGGING_ENDPOINT=host:port it talks to that endpoint in plaintext without
 * credentials (an emulator, the test fake), as SHARDRUN_CLOUD_RUN_ENDPOINT does for Cloud Run.
 */
import { Logging } from "@google-cloud/logging";
import { googleAuthLibrary, grpc, type ClientOptions } from "google-gax";
import { UsageError } from "../core/errors.js";
import { ENV } from "../config/env.js";
import type { FollowOptions } from "./local-reader.js";
import { matchesFilter, type LogFilter, type LogRecord } from "./records.js";

/** Entries per request: the API's largest page. */
const PAGE_SIZE = 1000;
/** How far before the newest entry seen a follow looks again, for entries that arrive late. */
const LATE_MS = 10_000;

const SEVERITIES: Record<number, string> = { 0: "DEFAULT", 100: "DEBUG", 200: "INFO", 300: "NOTICE", 400: "WARNING", 500: "ERROR", 600: "CRITICAL", 700: "ALERT", 800: "EMERGENCY" };

export interface CloudLogsOptions {
  project: string;
  /** Options of the Logging client (an emulator's endpoint). @default cloudLoggingClientOptions() */
  clientOptions?: ClientOptions;
}

export interface CloudLogQuery extends LogFilter {
  /** Entries at or after this time (the run's creation). */
  since: string;
  /** The Cloud Run jobs the run's executions belong to (`shardrun-<job>`). */
  jobNames?: string[];
}

/** The client options for SHARDRUN_CLOUD_LOGGING_ENDPOINT, or undefined for Google's endpoint. */
export function cloudLoggingClientOptions(env: NodeJS.ProcessEnv = process.env): ClientOptions | undefined {
  const endpoint = env[ENV.cloudLoggingEndpoint];
  if (!endpoint) return undefined;
  const m = /^([^:/]+):(\d{1,5})$/.exec(endpoint);
  if (!m) throw new UsageError(`${ENV.cloudLoggingEndpoint}: expected host:port, got "${endpoint}"`);
  return { apiEndpoint: m[1]!, port: Number(m[2]), sslCreds: grpc.credentials.createInsecure(), authClient: new googleAuthLibrary.PassThroughClient() };
}

/** A string in the Logging query language: quoted, with quotes and backslashes escaped. */
const q = (s: string) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;

/**
 * The Logging query for a run's lines (indexed fields first: resource type, job, labels, time).
 * @param after only entries at or after this time (a follow's next look)
 */
export function cloudLoggingFilter(query: CloudLogQuery, after?: string): string {
  const lines = [`resource.type="cloud_run_job"`];
  if (query.jobNames?.length) lines.push(`resource.labels.job_name=(${query.jobNames.map(q).join(" OR ")})`);
  lines.push(`labels.run=${q(query.runId)}`);
  if (query.task !== undefined) lines.push(`labels.task=${q(String(query.task))}`);
  if (query.shard !== undefined) lines.push(`(labels.shard=${q(query.shard)} OR jsonPayload.shard=${q(query.shard)})`);
  if (query.item !== undefined) lines.push(`(labels.item=${q(query.item)} OR jsonPayload.item=${q(query.item)})`);
  lines.push(`timestamp>=${q(after && after > query.since ? after : query.since)}`);
  return lines.join("\n");
}

interface EntryLike {
  metadata: { timestamp?: unknown; severity?: unknown; labels?: Record<string, string> | null; insertId?: string | null };
  data: unknown;
}

/** An entry as a record: the worker's labels, Cloud Run's execution and task as its source. */
export function recordOfEntry(e: EntryLike): LogRecord {
  const m = e.metadata;
  const ts = m.timestamp instanceof Date ? m.timestamp.toISOString() : typeof m.timestamp === "string" ? m.timestamp : "";
  const severity = typeof m.severity === "number" ? (SEVERITIES[m.severity] ?? "DEFAULT") : typeof m.severity === "string" ? m.severity : "DEFAULT";
  const all = m.labels ?? {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(all)) if (!k.includes("/")) labels[k] = v;
  const execution = all["run.googleapis.com/execution_name"] ?? "?";
  const task = all["run.googleapis.com/task_index"] ?? labels.task ?? "?";
  labels.task ??= task;
  let message = "";
  let fields: Record<string, unknown> = {};
  if (typeof e.data === "string") message = e.data;
  else if (e.data && typeof e.data === "object") {
    const { message: msg, ...rest } = e.data as Record<string, unknown>;
    message = typeof msg === "string" ? msg : JSON.stringify(e.data);
    fields = rest;
  }
  return { time: ts, severity, message, labels, fields, source: `${execution}/task-${task}` };
}

export class CloudLogReader {
  readonly #logging: Logging;
  readonly #project: string;

  constructor(o: CloudLogsOptions) {
    this.#project = o.project;
    const clientOptions = o.clientOptions ?? cloudLoggingClientOptions();
    this.#logging = new Logging({ projectId: o.project, ...(clientOptions ?? {}) });
  }

  /** Every entry of the query at or after `after`, oldest first, a page at a time. */
  async *#list(query: CloudLogQuery, after?: string): AsyncGenerator<{ insertId: string; record: LogRecord }> {
    let pageToken: string | undefined;
    do {
      const [entries, next] = await this.#logging.getEntries({
        resourceNames: [`projects/${this.#project}`],
        filter: cloudLoggingFilter(query, after),
        orderBy: "timestamp asc",
        pageSize: PAGE_SIZE,
        autoPaginate: false,
        ...(pageToken ? { pageToken } : {}),
      });
      for (const e of entries as unknown as EntryLike[]) {
        const record = recordOfEntry(e);
        // The query has chosen already; the same test again keeps both readers to one rule.
        if (matchesFilter(record, query)) yield { insertId: e.metadata.insertId ?? `${record.time}/${record.source}/${record.message}`, record };
      }
      pageToken = (next as { pageToken?: string } | null | undefined)?.pageToken || undefined;
    } while (pageToken);
  }

  /** The run's lines that the query asks for, oldest first; with `follow`, on as they arrive. */
  async *read(query: CloudLogQuery, f: FollowOptions = {}): AsyncGenerator<LogRecord> {
    const seen = new Set<string>();
    let newest: string | undefined;
    for (;;) {
      const ended = f.follow ? ((await f.done?.()) ?? false) : true;
      const from = newest ? new Date(Date.parse(newest) - LATE_MS).toISOString() : undefined;
      for await (const { insertId, record } of this.#list(query, from)) {
        if (seen.has(insertId)) continue;
        seen.add(insertId);
        if (!newest || record.time > newest) newest = record.time;
        yield record;
      }
      if (ended || f.signal?.aborted) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, f.pollMs ?? 2000);
        f.signal?.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }
}
