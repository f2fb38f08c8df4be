/**
 * The words a run's state is shown in: one list for the CLI, the API and the dashboard, so that a
 * state reads the same everywhere (`budget_exhausted`, never a paraphrase of it). It covers the
 * states run.json records (`RunState`, which the runs index and its filters use) and the states
 * status derives from them (`StatusState`: `pending` for a run planned and not launched yet); the
 * compiler refuses this file when either list gains a word that is not described here.
 */
import type { RunState } from "./model.js";
import type { StatusState } from "./status.js";

export type StateWord = RunState | StatusState;

/** Every state word with what it means, in the order a run goes through them. */
export const STATE_WORDS = {
  planning: "its plan is being written; nothing runs yet",
  planned: "planned; not launched yet",
  pending: "planned; waiting for its first launch",
  running: "its tasks are running, or a launch is starting",
  succeeded: "every item succeeded",
  partial: "every item settled, and some failed",
  failed: "gave up: every item failed, too many failed, or the launch limit was reached",
  cancelled: "cancelled; finished items stay done",
  budget_exhausted: "stopped at its run budget; a rerun with a higher budget goes on",
} as const satisfies Record<StateWord, string>;

/** The words in order. */
export const STATE_LIST = Object.keys(STATE_WORDS) as StateWord[];

/** States of a run that is not finished: something may still change without anyone asking. */
export const LIVE_STATES: ReadonlySet<string> = new Set<StateWord>(["planning", "planned", "pending", "running"]);

/** Finished states: a run stays in one until a rerun or a cancel. */
export const FINISHED_STATES: ReadonlySet<string> = new Set<StateWord>(["succeeded", "partial", "failed", "cancelled", "budget_exhausted"]);

export function isStateWord(word: string): word is StateWord {
  return Object.hasOwn(STATE_WORDS, word);
}

/** What a state means, for a tooltip or help text; "" for a word not in the list. */
export function describeState(word: string): string {
  return isStateWord(word) ? STATE_WORDS[word] : "";
}
