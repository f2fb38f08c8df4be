/**
 * One run's page: its state, the controls that finish it (finish.ts), counters, the shard grid,
 * items over time, launches, failures grouped by error (failures.ts) and budgets. Live runs
 * update in place from the status API (client-run.ts).
 */
import type { Budget } from "../core/budget.js";
import type { FailedItemView, LaunchStatus, RunStatus, ShardStatus } from "../core/status.js";
import { itemsPerMinute } from "../core/throughput.js";
import { DEFAULT_RERUN_REASONS } from "../orchestrator/failed-choice.js";
import type { CodeChange } from "../orchestrator/job-version.js";
import { RUN_SCRIPT } from "./client-run.js";
import { countByReason, failedCard } from "./failures.js";
import { finishCard } from "./finish.js";
import {
  CHART,
  badge,
  chartPoints,
  esc,
  formatDuration,
  formatInt,
  formatTokens,
  formatUsd,
  isLive,
  layout,
  normalizeBase,
  progressBar,
  runDuration,
  safeUrl,
  timeTag,
  type HistoryPoint,
} from "./html.js";

export interface RunPageOptions {
  /** Path the service is mounted under. @default "" */
  basePath?: string;
  /**
   * Items succeeded and failed over time, oldest first, for the chart. Without it the chart
   * starts from the run's start and the current numbers, and the page adds a point per poll.
   */
  history?: HistoryPoint[];
  /**
   * Where `history` comes from, for the note under the chart.
   * @default "given" (sampled while the run went on)
   */
  historySource?: "given" | "parts";
  /** The clock for the duration of a run still going. @default new Date() */
  now?: Date;
  /** Whether the job's code changed since the run was planned: offers the rerun's upgrade. */
  code?: CodeChange;
}

/** Above this many shards the grid uses smaller cells. */
const DENSE_SHARDS = 300;

export type CellState = "done" | "partial" | "redone" | "running" | "pending";

/**
 * What a shard cell shows. Done with failures stands out; but once a later round has re-run
 * those failures ("redone": the caller's dead letter no longer names the shard), the cell turns
 * back to green, so that a run fixed by a rerun of failed items does not look broken.
 */
export function cellState(s: ShardStatus, redone: ReadonlySet<string> = new Set()): CellState {
  if (s.state === "done") return s.failed === 0 ? "done" : redone.has(s.id) ? "redone" : "partial";
  return s.state;
}

const CELL_LABELS: Record<CellState, string> = {
  done: "done",
  partial: "done with failures",
  redone: "failures re-run",
  running: "running",
  pending: "pending",
};

function cellTitle(s: ShardStatus, state: CellState): string {
  return `${s.id} · ${CELL_LABELS[state]} · ${s.done} ok${s.failed ? `, ${s.failed} failed` : ""} of ${s.items}${s.owner ? ` · ${s.owner}` : ""}`;
}

/**
 * Shards whose failed items a later round took over: a rerun of failed items re-plans every item
 * failed at that moment, and the dead letter lets the newest round speak for an item.
 */
export function redoneShards(status: RunStatus, deadLetter: readonly FailedItemView[]): Set<string> {
  // reduce, not Math.max(...): a run may have far more shards than a call has arguments.
  const latest = status.shardList.reduce((m, s) => Math.max(m, s.round), 0);
  const stillFailed = new Set(deadLetter.map((f) => f.shard));
  return new Set(status.shardList.filter((s) => s.state === "done" && s.failed > 0 && s.round < latest && !stillFailed.has(s.id)).map((s) => s.id));
}

/** The numbers the page shows in `data-f` spans; the page script computes the same keys. */
export function runFields(st: RunStatus, now: Date): Record<string, string> {
  const settled = st.items.succeeded + st.items.failed;
  return {
    "items.succeeded": formatInt(st.items.succeeded),
    "items.failed": formatInt(st.items.failed),
    "items.pending": formatInt(st.items.pending),
    "items.total": formatInt(st.items.total),
    pct: `${st.items.total ? Math.floor((settled / st.items.total) * 100) : 100}%`,
    "shards.done": formatInt(st.shards.done),
    "shards.total": formatInt(st.shards.total),
    "shards.running": formatInt(st.shards.running),
    "shards.pending": formatInt(Math.max(0, st.shards.total - st.shards.done - st.shards.running)),
    "usage.usd": formatUsd(st.usage.usd),
    "usage.tokens": formatTokens(st.usage.tokens),
    executions: formatInt(st.executions),
    redone: formatInt(Math.max(0, st.executions - settled)),
    duration: formatDuration(runDuration(st.createdAt, st.finishedAt, now)),
    launches: `${formatInt(st.launches.length)} ${st.launches.length === 1 ? "launch" : "launches"}`,
  };
}

