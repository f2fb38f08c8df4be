/**
 * The client-side retry of the Cloud Storage adapters (gcs, and the simulated one that must
 * behave like it): reads, lists and conditioned writes are repeated on 408/429/5xx, resets and
 * timeouts, with exponential backoff and full jitter; an unconditional write is repeated only
 * when its request provably never left. A blind retry of an unconditional write could undo
 * another writer's work, so those failures go back to the caller.
 */
import { nextRetryDelay, RetryPolicy } from "../core/backoff.js";
import { ShardrunError } from "../core/errors.js";
import type { Clock } from "../core/time.js";

/** What a failed request allows: repeat anything, repeat only idempotent calls, or give up. */
export type Failure = "not-sent" | "transient" | "final";
/** Whether a call may be repeated after an ambiguous failure (a conditioned write may). */
export type RetryMode = "idempotent" | "unconditional";

/** Up to about 20 s of waiting in all: enough for a 429 burst on an object written too often. */
export const DEFAULT_STORE_RETRY = { attempts: 8, minDelayMs: 200, maxDelayMs: 10_000, factor: 2, jitter: true } satisfies RetryPolicy;

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);
/** The request never reached a server: safe to repeat even an unconditional write. */
const NOT_SENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN"]);

export interface RetryLoop {
  policy: RetryPolicy;
  /** Backoff waits and attempt deadlines run on this clock. */
  clock: Clock;
  /** Time an attempt has to answer before it is abandoned as a transient failure. */
  requestTimeoutMs: number;
  /** Jitter source. @default Math.random */
  random?: () => number;
}

/**
 * Runs `call` until it succeeds or may not be repeated; `giveUp` turns the last error into what
 * the caller sees. `ambiguous` is true once an earlier attempt failed in a way that may have
 * been applied (a lost answer, a timeout, a 5xx): a 412 or 404 then may be that attempt's own
 * doing. A refusal (429) or a request that never left is not ambiguous.
 */
export async function retrying<T>(
  loop: RetryLoop,
  mode: RetryMode,
  call: (signal: AbortSignal, ambiguous: boolean) => Promise<T>,
  giveUp: (error: unknown, attempts: number) => unknown,
): Promise<T> {
  let ambiguous = false;
  for (let attempt = 1; ; attempt++) {
    try {
      const earlier = ambiguous;
      return await withDeadline(loop.clock, loop.requestTimeoutMs, (signal) => call(signal, earlier));
    } catch (error) {
      const failure = classify(error);
      const retryable = failure === "not-sent" || (failure === "transient" && mode === "idempotent");
      if (!retryable || attempt >= loop.policy.attempts) throw giveUp(error, attempt);
      if (failure === "transient" && statusOf(error) !== 429) ambiguous = true;
      await loop.clock.sleep(nextRetryDelay(loop.policy, attempt, loop.random));
    }
  }
}

/**
 * `call` with `ms` to settle. At the deadline `signal` aborts and the result is a timeout error
 * (transient, like a lost answer). The call is abandoned, not cancelled, unless it listens to
 * `signal`: it may still reach the server later, which is why only idempotent calls are repeated
 * after one; its late outcome is dropped.
 */
export function withDeadline<T>(clock: Clock, ms: number, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = new AbortController();
  const deadline = clock.sleep(ms, timer.signal).then(() => {
    const error = Object.assign(new Error(`no answer within ${ms} ms (requestTimeoutMs)`), { code: "ETIMEDOUT", type: "request-timeout" });
    controller.abort(error);
    throw error;
  });
  // The timer is stopped once the call settles; that rejection is nobody's concern.
  deadline.catch(() => undefined);
  const attempt = call(controller.signal);
  attempt.catch(() => undefined);
  return Promise.race([attempt, deadline]).finally(() => timer.abort());
}

/**
 * Why a call failed after `attempts`, for the message: an unconditional write that met a
 * transient failure was not retried, and the reason differs for a refusal and a lost answer.
 */
export function retryNote(error: unknown, mode: RetryMode, attempts: number): string {
  if (mode === "unconditional" && classify(error) === "transient") {
    return statusOf(error) === 429
      ? " (refused with 429 and not retried: only conditioned writes are; pass ifGenerationMatch to have it retried)"
      : " (not retried: an unconditional write may have been applied; pass ifGenerationMatch to make it safe to retry)";
  }
  return ` after ${attempts} attempt${attempts === 1 ? "" : "s"}`;
}

/** How a failed request may be treated, from its HTTP status or its network error. */
export function classify(error: unknown): Failure {
  if (error instanceof ShardrunError || error instanceof TypeError || error instanceof RangeError) return "final";
  const status = statusOf(error);
  if (status !== undefined) return RETRYABLE_STATUS.has(status) ? "transient" : "final";
  const { code, type } = error as { code?: unknown; type?: unknown };
  const name = typeof code === "string" ? code.toUpperCase() : "";
  if (NOT_SENT.has(name)) return "not-sent";
  // Resets, broken pipes, cut bodies, timeouts and download hash mismatches: the answer was lost.
  if (/^E[A-Z]+$|^ERR_STREAM_PREMATURE_CLOSE$|^CONTENT_DOWNLOAD_MISMATCH$/.test(name)) return "transient";
  if (type === "system" || type === "request-timeout" || type === "body-timeout") return "transient";
  if (error instanceof Error && /socket hang up|premature close|network timeout/i.test(error.message)) return "transient";
  return "final";
}

/** The HTTP status an error carries (`code` or `status`), if any. */
export function statusOf(error: unknown): number | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const { code, status } = error as { code?: unknown; status?: unknown };
  for (const value of [code, status]) {
    if (typeof value === "number" && value >= 100 && value < 600) return value;
    if (typeof value === "string" && /^[1-5][0-9][0-9]$/.test(value)) return Number(value);
  }
  return undefined;
}

/**
 * True when a store call gave up on 429s: the object (or the bucket) was written too often. A
 * conditioned writer that contends for one object treats it as contention: read again, retry later.
 */
export function isRateLimited(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (statusOf(e) === 429) return true;
  }
  return false;
}

export { RetryPolicy };
