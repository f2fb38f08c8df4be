/**
 * One errors file for the whole project. Every error carries a string `code` so that callers
 * decide on data, not on class identity across module copies, and passes `cause` along.
 */

export type ShardrunErrorCode =
  | "PRECONDITION_FAILED"
  | "NOT_FOUND"
  | "USAGE"
  | "INVALID_INPUT"
  | "NON_RETRIABLE"
  | "RETRY_AFTER"
  | "LEASE_LOST"
  | "LAUNCH_UNCERTAIN"
  | "INTERNAL";

export class ShardrunError extends Error {
  readonly code: ShardrunErrorCode;
  constructor(code: ShardrunErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A conditional write or delete found another generation than the one it was conditioned on. */
export class PreconditionFailed extends ShardrunError {
  readonly key: string;
  constructor(key: string, expected: string, options?: { cause?: unknown }) {
    super("PRECONDITION_FAILED", `precondition failed for ${key}: expected generation ${expected}`, options);
    this.key = key;
  }
}

/** The user asked for something the command cannot do as asked: exit code 2, one line, no stack. */
export class UsageError extends ShardrunError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("USAGE", message, options);
  }
}

/** Input (a job definition, an item, a flag value, a stored object) failed its schema. */
export class InvalidInputError extends ShardrunError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("INVALID_INPUT", message, options);
  }
}

/** Thrown by job code: the item failed and retrying it cannot help. */
export class NonRetriableError extends ShardrunError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("NON_RETRIABLE", message, options);
  }
}

/** An item went over its own budget: it fails with a budget reason and is not retried. */
export class BudgetExceeded extends NonRetriableError {
  readonly budget = true;
}

/** Thrown by job code: retry the item, but not before `retryAfterMs`. */
export class RetryAfterError extends ShardrunError {
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number, message = `retry after ${retryAfterMs} ms`, options?: { cause?: unknown }) {
    super("RETRY_AFTER", message, options);
    this.retryAfterMs = retryAfterMs;
  }
}

/** Another attempt took over the shard: stop at once and commit nothing more. */
export class LeaseLost extends ShardrunError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("LEASE_LOST", message, options);
  }
}

/**
 * A launcher could not tell whether its call started an execution (the answer was lost). Not
 * retried: the call is not idempotent. The launch's own tasks settle it (DESIGN.md protocol 6).
 */
export class LaunchUncertain extends ShardrunError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("LAUNCH_UNCERTAIN", message, options);
  }
}

export function isShardrunError(e: unknown, code?: ShardrunErrorCode): e is ShardrunError {
  return e instanceof ShardrunError && (code === undefined || e.code === code);
}

/** Message of any thrown value, without a stack. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Exit codes of every shardrun process, in one place. */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  /** The run finished, but some items failed. */
  itemsFailed: 3,
  /** The run gave up with items never finished (launch limit reached). */
  runIncomplete: 4,
  /** A task stopped with work left (deadline or SIGTERM) and wants to be retried; EX_TEMPFAIL. */
  retryTask: 75,
} as const;