/**
 * One run's page. `deadLetter` is the run's failed items as they stand now, newest round winning
 * (what `GET /v1/runs/{id}/dead-letter` lists); it also tells which shards' failures were re-run.
 */
export function renderRunPage(status: RunStatus, deadLetter: readonly FailedItemView[], options: RunPageOptions = {}): string {
  const base = normalizeBase(options.basePath);
  const now = options.now ?? new Date();
  const live = isLive(status.state);
  const redone = redoneShards(status, deadLetter);
  const fields = runFields(status, now);
  const f = (key: string) => `<span data-f="${esc(key)}">${esc(fields[key] ?? "")}</span>`;
  const api = `${base}/v1/runs/${encodeURIComponent(status.runId)}`;
  const history = options.history?.length
    ? options.history
    : [
        { t: status.createdAt, succeeded: 0, failed: 0 },
        { t: status.finishedAt ?? now.toISOString(), succeeded: status.items.succeeded, failed: status.items.failed },
      ];
  const failedByReason = countByReason(deadLetter);
  const source = options.history?.length ? (options.historySource ?? "given") : live ? "live" : "finished";

  const body = `<div class="hero">
<div class="hero-main">
<div class="crumb"><a href="${esc(base)}/" data-internal>← All runs</a></div>
<h1>${esc(status.job)} ${badge(status.state, 'id="run-state"')}</h1>
<div class="meta"><span class="mono run-id">${esc(status.runId)}</span><span>started ${timeTag(status.createdAt)}</span><span>${live ? "running for" : "took"} ${f("duration")}</span><span>${f("launches")}</span></div>
${status.reason ? `<div class="reason">${esc(status.reason)}</div>` : ""}
</div>
${actions(status, base)}
</div>
${finishCard(status, { failedByReason, ...(options.code ? { code: options.code } : {}) })}
<div class="stats">
<div class="stat"><div class="label">Items</div><div class="value">${f("pct")} <small>settled</small></div>${progressBar(status.items.succeeded, status.items.failed, status.items.total, "lg")}<div class="sub"><span class="ok">${f("items.succeeded")} succeeded</span> · <span class="fail">${f("items.failed")} failed</span> · ${f("items.pending")} pending of ${f("items.total")}</div></div>
<div class="stat"><div class="label">Shards</div><div class="value">${f("shards.done")} <small>/ ${f("shards.total")} done</small></div><div class="sub">${f("shards.running")} running · ${f("shards.pending")} pending</div></div>
<div class="stat"><div class="label">Spend</div><div class="value">${f("usage.usd")}</div><div class="sub">${f("usage.tokens")} tokens${status.budgets.run ? ` · run budget ${esc(describeLimits(status.budgets.run))}` : ""}</div></div>
<div class="stat"><div class="label">Item executions</div><div class="value">${f("executions")}</div><div class="sub">${f("redone")} beyond one per settled item</div></div>
</div>
${shardGrid(status, redone)}
<div class="cols">
${chartCard(history, status.items.total, source)}
${launchesCard(status.launches)}
</div>
${failedCard(status, deadLetter, api, `${base}/runs/${encodeURIComponent(status.runId)}`)}
${budgetsCard(status, now)}`;

  const boot = {
    runId: status.runId,
    api,
    live,
    total: status.items.total,
    createdAt: status.createdAt,
    history,
    chart: CHART,
    redone: [...redone],
    failedByReason,
    failedTotal: deadLetter.length,
    defaultReasons: DEFAULT_RERUN_REASONS,
  };
  const pctTitle = live ? `(${fields.pct}) ` : "";
  return layout({ title: `${pctTitle}${status.job} · ${status.runId} · shardrun`, basePath: base, body, script: RUN_SCRIPT, boot, current: "runs" });
}

/**
 * The hero's actions: Cancel while the run is live, and its output once an item settled: JSONL
 * or CSV (`shardrun output --format`), and with the failed items (`--failed`) once some failed.
 * The controls that rerun a stopped run are in their own card (finish.ts).
 */
