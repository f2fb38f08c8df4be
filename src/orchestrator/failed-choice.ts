/**
 * Which failed items a `rerun --failed-items` retries. By default every failure a rerun can help:
 * not `non_retriable` (the job said retrying cannot help) and not `corrupt` (its items cannot be
 * read back). `reasons` chooses explicitly.
 */
import type { FailedItemView } from "../core/status.js";

/** The failure reasons a rerun retries unless told otherwise. */
export const DEFAULT_RERUN_REASONS: readonly string[] = ["error", "timeout", "crashed", "schema", "budget"];

export interface FailedChoice {
  retry: FailedItemView[];
  /** Failures left out, by reason (for the message that says so). */
  leftOut: Record<string, number>;
}

export function chooseFailed(failed: readonly FailedItemView[], reasons?: readonly string[]): FailedChoice {
  const wanted = new Set(reasons?.length ? reasons : DEFAULT_RERUN_REASONS);
  const retry: FailedItemView[] = [];
  const leftOut: Record<string, number> = {};
  for (const f of failed) {
    if (wanted.has(f.reason) && f.reason !== "corrupt") retry.push(f);
    else leftOut[f.reason] = (leftOut[f.reason] ?? 0) + 1;
  }
  return { retry, leftOut };
}

/** "left out 3 non_retriable failures" or "". */
export function describeLeftOut(leftOut: Record<string, number>): string {
  const parts = Object.entries(leftOut).map(([r, n]) => `${n} ${r}`);
  return parts.length ? `left out ${parts.join(", ")} failure${Object.values(leftOut).reduce((a, b) => a + b, 0) === 1 ? "" : "s"} (choose with --reason)` : "";
}
