/**
 * One errors file for the whole project. Every error carries a string `code` so that callers
 * decide on data, not on class identity: a job runs from its own bundle, with its own copy of
 * these classes, so `instanceof` cannot recognise what job code throws. Errors pass `cause` along.
 */

export type ShardrunErrorCode =
  | "PRECONDITION_FAILED"
  | "NOT_FOUND"
  | "USAGE"
  | "INVALID_INPUT"
  | "NON_RETRIABLE"
  | "RETRY_AFTER"
  | "LEASE_LOST"
  | "STORE_FULL"
  /** An object of a run is not what the checkpoint that names it recorded (missing, truncated, changed). */
  | "DAMAGED"
  | "INTERNAL";

/**
 * Marks shardrun's errors. `Symbol.for` gives every copy of this module (the worker's, each job
 * bundle's) the same symbol, so a mark set by one copy is read by all.
 */
export const SHARDRUN_ERROR: unique symbol = Symbol.for("shardrun.error");

const CODES: ReadonlySet<string> = new Set<ShardrunErrorCode>([
  "PRECONDITION_FAILED",
  "NOT_FOUND",
  "USAGE",
  "INVALID_INPUT",
  "NON_RETRIABLE",
  "RETRY_AFTER",
  "LEASE_LOST",
  "INTERNAL",
]);

export class ShardrunError extends Error {
  readonly code: ShardrunErrorCode;
  readonly [SHARDRUN_ERROR] = true;
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
 * The store refused a write for lack of space or quota (a full disk, a disk quota). Nothing was
 * written; the same write succeeds once space is freed. `store` names the store (its URL).
 */
export class StoreFull extends ShardrunError {
  readonly store: string;
  constructor(store: string, message: string, options?: { cause?: unknown }) {
    super("STORE_FULL", message, options);
    this.store = store;
  }
}

/** A shardrun error (from any copy of this module), with `code` when given. Decided on data, never on class identity. */
export function isShardrunError(e: unknown, code?: ShardrunErrorCode): e is ShardrunError {
  if (typeof e !== "object" || e === null) return false;
  const mark = (e as { [SHARDRUN_ERROR]?: unknown })[SHARDRUN_ERROR];
  const c = (e as { code?: unknown }).code;
  return mark === true && typeof c === "string" && CODES.has(c) && (code === undefined || c === code);
}

/** How long a `RetryAfterError` (from any copy of this module) asks to wait, or undefined for any other error. */
export function retryAfterMs(e: unknown): number | undefined {
  if (!isShardrunError(e, "RETRY_AFTER")) return undefined;
  const ms = (e as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof ms === "number" && Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/** An item over its own budget (`BudgetExceeded`): failed with a budget reason, never retried. */
export function isBudgetExceeded(e: unknown): e is BudgetExceeded {
  return isShardrunError(e, "NON_RETRIABLE") && (e as { budget?: unknown }).budget === true;
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
  /** The run stopped with items never finished (launch limit, failure tolerance, budget). */
  runIncomplete: 4,
  /** The run was cancelled. */
  cancelled: 5,
  /** `status --exit-status` of a run not finished yet. */
  notFinished: 6,
  /** Ctrl-C: the command stopped watching (128 + SIGINT, as shells report it); the run goes on. */
  interrupted: 130,
  /** A task stopped with work left (deadline or SIGTERM) and wants to be retried; EX_TEMPFAIL. */
  retryTask: 75,
} as const;
