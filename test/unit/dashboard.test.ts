/** The dashboard's pages as HTML: escaping, the shard grid, which buttons show, links and the page script. */
import { describe, expect, it } from "vitest";
import type { FailedItemView, RunStatus, ShardStatus } from "../../src/core/status.js";
import { MAX_FAILED_ROWS, renderRunPage, renderRunsPage, runFields, type RunSummaryView } from "../../src/dashboard/pages.js";
import { chartPoints, esc, formatDuration, formatUsd, normalizeBase, scriptJson } from "../../src/dashboard/html.js";

const RUN_ID = "20261122-020000-demo-ab12";
const NOW = new Date("2026-11-22T02:05:00.000Z");
const XSS = `<script>alert("x")</script>`;

function shard(n: number, over: Partial<ShardStatus> = {}): ShardStatus {
  return { id: `s${String(n).padStart(6, "0")}`, round: 0, state: "pending", items: 10, done: 0, failed: 0, epoch: 0, ...over };
}

function status(over: Partial<RunStatus> = {}): RunStatus {
  const shardList = over.shardList ?? [
    shard(0, { state: "done", done: 10, epoch: 1 }),
    shard(1, { state: "done", done: 8, failed: 2, epoch: 1 }),
    shard(2, { state: "running", done: 4, epoch: 1, owner: "exec-1/0#1" }),
    shard(3),
  ];
  const succeeded = shardList.reduce((n, s) => n + s.done, 0);
  const failed = shardList.reduce((n, s) => n + s.failed, 0);
  return {
    runId: RUN_ID,
    job: "demo",
    state: "running",
    createdAt: "2026-11-22T02:00:00.000Z",
    items: { total: 40, succeeded, failed, pending: 40 - succeeded - failed },
    shards: { total: shardList.length, done: shardList.filter((s) => s.state === "done").length, running: shardList.filter((s) => s.state === "running").length },
    launches: [{ n: 0, execution: "shardrun-demo-x7k2p", taskCount: 2, state: "running", tasks: { running: 1, succeeded: 1, failed: 0 } }],
    executions: succeeded + failed + 3,
    usage: { tokens: 12_345, usd: 0.0421 },
    budgets: {},
    shardList,
    ...over,
  };
}

const finished = (over: Partial<RunStatus> = {}) =>
  status({
    state: "partial",
    finishedAt: "2026-11-22T02:03:30.000Z",
    shardList: [shard(0, { state: "done", done: 10 }), shard(1, { state: "done", done: 7, failed: 3 })],
    launches: [{ n: 0, execution: "shardrun-demo-x7k2p", taskCount: 2, state: "succeeded" }],
    ...over,
  });

const failedItem = (over: Partial<FailedItemView> = {}): FailedItemView => ({ i: 13, key: "item-13", shard: "s000001", error: "boom", attempts: 2, reason: "error", ...over });

const count = (html: string, re: RegExp) => html.match(new RegExp(re.source, "g"))?.length ?? 0;

