/**
 * The controls that finish a stopped run, each what the CLI's `rerun` takes: "Rerun" launches the
 * shards that are not done, with a field to raise the run budget (what a budget stop needs,
 * `--budget-tokens` / `--budget-usd`); "Rerun failed items" re-plans the failed items chosen by
 * reason (`--failed-items --reason`, by default every reason but `non_retriable`); and, when the
 * job's code changed since the run was planned, "upgrade" runs the code as it is now
 * (`--upgrade`). The page script (client-run.ts) turns them into the rerun request's body.
 */
import type { RunStatus } from "../core/status.js";
import type { RerunSettings } from "../core/settings.js";
import { DEFAULT_RERUN_REASONS } from "../orchestrator/failed-choice.js";
import type { CodeChange } from "../orchestrator/job-version.js";
import { esc, formatInt, formatUsd, isLive } from "./html.js";

/** The reasons a rerun of failed items can choose, in the order the CLI's help gives them. */
export const RERUN_REASONS = ["error", "timeout", "crashed", "schema", "budget", "non_retriable"] as const satisfies readonly NonNullable<RerunSettings["reasons"]>[number][];

const REASON_NOTES: Record<(typeof RERUN_REASONS)[number], string> = {
  error: "threw an error, every retry too",
  timeout: "ran past the item timeout",
  crashed: "its process died with it in flight, up to the crash limit",
  schema: "failed the job's item schema",
  budget: "went over the item budget",
  non_retriable: "the job said retrying cannot help (NonRetriableError): left out unless chosen",
};

export interface FinishOptions {
  /** Failed items by reason, from the dead letter. */
  failedByReason: Record<string, number>;
  /** Whether the job's code changed since the run was planned; unknown without it. */
  code?: CodeChange;
}

/** The card, or "" when nothing can be rerun (a live run, or a finished one with nothing left). */
export function finishCard(st: RunStatus, o: FinishOptions): string {
  if (isLive(st.state)) return "";
  const open = st.shards.total - st.shards.done;
  const failed = Object.values(o.failedByReason).reduce((a, b) => a + b, 0);
  if (open <= 0 && st.items.failed <= 0) return "";
  return `<section class="card finish" id="finish" aria-labelledby="finish-h"><h2 id="finish-h">Finish this run</h2>
${upgradeBlock(o.code)}
<div class="finish-forms">
${open > 0 ? rerunForm(st, open) : ""}
${st.items.failed > 0 ? failedForm(st, o.failedByReason, failed) : ""}
</div>
<div class="msg" id="action-msg" role="alert"></div>
</section>`;
}

function upgradeBlock(code: CodeChange | undefined): string {
  if (code?.changed === true) {
    return `<div class="upgrade" id="upgrade"><label><input type="checkbox" name="upgrade"><span><strong>Upgrade</strong>: run the job's code as it is now</span></label>
<p class="muted small">The job's code changed since the run was planned (<span class="mono">${esc(code.recorded)}</span> → <span class="mono">${esc(code.current)}</span>). Without upgrade, a rerun runs the code the run was planned with.</p></div>`;
  }
  // Hidden until the service says the code changed (it checks again on every rerun).
  const note =
    code?.changed === false
      ? `<p class="muted small" id="code-note">The job's code is unchanged since the run was planned (<span class="mono">${esc(code.version)}</span>).</p>`
      : code?.changed === "unknown"
        ? `<p class="muted small" id="code-note">Upgrade is not offered here: ${esc(code.reason)}.</p>`
        : "";
  return `${note}<div class="upgrade" id="upgrade" hidden><label><input type="checkbox" name="upgrade"><span><strong>Upgrade</strong>: run the job's code as it is now</span></label></div>`;
}

function rerunForm(st: RunStatus, open: number): string {
  const stopped = st.state === "budget_exhausted";
  const run = st.budgets.run;
  const limits = run ? [run.tokens !== undefined ? `${formatInt(run.tokens)} tokens` : "", run.usd !== undefined ? formatUsd(run.usd) : ""].filter(Boolean).join(" and ") : "";
  const spent = `${formatInt(st.usage.tokens)} tokens and ${formatUsd(st.usage.usd)}`;
  const fields = `<div class="fields">
<label>Tokens <input type="number" name="budgetTokens" min="1" step="1" inputmode="numeric" placeholder="${run?.tokens !== undefined ? esc(String(run.tokens)) : "no limit"}"></label>
<label>Dollars <input type="number" name="budgetUsd" min="0.01" step="0.01" inputmode="decimal" placeholder="${run?.usd !== undefined ? esc(String(run.usd)) : "no limit"}"></label>
</div>`;
  const budget =
    stopped || run
      ? `<fieldset class="budget-fields"><legend>Run budget</legend>
<p class="small${stopped ? " warn" : " muted"}">${stopped ? `The run stopped at its budget${limits ? ` (${esc(limits)})` : ""} after spending ${esc(spent)}: raise it to go on.` : `Now ${esc(limits)}; spent ${esc(spent)}. Leave empty to keep it.`}</p>
${fields}</fieldset>`
      : `<details class="budget-fields"><summary>Set a run budget</summary>${fields}</details>`;
  return `<form class="finish-form" data-form="rerun">
<p><strong>${formatInt(open)}</strong> ${open === 1 ? "shard is" : "shards are"} not done. A rerun launches ${open === 1 ? "it" : "them"} again; finished items are not redone.</p>
${budget}
<button type="button" class="primary" data-action="rerun" title="Launch again for the ${open} shards that are not done">Rerun</button>
</form>`;
}

function failedForm(st: RunStatus, byReason: Record<string, number>, listed: number): string {
  const boxes = RERUN_REASONS.map((r) => {
    const n = byReason[r] ?? 0;
    const on = DEFAULT_RERUN_REASONS.includes(r);
    return `<label class="reason-choice${n ? "" : " none"}" title="${esc(REASON_NOTES[r])}"><input type="checkbox" name="reason" value="${r}"${on ? " checked" : ""}${n ? "" : " disabled"}> <span class="reason reason-${r}">${r}</span> <span class="count">${formatInt(n)}</span></label>`;
  }).join("");
  const corrupt = byReason.corrupt ?? 0;
  const open = st.shards.total - st.shards.done;
  return `<form class="finish-form" data-form="rerun-failed">
<fieldset class="reasons"><legend>Failed items to retry, by reason</legend>
<div class="choices">${boxes}</div>
<p class="muted small">By default every reason but <span class="mono">non_retriable</span>: the job said retrying those cannot help.${corrupt ? ` ${formatInt(corrupt)} <span class="mono">corrupt</span> ${corrupt === 1 ? "item's" : "items'"} inputs cannot be read back and are never retried.` : ""}</p>
</fieldset>
<p class="small"><span id="retry-count">${formatInt(listed)} failed items</span> chosen; they are re-planned into new shards.</p>
<button type="button" class="${open > 0 ? "" : "primary"}" data-action="rerun-failed" title="Re-plan the failed items of the reasons chosen into new shards and run them">Rerun failed items</button>
</form>`;
}
