/**
 * The pages a browser gets where there is no run page to show (yet, or at all): a run the
 * service is still planning (it refreshes itself until the plan commits), a run whose plan
 * failed or was cancelled, and the HTML answer to an unknown page or run or to a refused request,
 * each with its way back to the runs list. API clients never see these: they get the JSON error.
 */
import type { RunStatus } from "../core/status.js";
import { NOTICE_SCRIPT, PLANNING_SCRIPT } from "./client.js";
import { badge, esc, formatInt, layout, normalizeBase, timeTag } from "./html.js";

export interface PlanningPageOptions {
  /** Path the service is mounted under. @default "" */
  basePath?: string;
}

/**
 * A run announced as `planning` (the API plans large runs in the background), or one cancelled
 * then. While it plans, the page polls the run's status and loads again once the plan has
 * committed (the run page then) or failed (why, then).
 */
export function renderPlanningPage(st: Pick<RunStatus, "runId" | "job" | "state" | "createdAt" | "items" | "reason">, o: PlanningPageOptions = {}): string {
  const base = normalizeBase(o.basePath);
  const api = `${base}/v1/runs/${encodeURIComponent(st.runId)}`;
  const planning = st.state === "planning";
  const read = ` <span data-f="items-read">${st.items.total > 0 ? `${esc(formatInt(st.items.total))} items read so far.` : ""}</span>`;
  const card = planning
    ? `<section class="card notice" aria-labelledby="planning-h"><h2 id="planning-h">Planning</h2>
<p>The service is planning this run: it reads the job's items, checks each against the job's schema and the service's limits, and writes the run's shards.${read}</p>
<p class="muted">Nothing is launched before the plan commits. This page follows the plan and becomes the run's page once it does; a plan that fails says why here.</p>
<div class="actions"><button type="button" class="danger" data-action="cancel" title="Stop planning; nothing of the run is kept">Cancel</button><div class="msg" id="action-msg" role="alert"></div></div></section>`
    : `<section class="card notice" aria-labelledby="planning-h"><h2 id="planning-h">Cancelled while it was planned</h2>
<p>${esc(st.reason ?? "This run was cancelled before its plan committed")}: nothing of it was launched, and the planner removes what it wrote.</p></section>`;
  const body = `<div class="hero"><div class="hero-main">
<div class="crumb"><a href="${esc(base)}/" data-internal>← All runs</a></div>
<h1>${esc(st.job || "run")} ${badge(st.state, 'id="run-state"')}</h1>
<div class="meta"><span class="mono run-id">${esc(st.runId)}</span><span>started ${timeTag(st.createdAt)}</span></div>
</div></div>
${card}`;
  return layout({ title: `${planning ? "(planning) " : ""}${st.job} · ${st.runId} · shardrun`, basePath: base, body, script: planning ? PLANNING_SCRIPT : NOTICE_SCRIPT, boot: { api, live: planning }, current: "runs" });
}

export interface NoticePageOptions {
  /** Path the service is mounted under. @default "" */
  basePath?: string;
  /** The HTTP status the page is answered with; it picks the heading. */
  status: number;
  /** What went wrong, in the service's words (the API error's message). */
  message: string;
  /** The heading, when the status's own is not the right one. */
  heading?: string;
}

const HEADINGS: Record<number, string> = {
  400: "That address is not one the dashboard can read",
  404: "Not found",
  409: "The run changed while the page was made",
  500: "Something went wrong",
  501: "Not part of this build",
};

/** The answer to a browser for an unknown page or run, or any other refused request: what went wrong, and the way back. */
export function renderNoticePage(o: NoticePageOptions): string {
  const base = normalizeBase(o.basePath);
  const heading = o.heading ?? HEADINGS[o.status] ?? (o.status >= 500 ? HEADINGS[500]! : "The service refused that request");
  const body = `<section class="card notice" aria-labelledby="notice-h" data-status="${o.status}">
<h1 id="notice-h">${esc(heading)}</h1>
<p class="notice-message">${esc(o.message)}</p>
<p><a href="${esc(base)}/" data-internal>← Back to the runs list</a> <span class="muted">·</span> <a href="${esc(base)}/schedules" data-internal>Schedules</a></p>
</section>`;
  return layout({ title: `${heading} · shardrun`, basePath: base, body, script: NOTICE_SCRIPT });
}
