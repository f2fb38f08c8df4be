/**
 * The schedules the jobs declare: cron, time zone, the next fire times, arguments, the last run
 * each one started, and "Run now". Jobs that do not build are listed with the reason, as
 * `shardrun schedules list` lists them.
 *
 * "Run now" fires the schedule (`POST /v1/schedules/{name}:fire`) for the service's current
 * minute rather than starting a plain run of the job: the run is the schedule's own (its trigger
 * names the schedule, it carries the schedule's arguments and its run settings), and a fire is
 * idempotent per scheduled time, so a second click, or a cron fire of the same minute, starts
 * nothing more.
 */
import { SCHEDULES_SCRIPT } from "./client.js";
import { badge, esc, layout, normalizeBase, relativeTime, timeTag } from "./html.js";

export interface ScheduleView {
  name: string;
  job: string;
  cron: string;
  timeZone: string;
  args: Record<string, unknown>;
  paused: boolean;
  description?: string;
  /** The next fire times (ISO), soonest first; empty when paused. */
  next: string[];
  /** The newest run the schedule started, from the runs index. */
  lastRun?: { runId: string; state: string; createdAt: string };
}

export interface UnavailableScheduleJob {
  job: string;
  reason: string;
}

export interface SchedulesPageOptions {
  /** Path the service is mounted under. @default "" */
  basePath?: string;
  /** The clock for "in 5m". @default new Date() */
  now?: Date;
}

export function renderSchedulesPage(schedules: readonly ScheduleView[], unavailable: readonly UnavailableScheduleJob[], options: SchedulesPageOptions = {}): string {
  const base = normalizeBase(options.basePath);
  const now = options.now ?? new Date();
  const rows = schedules.map((s) => scheduleRow(s, base, now)).join("\n");
  const broken = unavailable.length
    ? `<section class="card" aria-labelledby="unavailable-h"><h2 id="unavailable-h">Jobs that do not load <span class="muted">(${unavailable.length})</span></h2>
<p class="muted small">Their schedules are unknown until they build again; every other schedule fires as usual.</p>
<ul class="unavailable">${unavailable.map((u) => `<li><strong class="mono">${esc(u.job)}</strong><pre class="message">${esc(u.reason)}</pre></li>`).join("")}</ul></section>`
    : "";
  const body = `<div class="hero"><div><h1>Schedules</h1><div class="meta"><span>${schedules.length} ${schedules.length === 1 ? "schedule" : "schedules"}</span><span>times in your time zone; cron in the schedule's</span></div></div></div>
${
  schedules.length
    ? `<div class="card scroll"><table class="schedules stack">
<thead><tr><th>Schedule</th><th>Cron</th><th>Next fires</th><th>Arguments</th><th>Last run</th><th><span class="sr-only">Actions</span></th></tr></thead>
<tbody>
${rows}
</tbody></table></div>`
    : `<div class="card empty-state"><p><strong>No schedules.</strong></p><p>Add <code>schedules: [{ name, cron, timeZone, args }]</code> to a job definition.</p></div>`
}
${broken}`;
  return layout({ title: "Schedules · shardrun", basePath: base, body, script: SCHEDULES_SCRIPT, boot: { base }, current: "schedules" });
}

function scheduleRow(s: ScheduleView, base: string, now: Date): string {
  const next = s.paused
    ? `<span class="badge badge-other">paused</span>`
    : s.next.length
      ? `<ol class="next">${s.next.map((t, k) => `<li>${timeTag(t)}${k === 0 ? ` <span class="muted">${esc(inTime(t, now))}</span>` : ""}</li>`).join("")}</ol>`
      : `<span class="muted">never again</span>`;
  const args = Object.keys(s.args).length ? `<code class="args">${esc(JSON.stringify(s.args))}</code>` : `<span class="muted">none</span>`;
  const last = s.lastRun
    ? `<a class="mono" href="${esc(`${base}/runs/${encodeURIComponent(s.lastRun.runId)}`)}" data-internal>${esc(s.lastRun.runId)}</a><div>${badge(s.lastRun.state)} <span class="muted">${esc(relativeTime(s.lastRun.createdAt, now))}</span></div>`
    : `<span class="muted">none yet</span>`;
  return `<tr data-schedule="${esc(s.name)}">
<td><strong>${esc(s.name)}</strong><div class="muted small">job <span class="mono">${esc(s.job)}</span></div>${s.description ? `<div class="muted small">${esc(s.description)}</div>` : ""}</td>
<td data-label="Cron"><code>${esc(s.cron)}</code><div class="muted small">${esc(s.timeZone)}</div></td>
<td data-label="Next fires">${next}</td>
<td data-label="Arguments">${args}</td>
<td data-label="Last run" data-last-run>${last}</td>
<td class="fire wide"><button type="button" data-action="fire" data-schedule="${esc(s.name)}" data-job="${esc(s.job)}" title="Start the schedule's run for this minute, with its arguments">Run now</button><div class="fire-msg" data-fire-msg role="status"></div></td>
</tr>`;
}

/** "in 5m", for the next fire time. */
function inTime(iso: string, now: Date): string {
  const ms = Date.parse(iso) - now.getTime();
  if (!Number.isFinite(ms)) return "";
  if (ms < 60_000) return "in less than a minute";
  const ago = relativeTime(new Date(now.getTime() - ms).toISOString(), now);
  return `in ${ago.replace(/ ago$/, "")}`;
}
