/**
 * Task log lines read back, for `shardrun logs`: what a line said, when, and the labels the
 * worker put on it (logger.ts: `run`, `task`, `attempt` on every line, `shard` on a shard's lines,
 * `item` on an item's lines). Both readers (the local executions folder, Cloud Logging) give
 * these records, and one filter chooses among them the same way.
 */
import { LABELS_KEY } from "./logger.js";

export interface LogRecord {
  /** ISO time the line was written. */
  time: string;
  /** Cloud Logging's severity: DEBUG, INFO, WARNING, ERROR, CRITICAL, or DEFAULT for a raw line. */
  severity: string;
  message: string;
  /** The worker's labels (run, task, attempt, shard, item). */
  labels: Record<string, string>;
  /** The line's other fields (error, reason, attempts, …). */
  fields: Record<string, unknown>;
  /** Where it was read: the execution and task (`sleepy-ab12c/task-0`). */
  source: string;
}

export interface LogFilter {
  runId: string;
  /** Only lines of this shard (`s000012`). */
  shard?: string;
  /** Only lines about this item: labelled with it, or naming it in an `item` field ("item failed"). */
  item?: string;
  /** Only lines of this task index. */
  task?: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * A line of a task's log file: a structured line as the worker writes it, or any other line
 * (a crash's message, a job's console output) as a raw DEFAULT record with the file's labels.
 */
export function parseLogLine(line: string, source: { labels: Record<string, string>; name: string; time: string }): LogRecord | null {
  if (!line.trim()) return null;
  if (line.startsWith("{")) {
    try {
      const v: unknown = JSON.parse(line);
      if (isObject(v) && typeof v.message === "string") {
        const { severity, message, time, [LABELS_KEY]: labels, ...fields } = v;
        const l = isObject(labels) ? Object.fromEntries(Object.entries(labels).filter(([, x]) => typeof x === "string")) as Record<string, string> : {};
        return { time: typeof time === "string" ? time : source.time, severity: typeof severity === "string" ? severity : "DEFAULT", message, labels: { ...source.labels, ...l }, fields, source: source.name };
      }
    } catch {
      // not a structured line: kept raw below
    }
  }
  return { time: source.time, severity: "DEFAULT", message: line, labels: { ...source.labels }, fields: {}, source: source.name };
}

/** Whether a record is one the filter asks for. */
export function matchesFilter(r: LogRecord, f: LogFilter): boolean {
  if (r.labels.run !== undefined && r.labels.run !== f.runId) return false;
  if (f.task !== undefined && r.labels.task !== String(f.task)) return false;
  if (f.shard !== undefined && r.labels.shard !== f.shard && r.fields.shard !== f.shard) return false;
  if (f.item !== undefined && r.labels.item !== f.item && r.fields.item !== f.item) return false;
  return true;
}

/** Oldest first; lines of one time keep the order they were read in. */
export function byTime(a: LogRecord, b: LogRecord): number {
  return a.time < b.time ? -1 : a.time > b.time ? 1 : 0;
}