function actions(st: RunStatus, base: string): string {
  const live = isLive(st.state);
  const buttons = [
    st.items.succeeded > 0 ? downloads(st.runId, base, false) : "",
    st.items.failed > 0 ? downloads(st.runId, base, true) : "",
    live ? `<button type="button" class="danger" data-action="cancel" title="Stop the run's tasks; finished items stay done">Cancel</button>` : "",
  ].filter(Boolean);
  return `<div class="actions">${buttons.join("")}${live ? `<div class="msg" id="action-msg" role="alert"></div>` : ""}</div>`;
}

const DOWNLOAD_TITLES = {
  jsonl: ["one JSON line per item", "shardrun output"],
  csv: ["a row per item, a column per output field", "shardrun output --format csv"],
} as const;

/** One set of download links: the merged output, or (`failed`) the output and the dead letter. */
function downloads(runId: string, base: string, failed: boolean): string {
  const label = failed ? "With failed items" : "Output";
  const links = (["jsonl", "csv"] as const).map((format) => {
    const href = `${base}/runs/${encodeURIComponent(runId)}/output.${format}${failed ? "?failed=true" : ""}`;
    const [what, command] = DOWNLOAD_TITLES[format];
    const title = failed ? `The output, then the failed items with their errors: ${what} (${command} --failed)` : `The merged output: ${what} (${command})`;
    return `<a class="button" href="${esc(href)}" data-internal data-download="${format}" download="${esc(`${runId}${failed ? "-with-failed" : ""}.${format}`)}" title="${esc(title)}">${format.toUpperCase()}</a>`;
  });
  return `<div class="downloads" role="group" aria-label="${esc(`Download: ${label.toLowerCase()}`)}" data-downloads="${failed ? "failed" : "output"}"><span class="label">${label}</span>${links.join("")}</div>`;
}

function shardGrid(st: RunStatus, redone: ReadonlySet<string>): string {
  const rounds = new Map<number, ShardStatus[]>();
  for (const s of st.shardList) {
    const list = rounds.get(s.round);
    if (list) list.push(s);
    else rounds.set(s.round, [s]);
  }
  const dense = st.shardList.length > DENSE_SHARDS ? " dense" : "";
  const groups = [...rounds.entries()]
    .sort(([a], [b]) => a - b)
    .map(([round, shards]) => {
      const cells = shards
        .map((s) => {
          const state = cellState(s, redone);
          const fill = state === "running" && s.items ? ` style="--p:${Math.round(((s.done + s.failed) / s.items) * 100)}%"` : "";
          return `<div class="cell" data-shard="${esc(s.id)}" data-state="${state}"${fill} title="${esc(cellTitle(s, state))}"></div>`;
        })
        .join("");
      const label = round === 0 ? "Planned shards" : `Round ${round} · failed items re-planned`;
      return `<div class="round" data-round="${round}"><h3>${label} · <span data-count>${shards.length}</span></h3><div class="grid${dense}">${cells}</div></div>`;
    })
    .join("\n");
  const legend = (["done", "partial", ...(redone.size ? (["redone"] as const) : []), "running", "pending"] as const)
    .map((s) => `<span><i class="cell" data-state="${s}"></i>${CELL_LABELS[s]}</span>`)
    .join("");
  return `<section class="card" aria-labelledby="shards-h"><div class="card-head"><h2 id="shards-h">Shards</h2><div class="legend">${legend}</div></div>
<div id="rounds">${groups || `<p class="muted">No shards planned.</p>`}</div></section>`;
}

function chartCard(history: readonly HistoryPoint[], total: number, source: keyof typeof CHART_NOTES): string {
  const p = chartPoints(history, total);
  const ymax = history.reduce((m, h) => Math.max(m, h.succeeded + h.failed), Math.max(1, total));
  const first = history[0]?.t;
  const last = history[history.length - 1]?.t;
  return `<section class="card" aria-labelledby="chart-h"><div class="card-head"><h2 id="chart-h">Items over time</h2><div class="legend"><span><i style="background:var(--ok)"></i>succeeded</span><span><i style="background:var(--fail)"></i>failed</span></div></div>
<div class="chart">
<span class="y top" id="chart-ymax">${esc(formatInt(ymax))}</span><span class="y mid" id="chart-ymid">${esc(formatInt(Math.round(ymax / 2)))}</span><span class="y bottom">0</span>
<svg viewBox="0 0 ${CHART.w} ${CHART.h}" preserveAspectRatio="none" role="img" aria-label="Items succeeded and failed over time">
<polygon id="chart-area" points="${p.area}" fill="rgba(31,136,61,.12)"></polygon>
<polyline id="chart-ok" points="${p.ok}" fill="none" stroke="#1f883d" stroke-width="2.5" stroke-linejoin="round" vector-effect="non-scaling-stroke"></polyline>
<polyline id="chart-failed" points="${p.failed}" fill="none" stroke="#cf222e" stroke-width="2" stroke-linejoin="round" vector-effect="non-scaling-stroke"></polyline>
</svg>
<div class="x"><span id="chart-x0">${timeTag(first)}</span><span id="chart-x1">${timeTag(last)}</span></div>
</div>
<p class="muted small chart-note">${CHART_NOTES[source]}${rate(history)}</p>
</section>`;
}

