/**
 * The run page's failed items: grouped by reason and error (orchestrator/failure-groups.ts, as
 * `shardrun failures` groups them), each group with its count, sample keys and, opened, its first
 * message as it was, the first stack and last log line; then every failed item in a table of
 * its own.
 */
import type { FailedItemView, RunStatus } from "../core/status.js";
import { groupFailures, type FailureGroup } from "../orchestrator/failure-groups.js";
import { esc, formatInt } from "./html.js";

/** Failed items listed row by row; the rest are a link away in the dead-letter endpoint. */
export const MAX_FAILED_ROWS = 500;
/** Groups shown; a run with more kinds of error than this has a bigger problem than a list. */
const MAX_GROUPS = 50;

const f0 = (n: number) => esc(formatInt(n));

/** Failed items counted by reason (`{ error: 4, non_retriable: 2 }`): what the rerun's reason filter offers. */
export function countByReason(items: readonly FailedItemView[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of items) out[f.reason] = (out[f.reason] ?? 0) + 1;
  return out;
}

/** `api`: the run's API path (`{base}/v1/runs/{id}`); `page`: its page's (`{base}/runs/{id}`). */
export function failedCard(st: RunStatus, deadLetter: readonly FailedItemView[], api: string, page: string): string {
  const rows = deadLetter
    .slice(0, MAX_FAILED_ROWS)
    .map(
      (f) =>
        `<tr><td class="num" data-label="Item">${f.i}</td><td class="mono" data-label="Key">${esc(f.key)}</td><td class="mono" data-label="Shard">${esc(f.shard)}</td><td class="num" data-label="Attempts">${f.attempts}</td><td data-label="Reason">${esc(f.reason)}</td><td class="wide" data-label="Error"><pre class="error">${esc(f.error)}</pre></td></tr>`,
    )
    .join("\n");
  const more =
    deadLetter.length > MAX_FAILED_ROWS
      ? // The dead-letter API takes its token only as a header, which a link cannot send: the page's own downloads carry every failed item.
        `<p class="muted">Showing the first ${MAX_FAILED_ROWS} of ${formatInt(deadLetter.length)}; all of them, after the output: <a href="${esc(page)}/output.jsonl?failed=true" data-internal download="${esc(st.runId)}-with-failed.jsonl">JSONL</a> · <a href="${esc(page)}/output.csv?failed=true" data-internal download="${esc(st.runId)}-with-failed.csv">CSV</a>, or <code>GET ${esc(api)}/dead-letter</code> with the token as a header.</p>`
      : "";
  const empty =
    st.items.failed > 0
      ? `<p class="muted">${formatInt(st.items.failed)} items failed; they are listed here with their errors when the run ends.</p>`
      : `<p class="muted">No failed items.</p>`;
  if (!deadLetter.length) return `<section class="card" aria-labelledby="failed-h"><h2 id="failed-h">Failed items <span class="muted">(${f0(st.items.failed)})</span></h2>\n${empty}\n</section>`;
  const groups = groupFailures(deadLetter);
  const shown = groups.slice(0, MAX_GROUPS);
  return `<section class="card" aria-labelledby="failed-h"><div class="card-head"><h2 id="failed-h">Failed items <span class="muted">(${f0(deadLetter.length)})</span></h2><span class="muted small">${groups.length === 1 ? "one error" : `${f0(groups.length)} errors`}, grouped by reason and message (numbers, ids and quoted values set aside)</span></div>
<div class="groups" id="failure-groups">
${shown.map((g, k) => groupBlock(g, k)).join("\n")}
</div>
${groups.length > MAX_GROUPS ? `<p class="muted">Showing the ${MAX_GROUPS} largest of ${f0(groups.length)} groups.</p>` : ""}
<details class="all-failed"><summary>Every failed item (${f0(deadLetter.length)})</summary>
<div class="scroll"><table class="stack"><thead><tr><th class="num">Item</th><th>Key</th><th>Shard</th><th class="num">Attempts</th><th>Reason</th><th>Error</th></tr></thead><tbody>${rows}</tbody></table></div>${more}
</details>
</section>`;
}

function groupBlock(g: FailureGroup, k: number): string {
  const others = g.count - g.sampleKeys.length;
  const keys = g.sampleKeys.map((key) => `<span class="mono key">${esc(key)}</span>`).join(" ");
  return `<details class="group" data-group="${k}" data-reason="${esc(g.reason)}" data-count="${g.count}">
<summary><span class="reason reason-${esc(g.reason)}">${esc(g.reason)}</span><code class="signature">${esc(g.shape)}</code><span class="group-count"><strong>${f0(g.count)}</strong> ${g.count === 1 ? "item" : "items"}</span>
<span class="samples">${keys}${others > 0 ? ` <span class="muted">and ${f0(others)} more</span>` : ""}</span></summary>
<div class="group-body">
<div class="muted small">The first item's error:</div>
<pre class="message">${esc(g.example)}</pre>
${g.stack ? `<div class="muted small">The first stack trace:</div><pre class="stack">${esc(g.stack)}</pre>` : `<p class="muted small">No stack trace was recorded (the error was not thrown as an Error, or the item failed outside its code: ${esc(g.reason)}).</p>`}
${g.lastLog ? `<div class="muted small">The last log line it left:</div><pre class="log">${esc(g.lastLog)}</pre>` : ""}
</div>
</details>`;
}
