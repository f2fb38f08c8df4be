/**
 * Small pieces of the dashboard's HTML: escaping, number and time formats, badges, bars and the
 * chart's geometry. Everything that ends up in a page from a run (job names, args, keys, errors)
 * goes through `esc`; nothing here reads the clock or the store.
 */
import { LISTED_STATES, isLiveState } from "../core/states.js";
import type { HistoryPoint } from "../core/throughput.js";
import { DASHBOARD_CSS } from "./style.js";

export type { HistoryPoint } from "../core/throughput.js";

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for HTML content and for quoted attribute values alike. */
export function esc(value: unknown): string {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

/**
 * JSON to embed in `<script type="application/json">`: `<` is escaped so that no value (an error
 * message holding `</script>`, say) can end the element; U+2028/9 for old parsers' sake.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

/** `/base` without a trailing slash, or "" for the root. */
export function normalizeBase(basePath: string | undefined): string {
  const b = (basePath ?? "").trim().replace(/\/+$/, "");
  return b === "" || b.startsWith("/") ? b : `/${b}`;
}

/** Only http(s) links are rendered as links: a launch url is data read back from the store. */
export function safeUrl(url: string | undefined): string | undefined {
  return url && /^https?:\/\//i.test(url) ? url : undefined;
}

/** A run still going (planning, pending, running): its page polls, and offers Cancel. */
export const isLive = (state: string): boolean => isLiveState(state);

/** A coloured state badge, in the CLI's and the API's words (core/states.ts); unknown states get the neutral colour. */
export function badge(state: string, attrs = ""): string {
  const known = (LISTED_STATES as readonly string[]).includes(state) ? state : "other";
  return `<span class="badge badge-${esc(known)}"${attrs ? ` ${attrs}` : ""}>${esc(state)}</span>`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** Dollars: cents when there are any, else enough digits to see what an item costs. */
export function formatUsd(usd: number): string {
  if (!usd) return "$0";
  if (usd >= 100) return `$${usd.toFixed(0)}`;
  if (usd >= 0.01) return `$${usd.toFixed(2)}`;
  return `$${usd.toPrecision(2)}`;
}

export function formatTokens(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

export function formatInt(n: number): string {
  return n.toLocaleString("en-US");
}

/** UTC on the server; the page script rewrites `<time>` elements into the reader's time zone. */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export function timeTag(iso: string | undefined): string {
  return iso ? `<time datetime="${esc(iso)}">${esc(formatTime(iso))}</time>` : "–";
}

export function relativeTime(iso: string, now: Date): string {
  const ms = now.getTime() - Date.parse(iso);
  if (!Number.isFinite(ms)) return "";
  if (ms < 45_000) return "just now";
  return `${formatDuration(ms).split(" ")[0]} ago`;
}

/** Duration of a run: to its end, or to now while it is not finished. */
export function runDuration(createdAt: string, finishedAt: string | undefined, now: Date): number {
  return (finishedAt ? Date.parse(finishedAt) : now.getTime()) - Date.parse(createdAt);
}

const pct = (n: number, total: number) => (total > 0 ? Math.min(100, (n / total) * 100) : 0);

/** A stacked bar: succeeded in green, failed in red, the rest open. Widths update in the page. */
export function progressBar(succeeded: number, failed: number, total: number, size: "sm" | "lg" = "sm"): string {
  const label = `${succeeded} of ${total} succeeded, ${failed} failed`;
  return (
    `<div class="bar bar-${size}" role="img" aria-label="${esc(label)}" data-bar>` +
    `<span class="bar-ok" style="width:${pct(succeeded, total).toFixed(2)}%"></span>` +
    `<span class="bar-failed" style="width:${pct(failed, total).toFixed(2)}%"></span></div>`
  );
}

/** The chart's viewBox; the SVG stretches to its box and its strokes do not scale. */
export const CHART = { w: 1000, h: 220 } as const;

/**
 * Polyline points for items succeeded and failed over time, scaled to the viewBox (y to the run's
 * item total). The page script computes the same with the same formula while it polls.
 */
export function chartPoints(history: readonly HistoryPoint[], total: number): { ok: string; failed: string; area: string } {
  const pts = history.map((p) => ({ t: Date.parse(p.t), s: p.succeeded, f: p.failed })).filter((p) => Number.isFinite(p.t));
  if (!pts.length) return { ok: "", failed: "", area: "" };
  const t0 = pts.reduce((m, p) => Math.min(m, p.t), Infinity);
  const span = Math.max(1, pts.reduce((m, p) => Math.max(m, p.t), -Infinity) - t0);
  const ymax = pts.reduce((m, p) => Math.max(m, p.s + p.f), Math.max(1, total));
  const x = (t: number) => ((t - t0) / span) * CHART.w;
  const y = (v: number) => CHART.h - (v / ymax) * CHART.h;
  const line = (v: (p: (typeof pts)[number]) => number) => pts.map((p) => `${x(p.t).toFixed(1)},${y(v(p)).toFixed(1)}`).join(" ");
  const ok = line((p) => p.s);
  const first = pts[0]!;
  const last = pts[pts.length - 1]!;
  return { ok, failed: line((p) => p.f), area: `${x(first.t).toFixed(1)},${CHART.h} ${ok} ${x(last.t).toFixed(1)},${CHART.h}` };
}

/**
 * The logo as the tab's icon, inline: the service serves no assets, and without an icon of its
 * own every page would make the browser ask for /favicon.ico and log the 404.
 */
const FAVICON = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 2 2"><rect width="2" height="2" rx=".4" fill="#e6eaef"/><path d="M1 0h1v1H1zM0 1h1v1H0z" fill="#1f883d"/><path d="M1 1h1v1H1z" fill="#0969da"/></svg>')}`;

export interface LayoutOptions {
  title: string;
  basePath: string;
  body: string;
  /** Page script; runs after the body. */
  script: string;
  /** JSON handed to the script through `<script type="application/json" id="boot">`. */
  boot?: unknown;
  /** The page the top bar marks as current. */
  current?: "runs" | "schedules";
}

export function layout(o: LayoutOptions): string {
  const nav = (key: NonNullable<LayoutOptions["current"]>, href: string, text: string) =>
    `<a href="${esc(o.basePath)}${href}" data-internal${o.current === key ? ' aria-current="page"' : ""}>${text}</a>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>${esc(o.title)}</title>
<link rel="icon" href="${FAVICON}">
<style>${DASHBOARD_CSS}</style>
</head>
<body>
<header class="topbar"><a class="brand" href="${esc(o.basePath)}/" data-internal><span class="logo" aria-hidden="true"></span>shardrun</a><nav class="nav" aria-label="Pages">${nav("runs", "/", "Runs")}${nav("schedules", "/schedules", "Schedules")}</nav><span class="conn" id="conn" role="status" aria-live="polite"></span></header>
<main id="main">
${o.body}
</main>
${o.boot !== undefined ? `<script type="application/json" id="boot">${scriptJson(o.boot)}</script>\n` : ""}<script>${o.script}</script>
</body>
</html>
`;
}
