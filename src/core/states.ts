/**
 * The words for a run's state, and the exit code each one gives: one list for the CLI, the API,
 * the dashboard and the README, so that `shardrun status`, `GET /v1/runs/{id}` and the run page
 * never call one state by two names, and `run`, `rerun`, `watch` and `status --exit-status` never
 * exit differently for one state.
 */
import { ExitCode } from "./errors.js";
import type { RunState } from "./model.js";

/**
 * A run's state as every reader shows it, in the order a run passes through them.
 * - planning: its items are being read and written to the store; nothing runs yet
 * - pending: planned, no task started yet
 * - running: a launch is live (or about to be continued)
 * - succeeded: every item succeeded
 * - partial: every item ran, some failed
 * - failed: every item failed, or the run gave up (launch limit, failure tolerance, damage)
 * - cancelled: stopped on request
 * - budget_exhausted: stopped at its budget
 */
export const RUN_STATES = ["planning", "pending", "running", "succeeded", "partial", "failed", "cancelled", "budget_exhausted"] as const;
export type ShownState = (typeof RUN_STATES)[number];

/** States of lists of runs: a run whose records cannot be read is listed, as `unreadable`. */
export const LISTED_STATES = [...RUN_STATES, "unreadable"] as const;
export type ListedState = (typeof LISTED_STATES)[number];

/** States in which a run may still change without anyone rerunning it. */
export const LIVE_STATES: ReadonlySet<ShownState> = new Set(["planning", "pending", "running"]);

export function isLiveState(state: string): boolean {
  return LIVE_STATES.has(state as ShownState);
}

/** What a stored state is called: a run recorded as `planned` has not started, so it is `pending`. */
export function shownState(recorded: RunState): ShownState {
  return recorded === "planned" ? "pending" : recorded;
}

/** The stored state a shown state stands for (a filter by `pending` finds `planned` runs). */
export function recordedState(shown: ListedState): RunState | "unreadable" {
  return shown === "pending" ? "planned" : shown;
}

/**
 * The exit code of a command that watched a run to its end, or of `status --exit-status`. One
 * table (EXIT_CODES below) documents it; `failed` splits by whether items were left unfinished.
 */
export function exitCodeOf(status: { state: ShownState; items: { pending: number } }): number {
  switch (status.state) {
    case "succeeded":
      return ExitCode.ok;
    case "partial":
      return ExitCode.itemsFailed;
    case "failed":
      return status.items.pending > 0 ? ExitCode.runIncomplete : ExitCode.itemsFailed;
    case "budget_exhausted":
      return ExitCode.runIncomplete;
    case "cancelled":
      return ExitCode.cancelled;
    case "planning":
    case "pending":
    case "running":
      return ExitCode.notFinished;
  }
}

/** Every exit code of the `shardrun` command, for help and the README. */
export const EXIT_CODES: readonly { code: number; meaning: string }[] = [
  { code: ExitCode.ok, meaning: "the run succeeded (or the command did what it was asked)" },
  { code: ExitCode.internal, meaning: "an internal error, a damaged object or a full store (one line says which)" },
  { code: ExitCode.usage, meaning: "bad usage or input: one line names the flag or field; nothing was written" },
  { code: ExitCode.itemsFailed, meaning: "the run finished with failed items (partial, or every item failed)" },
  { code: ExitCode.runIncomplete, meaning: "the run stopped with items unfinished (launch limit, failure tolerance, budget_exhausted)" },
  { code: ExitCode.cancelled, meaning: "the run was cancelled" },
  { code: ExitCode.notFinished, meaning: "status --exit-status: the run is not finished (planning, pending, running)" },
  { code: ExitCode.interrupted, meaning: "Ctrl-C: stopped watching; the run goes on (see the watch command printed)" },
];
