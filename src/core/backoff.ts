/**
 * Item retry policy and backoff: a plain validated object and a pure function of the attempt.
 */
import { z } from "zod";

export const RetryPolicy = z.strictObject({
  /** Tries per item inside one task, the first included. @default 3 */
  attempts: z.number().int().min(1).max(100).default(3),
  /** @default 1000 */
  minDelayMs: z.number().int().min(0).default(1000),
  /** @default 60000 */
  maxDelayMs: z.number().int().min(0).default(60_000),
  /** @default 2 */
  factor: z.number().min(1).default(2),
  /** Full jitter: a uniform delay between 0 and the exponential delay. @default true */
  jitter: z.boolean().default(true),
});
export type RetryPolicy = z.infer<typeof RetryPolicy>;

/**
 * Delay before try `attempt + 1`, after try `attempt` (1-based) failed. `random` is injected so
 * tests are deterministic.
 */
export function nextRetryDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.minDelayMs * policy.factor ** Math.max(0, attempt - 1));
  if (!policy.jitter) return Math.round(exp);
  // Full jitter, but never below minDelayMs (a burst of failures should still spread out) and
  // never above maxDelayMs, even when a policy sets min above max.
  return Math.min(policy.maxDelayMs, Math.round(policy.minDelayMs + random() * Math.max(0, exp - policy.minDelayMs)));
}
