/**
 * The dashboard's new pages and controls as HTML: the finish card (rerun reasons, upgrade, budget
 * fields), failure groups, the schedules page, the sign-in page, and the runs filters' parsing.
 * What they do in a browser is test/e2e/dashboard-finish.test.ts and dashboard-pages.test.ts.
 */
import { describe, expect, it } from "vitest";
import type { FailedItemView, RunStatus } from "../../src/core/status.js";
import { renderNoticePage, renderPlanningPage, renderRunPage, renderRunsPage, renderSchedulesPage, renderSignInPage, type ScheduleView } from "../../src/dashboard/pages.js";
import { runsFilters } from "../../src/service/routes-pages.js";
import { planningStatus } from "../../src/core/status.js";

const RUN_ID = "20261122-020000-demo-ab12";
const NOW = new Date("2026-11-22T02:05:00.000Z");
const XSS = `<script>alert("x")</script>`;

function status(over: Partial<RunStatus> = {}): RunStatus {
  return {
    runId: RUN_ID,
    job: "demo",
    state: "partial",
    createdAt: "2026-11-22T02:00:00.000Z",
    finishedAt: "2026-11-22T02:03:00.000Z",
    items: { total: 20, succeeded: 16, failed: 4, pending: 0 },
    shards: { total: 2, done: 2, running: 0 },
    launches: [],
    executions: 20,
    usage: { tokens: 0, usd: 0 },
    budgets: {},
    shardList: [],
    ...over,
  };
}

const failed = (i: number, reason: string, error = `item ${i} fails`, over: Partial<FailedItemView> = {}): FailedItemView => ({ i, key: `k${i}`, shard: "s000000", error, attempts: 1, reason, ...over });
const dead = [failed(1, "error"), failed(2, "error"), failed(3, "non_retriable", "refused"), failed(4, "timeout", "took too long")];

