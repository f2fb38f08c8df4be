/**
 * The runs list: newest first by creation time (what the runs index gives), with filters on job,
 * state and creation time, the way `shardrun runs --job --state --since` filters. The filters are
 * a plain GET form, so a filtered list is a link one can share.
 */
import { LISTED_STATES } from "../core/states.js";
import type { RunSummary } from "../orchestrator/run-list.js";
import { RUNS_SCRIPT } from "./client.js";
import { badge, esc, formatDuration, formatInt, formatTokens, formatUsd, isLive, layout, normalizeBase, progressBar, relativeTime, runDuration, timeTag } from "./html.js";

/** A run in the runs list: what the runs index lists, plus what the caller knows of its progress. */
export type RunSummaryView = RunSummary & {
  /** Items settled so far; without it the list shows the item count only. */
  progress?: { succeeded: number; failed: number; total: number };
  /** Spend recorded so far. */
  usage?: { tokens: number; usd: number };
};

/** The filters of the list, as the page's query gives them (already checked). */
export interface RunsFilters {
  job?: string;
  /** A state word of core/states.ts (`pending` finds runs recorded as planned). */
  state?: string;
  /** As given: a date, a date-time, or a span back from now (`24h`, `7d`). */
  since?: string;
  /** @default 50 */
  limit?: number;
}

/** The spans the "since" menu offers; any other value of the query is kept as given. */
export const SINCE_CHOICES: readonly (readonly [string, string])[] = [
  ["1h", "the last hour"],
  ["24h", "the last 24 hours"],
  ["7d", "the last 7 days"],
  ["30d", "the last 30 days"],
];

export interface RunsPageOptions {
  /**
   * Path the service is mounted under, for links and API calls.
   * @default "" (the root)
   * @example "/shardrun"
   */
  basePath?: string;
  /** The clock for "3m ago" and for durations of runs still going. @default new Date() */
  now?: Date;
  /**
   * Refresh the list every few seconds.
   * @default true when a run in the list is pending or running
   */
  live?: boolean;
  /** The filters the list was made with. @default none */
  filters?: RunsFilters;
  /** Job names to suggest in the job filter. @default [] */
  jobs?: readonly string[];
  /** A filter that was refused, named with what was expected (the page is then a 400). */
  error?: string;
  /** Most runs the list may hold, for the "more" link. @default 200 */
  maxLimit?: number;
}

export function renderRunsPage(runs: readonly RunSummaryView[], options: RunsPageOptions = {}): string {
  const base = normalizeBase(options.basePath);
  const now = options.now ?? new Date();
  const filters = options.filters ?? {};
  const filtered = Boolean(filters.job || filters.state || filters.since);
  const liveCount = runs.filter((r) => isLive(r.state)).length;
  const live = options.live ?? liveCount > 0;
  const limit = filters.limit ?? 50;
  const rows = runs.map((r) => runRow(r, base, now)).join("\n");
  const more = runs.length >= limit && limit < (options.maxLimit ?? 200) ? moreLink(base, filters, Math.min(options.maxLimit ?? 200, limit * 2)) : "";
  const list = options.error
    ? ""
    : runs.length
      ? `<div class="card scroll"><table class="runs stack">
<thead><tr><th>Job</th><th class="hide-sm">Trigger</th><th>State</th><th>Progress</th><th class="num">Spend</th><th class="hide-sm" aria-sort="descending">Created</th><th class="num">Duration</th></tr></thead>
<tbody>
${rows}
</tbody></table></div>${more ? `<p class="muted small">Showing the newest ${formatInt(runs.length)}. ${more}</p>` : ""}`
      : filtered
        ? `<div class="card empty-state"><p><strong>No runs match these filters.</strong></p><p><a href="${esc(base)}/" data-internal>Show every run</a></p></div>`
        : `<div class="card empty-state"><p><strong>No runs yet.</strong></p><p>Start one with <code>shardrun run &lt;job&gt;</code>, or <code>POST ${esc(base)}/v1/jobs/&lt;job&gt;/runs</code>.</p></div>`;
  const body = `<div id="runs" data-live="${live}">
<div class="hero"><div><h1>Runs</h1><div class="meta"><span>${runs.length} ${runs.length === 1 ? "run" : "runs"}${filtered ? " matching" : ""}</span>${liveCount ? `<span>${liveCount} live</span>` : ""}<span>newest first</span></div></div></div>
${filterForm(base, filters, options.jobs ?? [], options.error)}
${list}
</div>`;
  return layout({ title: liveCount ? `(${liveCount} live) Runs · shardrun` : "Runs · shardrun", basePath: base, body, script: RUNS_SCRIPT, current: "runs" });
}