/** The page's inline scripts, to check that they at least parse. */
function inlineScripts(html: string): string[] {
  return [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
}

describe("escaping", () => {
  it("escapes the five HTML metacharacters", () => {
    expect(esc(`<a href="x" title='y'>&</a>`)).toBe("&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
  });

  it("keeps a </script> in embedded JSON from ending the element", () => {
    const json = scriptJson({ error: XSS });
    expect(json).not.toContain("</script");
    expect(JSON.parse(json)).toEqual({ error: XSS });
  });

  it("escapes errors, keys, reasons and the job name on the run page", () => {
    const html = renderRunPage(finished({ job: `job${XSS}`, reason: XSS }), [failedItem({ error: XSS, key: `k${XSS}`, reason: XSS })], { now: NOW });
    expect(html).not.toContain(XSS);
    expect(html).not.toMatch(/<script>alert/);
    expect(html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    // One inline script and one JSON block: nothing from the data opened another.
    expect(count(html, /<script\b/)).toBe(2);
  });

  it("escapes job names and triggers in the runs list", () => {
    const html = renderRunsPage([{ runId: RUN_ID, job: XSS, state: "running", createdAt: "2026-11-22T02:00:00.000Z", items: 4, trigger: `api"${XSS}` }], { now: NOW });
    expect(html).not.toContain(XSS);
    expect(count(html, /<script\b/)).toBe(1);
  });

  it("links executions only to http(s) URLs", () => {
    const html = renderRunPage(finished({ launches: [{ n: 0, execution: "ex-1", taskCount: 1, state: "failed", url: "javascript:alert(1)" }] }), [], { now: NOW });
    expect(html).not.toContain("javascript:");
    expect(html).toContain("ex-1");
  });
});

describe("the run page", () => {
  it("has one grid cell per shard, with its id and state", () => {
    const html = renderRunPage(status(), [], { now: NOW });
    expect(count(html, /<div class="cell" data-shard="/)).toBe(4);
    expect(html).toMatch(/data-shard="s000000" data-state="done"/);
    expect(html).toMatch(/data-shard="s000001" data-state="partial"/);
    expect(html).toMatch(/data-shard="s000002" data-state="running" style="--p:40%"/);
    expect(html).toMatch(/data-shard="s000003" data-state="pending"/);
    expect(html).toContain('title="s000001 · done with failures · 8 ok, 2 failed of 10"');
    expect(html).toContain("exec-1/0#1");
  });

  it("groups the shards of a rerun of failed items under their round", () => {
    const html = renderRunPage(finished({ shardList: [shard(0, { state: "done", done: 9, failed: 1 }), shard(1, { round: 1, items: 1 })] }), [], { now: NOW });
    expect(html).toMatch(/<div class="round" data-round="0">[\s\S]*data-shard="s000000"[\s\S]*<div class="round" data-round="1">[\s\S]*data-shard="s000001"/);
    expect(html).toContain("Round 1 · failed items re-planned");
  });

  it("turns a shard green again once a later round re-ran its failures", () => {
    const shards = [shard(0, { state: "done", done: 8, failed: 2 }), shard(1, { state: "done", done: 9, failed: 1 }), shard(2, { round: 1, items: 3, state: "done", done: 2, failed: 1 })];
    // Item 25 of shard 1 failed again in round 1: the dead letter names round 1's shard, not shard 1.
    const html = renderRunPage(finished({ shardList: shards }), [failedItem({ i: 25, shard: "s000002" })], { now: NOW });
    expect(html).toMatch(/data-shard="s000000" data-state="redone"/);
    expect(html).toMatch(/data-shard="s000001" data-state="redone"/);
    expect(html).toMatch(/data-shard="s000002" data-state="partial"/);
    expect(html).toContain("failures re-run");
    expect(html).toContain('"redone":["s000000","s000001"]');
  });

  it("keeps a shard red while the dead letter still names it, or when no later round exists", () => {
    const shards = [shard(0, { state: "done", done: 8, failed: 2 }), shard(1, { round: 1, items: 2 })];
    expect(renderRunPage(finished({ shardList: shards }), [failedItem({ shard: "s000000" })], { now: NOW })).toMatch(/data-shard="s000000" data-state="partial"/);
    expect(renderRunPage(finished(), [], { now: NOW })).toMatch(/data-shard="s000001" data-state="partial"/);
  });

  it("offers Cancel only while the run is live, and no rerun then", () => {
    const live = renderRunPage(status(), [], { now: NOW });
    expect(live).toContain('data-action="cancel"');
    expect(live).not.toContain('data-action="rerun"');
    expect(live).not.toContain('data-action="rerun-failed"');
    expect(live).toContain('"live":true');
  });

  it("offers Rerun failed items only when items failed", () => {
    const partial = renderRunPage(finished(), [failedItem()], { now: NOW });
    expect(partial).toContain('data-action="rerun-failed"');
    expect(partial).not.toContain('data-action="cancel"');
    // Every shard is done: a plain rerun would have nothing to launch.
    expect(partial).not.toContain('data-action="rerun"');

    const clean = renderRunPage(finished({ state: "succeeded", shardList: [shard(0, { state: "done", done: 10 })] }), [], { now: NOW });
    expect(clean).not.toMatch(/data-action=/);
  });

  it("offers Rerun when shards are unfinished and the run has stopped", () => {
    const html = renderRunPage(status({ state: "cancelled", finishedAt: "2026-11-22T02:01:00.000Z", launches: [] }), [], { now: NOW });
    expect(html).toContain('data-action="rerun"');
    expect(html).toContain('data-action="rerun-failed"');
    expect(html).not.toContain('data-action="cancel"');
    expect(html).toContain('"live":false');
  });

  it("links launches to their executions", () => {
    const url = "https://console.cloud.google.com/run/jobs/executions/details/europe-west1/shardrun-demo-x7k2p?project=p";
    const html = renderRunPage(finished({ launches: [{ n: 0, execution: "shardrun-demo-x7k2p", taskCount: 4, state: "succeeded", url }] }), [], { now: NOW });
    expect(html).toContain(`<a href="${esc(url)}" target="_blank" rel="noopener noreferrer">shardrun-demo-x7k2p</a>`);
  });

  it("lists failed items with their errors, up to a limit with a link to the rest", () => {
    const items = Array.from({ length: MAX_FAILED_ROWS + 3 }, (_, i) => failedItem({ i, key: `item-${i}`, error: `error ${i}` }));
    const html = renderRunPage(finished(), items, { now: NOW });
    expect(count(html, /<pre class="error">/)).toBe(MAX_FAILED_ROWS);
    expect(html).toContain("error 0");
    expect(html).not.toContain(`error ${MAX_FAILED_ROWS}<`);
    // The rest through the page's downloads: a link cannot send the API's Authorization header.
    expect(html).toContain(`href="/runs/${RUN_ID}/output.jsonl?failed=true" data-internal download="${RUN_ID}-with-failed.jsonl"`);
    expect(html).toContain(`href="/runs/${RUN_ID}/output.csv?failed=true" data-internal download="${RUN_ID}-with-failed.csv"`);
    expect(html).not.toContain(`href="/v1/runs/${RUN_ID}/dead-letter"`);
  });

  it("says failed items come at the end while the dead letter is still empty", () => {
    const html = renderRunPage(status(), [], { now: NOW });
    expect(html).toContain("2 items failed; they are listed here with their errors when the run ends.");
  });

  it("puts the base path on links and on the API it polls", () => {
    const html = renderRunPage(status(), [], { basePath: "/ops/shardrun/", now: NOW });
    expect(html).toContain('href="/ops/shardrun/"');
    expect(html).toContain(`"api":"/ops/shardrun/v1/runs/${RUN_ID}"`);
  });

  it("shows spend, budgets and counters", () => {
    const html = renderRunPage(status({ budgets: { run: { usd: 5, tokens: 1_000_000 }, item: { tokens: 2000 } } }), [], { now: NOW });
    expect(html).toContain('<span data-f="usage.usd">$0.04</span>');
    expect(html).toContain('<span data-f="usage.tokens">12.3k</span>');
    expect(html).toContain("1.0M tokens · $5.00");
    expect(html).toContain('<span data-f="duration">5m 00s</span>');
    expect(html).toContain('<span data-f="pct">60%</span>');
  });

  it("draws the chart from the history it is given", () => {
    const history = [
      { t: "2026-11-22T02:00:00.000Z", succeeded: 0, failed: 0 },
      { t: "2026-11-22T02:01:00.000Z", succeeded: 20, failed: 0 },
      { t: "2026-11-22T02:02:00.000Z", succeeded: 40, failed: 0 },
    ];
    const html = renderRunPage(status(), [], { history, now: NOW });
    expect(html).toContain('<polyline id="chart-ok" points="0.0,220.0 500.0,110.0 1000.0,0.0"');
    expect(html).toContain("Sampled while the run went on.");
  });

  it("starts the chart from the run's start when there is no history", () => {
    const html = renderRunPage(status(), [], { now: NOW });
    const p = chartPoints([{ t: "2026-11-22T02:00:00.000Z", succeeded: 0, failed: 0 }, { t: NOW.toISOString(), succeeded: 22, failed: 2 }], 40);
    expect(html).toContain(`points="${p.ok}"`);
    expect(p.ok).toBe("0.0,220.0 1000.0,99.0");
  });

  it("has an inline script that parses", () => {
    const [script] = inlineScripts(renderRunPage(status(), [], { now: NOW }));
    expect(script).toContain("setTimeout(poll, 1000)");
    expect(() => new Function(script!)).not.toThrow();
  });
});

describe("the runs page", () => {
  const runs: RunSummaryView[] = [
    {
      runId: RUN_ID,
      job: "demo",
      state: "running",
      createdAt: "2026-11-22T02:00:00.000Z",
      items: 40,
      trigger: "schedule:nightly",
      progress: { succeeded: 20, failed: 2, total: 40 },
      usage: { tokens: 50_000, usd: 1.5 },
    },
    { runId: "20261121-020000-demo-0001", job: "demo", state: "succeeded", createdAt: "2026-11-21T02:00:00.000Z", finishedAt: "2026-11-21T03:10:00.000Z", items: 8, trigger: "cli" },
  ];

  it("lists each run with a link, a state badge, progress, spend and duration", () => {
    const html = renderRunsPage(runs, { now: NOW, basePath: "/s" });
    expect(count(html, /<tr data-run=/)).toBe(2);
    expect(html).toContain(`href="/s/runs/${RUN_ID}"`);
    expect(html).toContain('<span class="badge badge-running">running</span>');
    expect(html).toContain('<span class="badge badge-succeeded">succeeded</span>');
    expect(html).toContain('aria-label="20 of 40 succeeded, 2 failed"');
    expect(html).toContain('style="width:50.00%"');
    expect(html).toContain("$1.50");
    expect(html).toContain("50.0k tokens");
    expect(html).toContain("1h 10m");
    expect(html).toContain("5m ago");
    expect(html).toContain("schedule:nightly");
  });

  it("refreshes while a run is live, unless told otherwise", () => {
    expect(renderRunsPage(runs, { now: NOW })).toContain('data-live="true"');
    expect(renderRunsPage(runs, { now: NOW, live: false })).toContain('data-live="false"');
    expect(renderRunsPage(runs.slice(1), { now: NOW })).toContain('data-live="false"');
  });

  it("says how to start a run when there is none", () => {
    const html = renderRunsPage([], { now: NOW });
    expect(html).toContain("No runs yet.");
    expect(html).not.toContain("<table");
  });

  it("has an inline script that parses", () => {
    const [script] = inlineScripts(renderRunsPage(runs, { now: NOW }));
    expect(() => new Function(script!)).not.toThrow();
  });
});

describe("formats", () => {
  it.each([
    [0, "$0"],
    [0.0042, "$0.0042"],
    [0.5, "$0.50"],
    [1234.5, "$1235"],
  ])("formatUsd(%s) = %s", (usd, text) => expect(formatUsd(usd)).toBe(text));

  it.each([
    [4_000, "4s"],
    [65_000, "1m 05s"],
    [3_725_000, "1h 02m"],
    [90_000_000, "1d 1h"],
    [-1, "–"],
  ])("formatDuration(%s) = %s", (ms, text) => expect(formatDuration(ms)).toBe(text));

  it("normalizes base paths", () => {
    expect(normalizeBase(undefined)).toBe("");
    expect(normalizeBase("/")).toBe("");
    expect(normalizeBase("ops/")).toBe("/ops");
  });

  it("computes the same fields the page script does for a finished run", () => {
    const f = runFields(finished(), NOW);
    expect(f).toMatchObject({ "items.succeeded": "17", "items.failed": "3", pct: "50%", "shards.done": "2", duration: "3m 30s" });
  });
});

describe("a large run", () => {
  it("renders 200,000 shards in dense cells without running out of stack", () => {
    const shardList = Array.from({ length: 200_000 }, (_, n) => shard(n, { state: n % 3 === 0 ? "done" : "pending", done: n % 3 === 0 ? 10 : 0 }));
    const html = renderRunPage(status({ shardList }), [], { now: NOW });
    expect(count(html, /<div class="cell" data-shard="/)).toBe(200_000);
    expect(html).toContain('<div class="grid dense">');
  });
});
