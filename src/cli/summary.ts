/**
 * A run's status as people read it: the summary `run`, `rerun`, `watch` and `status` print, with
 * each launch's tasks (attempts, timeouts, how they ended), the spend against the budget (and
 * any overshoot), and the commands that finish the run, written as the user typed the CLI.
 */
import type { LaunchStatus, RunStatus } from "../core/status.js";
import { readFailedItems } from "../orchestrator/drive.js";
import { readRun } from "../orchestrator/read.js";
import type { ObjectStore } from "../store/port.js";
import { colorsFor, formatDuration, paintState, type Colors } from "./format.js";
import { commandHint, type HintContext } from "./hints.js";
import type { Io } from "./io.js";

/** Tasks listed one by one per launch; the rest are counted. */
const TASK_LINES = 20;

/** What to run next for a run that stopped short, written so that it runs as printed. */
export function nextSteps(st: RunStatus, hints: HintContext, o: SummaryOptions): string[] {
  const where = o.local ? ["--local"] : [];
  if (st.state === "planning" || st.state === "pending" || st.state === "running") {
    return [`  watch     ${commandHint(hints, "watch", st.runId)}`, `  cancel    ${commandHint(hints, "cancel", st.runId)}`];
  }
  const lines: string[] = [];
  if (st.state === "budget_exhausted") {
    const b = st.budgets.run;
    const raise = b?.tokens !== undefined ? ["--budget-tokens", String(b.tokens * 2)] : b?.usd !== undefined ? ["--budget-usd", String(b.usd * 2)] : b?.ms !== undefined ? ["--budget-minutes", String(Math.ceil((b.ms * 2) / 60_000))] : [];
    lines.push(`  budget    raise it and go on: ${commandHint(hints, "rerun", st.runId, ...where, ...raise)}`);
  } else if (st.items.pending > 0) {
    // A launch limit, a cancel, a failure tolerance: a plain rerun launches what is not done.
    lines.push(`  unfinished ${st.items.pending} items: ${commandHint(hints, "rerun", st.runId, ...where)}`);
  }
  if (st.items.failed) {
    lines.push(`  failed    see why: ${commandHint(hints, "failures", st.runId)}`);
    const reasons = o.failureReasons;
    const forGood = reasons ? (reasons.non_retriable ?? 0) + (reasons.corrupt ?? 0) : 0;
    const retriable = reasons ? st.items.failed - forGood : st.items.failed;
    if (retriable > 0) lines.push(`            retry ${reasons ? `the ${retriable} retriable` : "them"}: ${commandHint(hints, "rerun", st.runId, ...where, "--failed-items")}`);
    if (forGood > 0) lines.push(`            ${forGood} failed for good (non_retriable${reasons?.corrupt ? ", corrupt" : ""}); after a fix: ${commandHint(hints, "rerun", st.runId, ...where, "--failed-items", "--reason", "non_retriable")}`);
  }
  return lines;
}

function budgetText(st: RunStatus, c: Colors): string[] {
  const budget = st.budgets.run;
  if (!st.usage.tokens && !st.usage.usd && !budget) return [];
  const limits = budget ? [budget.tokens !== undefined && `${budget.tokens} tokens`, budget.usd !== undefined && `$${budget.usd}`, budget.ms !== undefined && `${Math.round(budget.ms / 60000)} min`].filter(Boolean).join(", ") : "";
  const over = st.overshoot ? [st.overshoot.tokens && `${st.overshoot.tokens} tokens`, st.overshoot.usd && `$${Number(st.overshoot.usd.toFixed(6))}`].filter(Boolean).join(", ") : "";
  return [
    `  spend     ${st.usage.tokens} tokens, $${Number(st.usage.usd.toFixed(6))}${limits ? ` (run budget: ${limits})` : ""}`,
    ...(over ? [`            ${c.yellow(`overshoot: ${over} past the budget (items in flight when it ran out)`)}`] : []),
  ];
}

/** One line per launch, and below it the tasks worth a look (retried, timed out, failed). */
function launchLines(launches: readonly LaunchStatus[], tasks: boolean, c: Colors): string[] {
  if (!launches.length) return ["  launches  none"];
  const out: string[] = [];
  for (const [k, l] of launches.entries()) {
    out.push(`${k === 0 ? "  launches  " : "            "}#${l.n} ${l.execution ?? "-"} (${l.taskCount} tasks, ${paintState(c, l.state)})`);
    if (l.url) out.push(`              ${l.url}`);
    if (!tasks || !l.taskList) continue;
    const notable = l.taskList.filter((t) => t.attempts > 1 || (t.timeouts ?? 0) > 0 || (t.state !== "succeeded" && t.state !== "pending"));
    const plain = l.taskList.length - notable.length;
    for (const t of notable.slice(0, TASK_LINES)) {
      const parts = [`${t.attempts} attempt${t.attempts === 1 ? "" : "s"}`, ...(t.timeouts ? [`${t.timeouts} timed out`] : []), ...(t.lastExit ? [`last: ${t.lastExit}`] : [])];
      out.push(`              task ${t.index}: ${paintState(c, t.state)}, ${parts.join(", ")}`);
    }
    if (notable.length > TASK_LINES) out.push(`              … ${notable.length - TASK_LINES} more tasks retried or failed (status --json lists every task)`);
    if (plain && notable.length) out.push(`              ${plain} other task${plain === 1 ? "" : "s"}: first attempt, no timeout`);
  }
  return out;
}

export interface SummaryOptions {
  /** Whether the run's tasks ran here (the hints then carry --local). */
  local: boolean;
  /** List each launch's notable tasks. @default false */
  tasks?: boolean;
  /** Failed items by reason, when the caller read them: the hints then say which a rerun retries. */
  failureReasons?: Record<string, number>;
}

/** Failed items by reason (one read of each checkpoint with failures). */
export async function failureReasons(store: ObjectStore, runId: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const f of await readFailedItems(store, (await readRun(store, runId)).value)) out[f.reason] = (out[f.reason] ?? 0) + 1;
  return out;
}

export function summary(st: RunStatus, io: Io, hints: HintContext, o: SummaryOptions): string {
  const c = colorsFor(io.stdout, io.env ?? process.env);
  const took = st.finishedAt ? ` in ${formatDuration(Date.parse(st.finishedAt) - Date.parse(st.createdAt))}` : "";
  return [
    `run ${st.runId} (${st.job}): ${paintState(c, st.state)}${took}${st.reason ? ` — ${st.reason}` : ""}`,
    `  items     ${st.items.succeeded} succeeded, ${st.items.failed ? c.red(`${st.items.failed} failed`) : "0 failed"}, ${st.items.pending} pending of ${st.items.total}`,
    `  shards    ${st.shards.done}/${st.shards.total} done`,
    ...launchLines(st.launches, o.tasks === true, c),
    `  executions ${st.executions} item executions for ${st.items.total} items`,
    ...budgetText(st, c),
    `  outputs   ${commandHint(hints, "output", st.runId)}`,
    ...nextSteps(st, hints, o),
    "",
  ].join("\n");
}
