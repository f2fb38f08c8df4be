/**
 * Log lines on pino, in Cloud Logging's structured JSON: `severity`, `message`, `time`, the
 * labels under `logging.googleapis.com/labels`, and whatever fields the caller adds (the trace
 * fields `logging.googleapis.com/trace` and `…/spanId` among them). Cloud Run's agent turns
 * each stdout/stderr line into a log entry with those fields.
 *
 * Why a `formatters` mapping and not `@google-cloud/pino-logging-gcp-config`: tasks start often
 * and the logger is on every task's start. Measured on this project's Node 24 (import only, 5
 * runs): pino 30–60 ms; pino with the GCP config 320–510 ms and 40 MB more, because the config
 * loads all of `@google-cloud/logging` (gRPC clients included) and then asks the metadata server
 * for the service context. The mapping below is the part of it this project uses: level names
 * to severities, the message key, the labels and the time.
 *
 * "text" is for people at a terminal: the same pino line, mapped to
 * `SEVERITY [label values] message {fields}` before it is written.
 */
import pino from "pino";
import type { Logger, Severity } from "../core/log.js";

export type { Logger, Severity } from "../core/log.js";

/** Where Cloud Logging looks for an entry's labels in a structured line. */
export const LABELS_KEY = "logging.googleapis.com/labels";

export interface LoggerOptions {
  /** "json": Cloud Logging lines; "text": one readable line each, for a terminal. */
  format: "json" | "text";
  /** The sink: gets one whole line at a time, newline included. */
  write: (line: string) => void;
  /** Labels on every line (children add to them). @default {} */
  labels?: Record<string, string>;
  /** @default "INFO" */
  level?: Severity;
  /** The clock of the `time` field. @default () => new Date() */
  now?: () => Date;
}

const PINO_LEVEL: Record<Severity, pino.Level> = { DEBUG: "debug", INFO: "info", WARNING: "warn", ERROR: "error" };
const SEVERITY: Record<string, Severity | "CRITICAL"> = { trace: "DEBUG", debug: "DEBUG", info: "INFO", warn: "WARNING", error: "ERROR", fatal: "CRITICAL" };
/** Keys the line owns: a caller's field of the same name is dropped, so job code cannot spoof them. */
const RESERVED = ["severity", "message", "time", LABELS_KEY];

export function createLogger(options: LoggerOptions): Logger {
  const now = options.now ?? (() => new Date());
  const write = options.format === "json" ? options.write : (line: string) => options.write(textLine(line));
  const root = pino(
    {
      level: PINO_LEVEL[options.level ?? "INFO"],
      // No pid or hostname on every line: Cloud Logging's resource labels say where it ran.
      base: undefined,
      messageKey: "message",
      timestamp: () => `,"time":"${now().toISOString()}"`,
      formatters: {
        level: (label) => ({ severity: SEVERITY[label] ?? "DEFAULT" }),
        log: (fields) => {
          if (!RESERVED.some((k) => k in fields)) return fields;
          const kept = { ...fields };
          for (const k of RESERVED) delete kept[k];
          return kept;
        },
      },
    },
    { write },
  );
  return wrap(root, options.labels ?? {});
}

/**
 * Each logger is a child of the root with all of its labels: pino would write a nested child's
 * bindings as a second `labels` object, and the line would keep only the last one.
 */
function wrap(root: pino.Logger, labels: Record<string, string>): Logger {
  const p = root.child({ [LABELS_KEY]: labels });
  return {
    debug: (m, f) => p.debug(f ?? {}, m),
    info: (m, f) => p.info(f ?? {}, m),
    warn: (m, f) => p.warn(f ?? {}, m),
    error: (m, f) => p.error(f ?? {}, m),
    child: (more) => wrap(root, { ...labels, ...more }),
  };
}

/** A JSON line as a person reads it: `WARNING [r1 s0] slow item {"ms":1200}`. */
function textLine(json: string): string {
  const { severity, message, time: _time, [LABELS_KEY]: labels, ...fields } = JSON.parse(json) as Record<string, unknown>;
  const tags = Object.values((labels ?? {}) as Record<string, string>).join(" ");
  const extra = Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : "";
  return `${String(severity).padEnd(7)} ${tags ? `[${tags}] ` : ""}${String(message)}${extra}\n`;
}