function filterForm(base: string, f: RunsFilters, jobs: readonly string[], error: string | undefined): string {
  const states = LISTED_STATES.map((s) => `<option value="${s}"${f.state === s ? " selected" : ""}>${s}</option>`);
  const since = [...SINCE_CHOICES, ...(f.since && !SINCE_CHOICES.some(([v]) => v === f.since) ? [[f.since, `since ${f.since}`] as const] : [])].map(
    ([v, text]) => `<option value="${esc(v)}"${f.since === v ? " selected" : ""}>${esc(text)}</option>`,
  );
  return `<form class="filters card" id="filters" method="get" action="${esc(base)}/" role="search" aria-label="Filter runs" data-internal>
<label>Job <input name="job" list="job-names" value="${esc(f.job ?? "")}" placeholder="any job" autocomplete="off" spellcheck="false"></label>
<datalist id="job-names">${jobs.map((j) => `<option value="${esc(j)}">`).join("")}</datalist>
<label>State <select name="state"><option value="">any state</option>${states.join("")}</select></label>
<label>Created <select name="since"><option value="">at any time</option>${since.join("")}</select></label>
<button type="submit">Filter</button>${f.job || f.state || f.since ? ` <a href="${esc(base)}/" data-internal>Clear</a>` : ""}
${error ? `<p class="filter-error" role="alert">${esc(error)}</p>` : ""}
</form>`;
}

function moreLink(base: string, f: RunsFilters, limit: number): string {
  const q = new URLSearchParams();
  if (f.job) q.set("job", f.job);
  if (f.state) q.set("state", f.state);
  if (f.since) q.set("since", f.since);
  q.set("limit", String(limit));
  return `<a href="${esc(`${base}/?${q}`)}" data-internal>Show up to ${formatInt(limit)}</a>`;
}

function runRow(r: RunSummaryView, base: string, now: Date): string {
  const href = `${base}/runs/${encodeURIComponent(r.runId)}`;
  const p = r.progress;
  const progress = p
      ? `${progressBar(p.succeeded, p.failed, p.total)}<div class="nums"><span class="ok">${formatInt(p.succeeded)}</span> ok${p.failed ? ` · <span class="fail">${formatInt(p.failed)}</span> failed` : ""} · ${formatInt(p.total)} items</div>`
      : `<div class="nums">${formatInt(r.items)} items</div>`;
  const spend = r.usage ? `${esc(formatUsd(r.usage.usd))}<div class="muted">${esc(formatTokens(r.usage.tokens))} tokens</div>` : `<span class="muted">–</span>`;
  return `<tr data-run="${esc(r.runId)}" data-created="${esc(r.createdAt)}" data-state="${esc(r.state)}">
<td><a class="job" href="${esc(href)}" data-internal>${esc(r.job)}</a><span class="id mono">${esc(r.runId)}</span>${r.reason ? `<div class="muted unreadable">${esc(r.object ?? "")}: ${esc(r.reason)}</div>` : ""}</td>
<td class="hide-sm" data-label="Trigger"><span class="mono">${esc(r.trigger)}</span></td>
<td data-label="State">${badge(r.state)}</td>
<td class="progress-cell wide">${progress}</td>
<td class="num" data-label="Spend">${spend}</td>
<td class="hide-sm" data-label="Created">${timeTag(r.createdAt)}<div class="muted">${esc(relativeTime(r.createdAt, now))}</div></td>
<td class="num" data-label="Duration">${esc(formatDuration(runDuration(r.createdAt, r.finishedAt, now)))}</td>
</tr>`;
}