const CHART_NOTES = {
  given: "Sampled while the run went on.",
  parts: "A point per output part and checkpoint, at the time it was written; while the run is live a point is added every second.",
  live: "From the run's start to now; a point is added every second while this page is open.",
  finished: "From the run's start to its end.",
} as const;

function rate(history: readonly HistoryPoint[]): string {
  const perMinute = itemsPerMinute(history);
  if (!perMinute) return "";
  return ` About ${esc(perMinute >= 10 ? formatInt(Math.round(perMinute)) : perMinute.toPrecision(2))} items a minute.`;
}

function launchesCard(launches: readonly LaunchStatus[]): string {
  return `<section class="card scroll" aria-labelledby="launches-h"><h2 id="launches-h">Launches</h2>
<table><thead><tr><th>#</th><th>Execution</th><th>Tasks</th><th>State</th></tr></thead>
<tbody id="launches-body">${launches.length ? launches.map(launchRow).join("") : `<tr><td colspan="4" class="muted">No launches yet.</td></tr>`}</tbody></table></section>`;
}

function launchRow(l: LaunchStatus): string {
  const url = safeUrl(l.url);
  const name = l.execution ? (url ? `<a href="${esc(url)}" target="_blank" rel="noopener noreferrer">${esc(l.execution)}</a>` : esc(l.execution)) : `<span class="muted">starting…</span>`;
  const tasks = l.tasks ? ` <span class="muted">· ${l.tasks.running} running, ${l.tasks.succeeded} ok${l.tasks.failed ? `, ${l.tasks.failed} failed` : ""}</span>` : "";
  return `<tr data-launch="${l.n}"><td>${l.n}</td><td class="mono">${name}</td><td>${l.taskCount}${tasks}</td><td>${badge(l.state)}</td></tr>`;
}

const f0 = (n: number) => esc(formatInt(n));

function describeLimits(b: Budget): string {
  const parts = [
    b.tokens !== undefined ? `${formatTokens(b.tokens)} tokens` : "",
    b.usd !== undefined ? formatUsd(b.usd) : "",
    b.ms !== undefined ? formatDuration(b.ms) : "",
  ].filter(Boolean);
  return parts.join(" · ") || "none";
}

function budgetsCard(st: RunStatus, now: Date): string {
  const scopes = [
    ["Run", st.budgets.run, "the whole run"],
    ["Shard", st.budgets.shard, "each shard"],
    ["Item", st.budgets.item, "each item"],
  ] as const;
  const set = scopes.filter(([, b]) => b);
  const run = st.budgets.run;
  const used = run
    ? Math.max(run.tokens ? st.usage.tokens / run.tokens : 0, run.usd ? st.usage.usd / run.usd : 0, run.ms ? runDuration(st.createdAt, st.finishedAt, now) / run.ms : 0)
    : 0;
  const meter = run
    ? `<div class="bar bar-lg" role="img" aria-label="${Math.round(used * 100)}% of the run budget used"><span class="bar-ok" style="width:${Math.min(100, used * 100).toFixed(1)}%;background:${used >= 1 ? "var(--fail)" : "var(--purple)"}"></span></div><div class="muted" style="font-size:12.5px;margin-top:4px">${Math.round(used * 100)}% used</div>`
    : "";
  return `<section class="card" aria-labelledby="budgets-h"><h2 id="budgets-h">Spend and budgets</h2>
<p style="margin:0 0 10px">Spent <strong>${f0(st.usage.tokens)}</strong> tokens and <strong>${esc(formatUsd(st.usage.usd))}</strong> over ${f0(st.executions)} item executions.</p>
${
  set.length
    ? `<div class="budgets">${set.map(([label, b, what]) => `<div class="budget"><div class="label muted">${label}</div><div><strong>${esc(describeLimits(b!))}</strong> <span class="muted">for ${what}</span></div>${label === "Run" ? meter : ""}</div>`).join("")}</div>`
    : `<p class="muted" style="margin:0">No budgets set: the run spends what its items spend.</p>`
}
</section>`;
}
