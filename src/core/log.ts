/**
 * The logging port: what the rest of the code writes log lines through. The pino-based
 * implementation (Cloud Logging's structured JSON, or text for a terminal) is I/O and lives in
 * src/log/; core keeps only the interface and a logger that writes nothing.
 */
export type Severity = "DEBUG" | "INFO" | "WARNING" | "ERROR";

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines carry these labels too (the child's win on a clash). */
  child(labels: Record<string, string>): Logger;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};

/** Adds fields (a request's trace, say) to every line a logger writes, its children's included. */
export function withFields(logger: Logger, fields: Record<string, unknown>): Logger {
  return {
    debug: (m, f) => logger.debug(m, { ...fields, ...f }),
    info: (m, f) => logger.info(m, { ...fields, ...f }),
    warn: (m, f) => logger.warn(m, { ...fields, ...f }),
    error: (m, f) => logger.error(m, { ...fields, ...f }),
    child: (labels) => withFields(logger.child(labels), fields),
  };
}
