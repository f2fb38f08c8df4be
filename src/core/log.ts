/**
 * Structured logs in Cloud Logging's JSON shape (severity, message, labels), one line each.
 * The sink is injected, so this stays free of I/O; "text" is for people at a terminal.
 */
export type Severity = "DEBUG" | "INFO" | "WARNING" | "ERROR";

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(labels: Record<string, string>): Logger;
}

export interface LoggerOptions {
  format: "json" | "text";
  write: (line: string) => void;
  labels?: Record<string, string>;
  /** @default "INFO" */
  level?: Severity;
  now?: () => Date;
}

const ORDER: Record<Severity, number> = { DEBUG: 0, INFO: 1, WARNING: 2, ERROR: 3 };

export function createLogger(options: LoggerOptions): Logger {
  const labels = options.labels ?? {};
  const min = ORDER[options.level ?? "INFO"];
  const now = options.now ?? (() => new Date());
  const emit = (severity: Severity, message: string, fields?: Record<string, unknown>) => {
    if (ORDER[severity] < min) return;
    if (options.format === "json") {
      options.write(
        // Fields first: job code must not be able to overwrite severity, message or labels.
        JSON.stringify({ ...fields, severity, message, time: now().toISOString(), "logging.googleapis.com/labels": labels }) + "\n",
      );
    } else {
      const tags = Object.values(labels).join(" ");
      const extra = fields && Object.keys(fields).length ? " " + JSON.stringify(fields) : "";
      options.write(`${severity.padEnd(7)} ${tags ? `[${tags}] ` : ""}${message}${extra}\n`);
    }
  };
  return {
    debug: (m, f) => emit("DEBUG", m, f),
    info: (m, f) => emit("INFO", m, f),
    warn: (m, f) => emit("WARNING", m, f),
    error: (m, f) => emit("ERROR", m, f),
    child: (more) => createLogger({ ...options, labels: { ...labels, ...more } }),
  };
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