const scripts = (html: string) => [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
const checked = (html: string, reason: string) => new RegExp(`value="${reason}" checked`).test(html);

describe("the finish card", () => {
  it("offers the reasons with their counts, every one but non_retriable chosen, empty ones disabled", () => {
    const html = renderRunPage(status(), dead, { now: NOW });
    expect(html).toContain('data-form="rerun-failed"');
    expect(checked(html, "error")).toBe(true);
    expect(checked(html, "timeout")).toBe(true);
    expect(checked(html, "non_retriable")).toBe(false);
    expect(html).toMatch(/value="crashed" checked disabled/);
    expect(html).toMatch(/value="error" checked> <span class="reason reason-error">error<\/span> <span class="count">2<\/span>/);
    expect(html).toContain('"failedByReason":{"error":2,"non_retriable":1,"timeout":1}');
    expect(html).toContain('"defaultReasons":["error","timeout","crashed","schema","budget"]');
  });

  it("offers upgrade only when the job's code changed, and says so when it did not", () => {
    const changed = renderRunPage(status(), dead, { now: NOW, code: { changed: true, recorded: "0.1.0+aaa", current: "0.1.0+bbb" } });
    expect(changed).toMatch(/<div class="upgrade" id="upgrade"><label><input type="checkbox" name="upgrade">/);
    expect(changed).toContain("0.1.0+aaa</span> → <span class=\"mono\">0.1.0+bbb");
    const same = renderRunPage(status(), dead, { now: NOW, code: { changed: false, version: "0.1.0+aaa" } });
    expect(same).toContain('<div class="upgrade" id="upgrade" hidden>');
    expect(same).toContain("unchanged since the run was planned");
    const unknown = renderRunPage(status(), dead, { now: NOW, code: { changed: "unknown", reason: `no source ${XSS}` } });
    expect(unknown).toContain("Upgrade is not offered here: no source &lt;script&gt;");
    expect(unknown).not.toContain(XSS);
  });

  it("asks for a higher budget after a budget stop, and folds the budget away otherwise", () => {
    const stopped = renderRunPage(
      status({ state: "budget_exhausted", items: { total: 20, succeeded: 4, failed: 0, pending: 16 }, shards: { total: 2, done: 0, running: 0 }, usage: { tokens: 400, usd: 0.0004 }, budgets: { run: { tokens: 300 } } }),
      [],
      { now: NOW },
    );
    expect(stopped).toContain('<span class="badge badge-budget_exhausted" id="run-state">budget_exhausted</span>');
    expect(stopped).toContain("The run stopped at its budget (300 tokens) after spending 400 tokens and $0.00040: raise it to go on.");
    expect(stopped).toMatch(/<fieldset class="budget-fields">[\s\S]*name="budgetTokens"[\s\S]*name="budgetUsd"/);
    expect(stopped).toContain('data-action="rerun"');
    expect(stopped).not.toContain('data-form="rerun-failed"');

    const cancelled = renderRunPage(status({ state: "cancelled", items: { total: 20, succeeded: 4, failed: 0, pending: 16 }, shards: { total: 2, done: 1, running: 0 } }), [], { now: NOW });
    expect(cancelled).toContain('<details class="budget-fields"><summary>Set a run budget</summary>');
  });

  it("is not there while the run is live, nor when nothing is left to rerun", () => {
    expect(renderRunPage(status({ state: "running", finishedAt: undefined }), dead, { now: NOW })).not.toContain('id="finish"');
    expect(renderRunPage(status({ state: "succeeded", items: { total: 20, succeeded: 20, failed: 0, pending: 0 } }), [], { now: NOW })).not.toContain('id="finish"');
  });

  it("offers the output as JSONL and CSV once an item succeeded, and with the failed items once one failed", () => {
    const page = renderRunPage(status(), dead, { now: NOW, basePath: "/ops" });
    expect(page).toContain(`<a class="button" href="/ops/runs/${RUN_ID}/output.jsonl" data-internal data-download="jsonl" download="${RUN_ID}.jsonl"`);
    expect(page).toContain(`<a class="button" href="/ops/runs/${RUN_ID}/output.csv" data-internal data-download="csv" download="${RUN_ID}.csv"`);
    expect(page).toContain(`<a class="button" href="/ops/runs/${RUN_ID}/output.jsonl?failed=true" data-internal data-download="jsonl" download="${RUN_ID}-with-failed.jsonl"`);
    expect(page).toContain(`<a class="button" href="/ops/runs/${RUN_ID}/output.csv?failed=true" data-internal data-download="csv" download="${RUN_ID}-with-failed.csv"`);
    // Nothing succeeded: only the failed items are there to download.
    const allFailed = renderRunPage(status({ items: { total: 20, succeeded: 0, failed: 20, pending: 0 } }), dead, { now: NOW });
    expect(allFailed).not.toContain('data-downloads="output"');
    expect(allFailed).toContain('data-downloads="failed"');
    // Nothing failed: no failed download.
    const clean = renderRunPage(status({ state: "succeeded", items: { total: 20, succeeded: 20, failed: 0, pending: 0 } }), [], { now: NOW });
    expect(clean).toContain('data-downloads="output"');
    expect(clean).not.toContain("failed=true");
  });
});

describe("failure groups", () => {
  it("groups by reason and message shape, escaped, with the first message, stack and log", () => {
    const items = [failed(1, "error", `bad ${XSS} 1`, { stack: `at run (${XSS})` }), failed(2, "error", `bad ${XSS} 2`, { lastLog: XSS }), failed(3, "schema", "not a string")];
    const html = renderRunPage(status(), items, { now: NOW });
    expect(html.match(/<details class="group"/g)).toHaveLength(2);
    expect(html).toContain('data-reason="error" data-count="2"');
    expect(html).toContain("<pre class=\"message\">bad &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; 1</pre>");
    expect(html).toContain('<pre class="stack">at run (&lt;script&gt;');
    expect(html).toContain('<pre class="log">&lt;script&gt;');
    expect(html).not.toContain(XSS);
    expect(html).toContain("No stack trace was recorded");
  });
});

describe("the runs page's filters", () => {
  it("keeps the filters in the form, and says when nothing matches", () => {
    const html = renderRunsPage([], { now: NOW, filters: { job: "demo", state: "partial", since: "2026-11-01", limit: 50 }, jobs: ["demo", `x${XSS}`] });
    expect(html).toContain('name="job" list="job-names" value="demo"');
    expect(html).toContain('<option value="partial" selected>partial</option>');
    expect(html).toContain('<option value="2026-11-01" selected>since 2026-11-01</option>');
    expect(html).toContain("No runs match these filters.");
    expect(html).not.toContain(XSS);
  });

  it("shows a refused filter's message", () => {
    const html = renderRunsPage([], { now: NOW, error: `job: expected a job name, got "${XSS}"` });
    expect(html).toContain('<p class="filter-error" role="alert">job: expected a job name, got &quot;&lt;script&gt;');
    expect(html).not.toContain("No runs yet");
  });

  it("parses job, state, since (a span or a date) and limit, or names the one refused", () => {
    expect(runsFilters({ job: "demo", state: "pending", since: "24h", limit: "20" }, NOW)).toEqual({
      shown: { job: "demo", state: "pending", since: "24h", limit: 20 },
      query: { job: "demo", state: "pending", since: new Date("2026-11-21T02:05:00.000Z"), limit: 20 },
    });
    expect(runsFilters({ since: "2026-11-20" }, NOW)).toMatchObject({ query: { since: new Date("2026-11-20T00:00:00.000Z"), limit: 50 } });
    expect(runsFilters({}, NOW)).toEqual({ shown: { limit: 50 }, query: { limit: 50 } });
    expect(runsFilters({ job: "Bad Job" }, NOW)).toBe('job: expected a job name of lowercase letters, digits and dashes, starting with a letter, got "Bad Job"');
    expect(runsFilters({ state: "spent" }, NOW)).toMatch(/^state: expected one of planning, pending, running, succeeded, partial, failed, cancelled, budget_exhausted, unreadable, got "spent"$/);
    expect(runsFilters({ since: "last week" }, NOW)).toMatch(/^since: expected a span back from now like 24h or 7d/);
    expect(runsFilters({ limit: "0" }, NOW)).toBe('limit: expected a whole number from 1 to 200, got "0"');
  });
});

describe("the schedules page", () => {
  const schedule = (over: Partial<ScheduleView> = {}): ScheduleView => ({
    name: "nightly",
    job: "demo",
    cron: "0 2 * * *",
    timeZone: "Europe/Paris",
    args: { count: 5 },
    paused: false,
    next: ["2026-11-23T01:00:00.000Z", "2026-11-24T01:00:00.000Z"],
    ...over,
  });

  it("lists each schedule with its next fires, arguments, last run and Run now", () => {
    const html = renderSchedulesPage([schedule({ lastRun: { runId: RUN_ID, state: "succeeded", createdAt: "2026-11-22T01:00:00.000Z" } })], [], { now: NOW, basePath: "/s" });
    expect(html).toContain('<tr data-schedule="nightly">');
    expect(html).toContain('<time datetime="2026-11-23T01:00:00.000Z">');
    expect(html).toContain("in 22h");
    expect(html).toContain("{&quot;count&quot;:5}");
    expect(html).toContain(`href="/s/runs/${RUN_ID}"`);
    expect(html).toContain('data-action="fire" data-schedule="nightly" data-job="demo"');
    expect(html).toContain('"base":"/s"');
    for (const s of scripts(html)) expect(() => new Function(s)).not.toThrow();
  });

  it("marks paused schedules, lists jobs that do not load, and escapes what it shows", () => {
    const html = renderSchedulesPage([schedule({ paused: true, next: [], description: XSS, args: { q: XSS } })], [{ job: "broken", reason: `syntax ${XSS}` }], { now: NOW });
    expect(html).toContain("paused");
    expect(html).toContain("Jobs that do not load");
    expect(html).not.toContain(XSS);
  });
});

describe("the sign-in page", () => {
  it("explains ?token= and the header with the service's address, and keeps the query through its form", () => {
    const html = renderSignInPage({ path: "/runs/x", origin: "http://127.0.0.1:8080", query: { state: "partial", token: "leak" }, status: 401, message: "missing credentials", hadToken: false });
    expect(html).toContain("http://127.0.0.1:8080/?token=&lt;SHARDRUN_API_TOKEN&gt;");
    expect(html).toContain('curl -H "Authorization: Bearer $SHARDRUN_API_TOKEN" http://127.0.0.1:8080/v1/runs');
    expect(html).toContain('<form class="token-form" method="get" action="/runs/x">');
    expect(html).toContain('<input type="hidden" name="state" value="partial">');
    expect(html).not.toContain("leak");
    for (const s of scripts(html)) expect(() => new Function(s)).not.toThrow();
  });

  it("says a token was refused, or that the account may not call, escaped", () => {
    expect(renderSignInPage({ path: "/", status: 401, message: "the token is not valid", hadToken: true })).toContain("The service refused the token this page was opened with: the token is not valid.");
    const forbidden = renderSignInPage({ path: `/${XSS}`, query: { [XSS]: XSS }, status: 403, message: `${XSS} may not call this service`, hadToken: false });
    expect(forbidden).toContain("SHARDRUN_ALLOWED_SERVICE_ACCOUNTS");
    expect(forbidden).not.toContain(XSS);
  });
});

describe("the planning page and the notices", () => {
  const planning = planningStatus({ runId: RUN_ID, job: "demo", state: "planning", createdAt: "2026-11-22T02:00:00.000Z", items: 1200 });
  const scripts = (html: string) => [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);

  it("says a run is planning, offers Cancel, and polls the run's status from a script that parses", () => {
    const page = renderPlanningPage(planning, { basePath: "/ops" });
    expect(page).toContain('<span class="badge badge-planning" id="run-state">planning</span>');
    expect(page).toContain('<span data-f="items-read">1,200 items read so far.</span>');
    expect(page).toContain('data-action="cancel"');
    expect(page).toContain(`"api":"/ops/v1/runs/${RUN_ID}"`);
    expect(page).toContain('<a href="/ops/" data-internal>← All runs</a>');
    const [script] = scripts(page);
    expect(script).toContain("setTimeout(poll, 1000)");
    expect(() => new Function(script!)).not.toThrow();
  });

  it("says a run was cancelled while planned, without polling or Cancel", () => {
    const page = renderPlanningPage({ ...planning, state: "cancelled", reason: "cancelled while it was planned" });
    expect(page).toContain("<h2 id=\"planning-h\">Cancelled while it was planned</h2>");
    expect(page).not.toContain('data-action="cancel"');
    expect(page).toContain('"live":false');
  });

  it("names what went wrong, escaped, with the way back to the runs list", () => {
    const page = renderNoticePage({ status: 404, message: `no run ${XSS}`, basePath: "/ops" });
    expect(page).toContain('<h1 id="notice-h">Not found</h1>');
    expect(page).toContain("no run &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    expect(page).not.toContain(XSS);
    expect(page).toContain('<a href="/ops/" data-internal>← Back to the runs list</a>');
    expect(renderNoticePage({ status: 400, message: "id: expected a run id" })).toContain("That address is not one the dashboard can read");
    expect(renderNoticePage({ status: 503, message: "down" })).toContain("Something went wrong");
    expect(renderNoticePage({ status: 404, message: "m", heading: `Run ${XSS}` })).not.toContain(XSS);
    const [script] = scripts(page);
    expect(() => new Function(script!)).not.toThrow();
  });
});
