/**
 * Run-wide limits on an external API, shared out over the tasks that run at once. Each task
 * enforces its share locally with a sliding window, so no coordination is needed: with P tasks
 * running and a limit of R requests per second, each task starts at most floor(R / P) requests
 * in any one-second window, one every 1/floor(R / P) s, and the run at most R. (When R < P, each task starts one request per
 * ceil(P / R) seconds: the rate holds on average, not in every single second.)
 *
 * A task counts a request when it lets it go, but the provider counts it when it arrives, and
 * under load a request can take a few hundred ms to leave the process. Each window is therefore
 * widened by WINDOW_MARGIN: the run gives up that share of its rate so that arrivals, not just
 * starts, stay under the limit (measured: 22-23/s seen at a 20/s limit without it, 20 with it).
 */
export const WINDOW_MARGIN = 0.15;
import { z } from "zod";

export const LimitSpec = z.strictObject({
  /** Requests started per second across the whole run. */
  perSecond: z.number().positive().optional(),
  /** Requests in flight at once across the whole run. */
  concurrent: z.number().int().min(1).optional(),
});
export type LimitSpec = z.infer<typeof LimitSpec>;

export interface TaskShare {
  /** Starts allowed per window in this task (0 = no rate limit). */
  starts: number;
  windowMs: number;
  /** In flight at once in this task (Infinity = no limit). */
  concurrent: number;
}

export function taskShare(spec: LimitSpec, runningTasks: number): TaskShare {
  const p = Math.max(1, runningTasks);
  let starts = 0;
  let windowMs = 1000;
  if (spec.perSecond !== undefined) {
    const perTask = spec.perSecond / p;
    if (perTask >= 1) starts = Math.floor(perTask);
    else {
      starts = 1;
      windowMs = Math.ceil(1000 / perTask);
    }
    windowMs = Math.ceil(windowMs * (1 + WINDOW_MARGIN));
  }
  const concurrent = spec.concurrent !== undefined ? Math.max(1, Math.floor(spec.concurrent / p)) : Number.POSITIVE_INFINITY;
  return { starts, windowMs, concurrent };
}

/**
 * How long to wait before the next start, given the start times in the window (oldest first).
 * Pure: the caller keeps the times and the clock.
 */
export function waitBeforeStart(share: TaskShare, recentStarts: readonly number[], now: number): number {
  if (share.starts === 0) return 0;
  const inWindow = recentStarts.filter((t) => t > now - share.windowMs);
  // Starts are spread evenly over the window rather than let go in a burst: a burst that leaves
  // late (a busy event loop, a slow connect) lands beside the next one at the provider.
  const last = inWindow[inWindow.length - 1];
  const spaced = last === undefined ? 0 : last + share.windowMs / share.starts - now;
  // The oldest start in the window must leave it first.
  const full = inWindow.length < share.starts ? 0 : inWindow[inWindow.length - share.starts]! + share.windowMs - now;
  return Math.max(0, spaced, full);
}
