/**
 * The dashboard's pages in headless Chromium (issue 12 §5): the runs list's filters and its order
 * by creation time, the schedules page with its next fire times and "Run now", the sign-in page a
 * browser gets without a token, and a layout that holds at phone width. Screenshots are kept in
 * test-results/.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SKIP_BROWSER, TOKEN, fitsWidth, postsDuring, startDashboard, type Dashboard } from "./dashboard-harness.js";
import { ROOT, SLEEPY, cli } from "./helpers.js";

const EVERY_MINUTE = join(ROOT, "test", "fixtures", "jobs", "every-minute.ts");
const MIXED = join(ROOT, "test", "fixtures", "jobs", "mixed.ts");
/** A scheduled run for a time far ahead: its id sorts first, but it was created first of all. */
const FUTURE = "2099-01-01T00:00:00Z";

interface Status {
  runId: string;
  state: string;
}

describe.skipIf(SKIP_BROWSER)("the dashboard's pages in headless Chromium", () => {
  let d: Dashboard;
  let page: Page;
  let scheduled: string;
  const runs: Status[] = [];

  const rows = () => page.locator("table.runs tbody tr");
  const rowAttr = (name: string) => rows().evaluateAll((trs, n) => trs.map((tr) => tr.getAttribute(n) ?? ""), name);

  beforeAll(async () => {
    d = await startDashboard({ scheduleJobs: [EVERY_MINUTE] });
    const fired = await fetch(`${d.base}/v1/schedules/every-minute-tick:fire`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "x-cloudscheduler-scheduletime": FUTURE } });
    expect(fired.status).toBe(202);
    scheduled = ((await fired.json()) as { runId: string }).runId;
    expect(scheduled).toMatch(/^20990101-000000-every-minute-/);
    for (const args of [
      [SLEEPY, "--arg", "count=10", "--arg", "sleepMs=5"],
      [MIXED],
      [SLEEPY, "--arg", "count=12", "--arg", "sleepMs=5", "--arg", "failEvery=5"],
    ]) {
      const r = await cli(["run", ...args, "--local", "--store", d.storeDir, "--json"], d.cwd);
      runs.push(JSON.parse(r.stdout) as Status);
    }
    expect(runs.map((r) => r.state)).toEqual(["succeeded", "partial", "partial"]);
    page = await d.open();
  });

  afterAll(async () => {
    await d?.close();
  });

  it("lists runs newest first by creation time, not by id", async () => {
    await page.goto(d.url("/"));
    const ids = await rowAttr("data-run");
    expect(ids).toEqual([runs[2]!.runId, runs[1]!.runId, runs[0]!.runId, scheduled]);
    const created = await rowAttr("data-created");
    expect([...created].sort().reverse()).toEqual(created);
    expect(await page.locator("th[aria-sort=descending]").textContent()).toBe("Created");
  });

  it("filters the list by state, job and creation time, keeping the token", async () => {
    await page.goto(d.url("/"));
    // Choosing a state applies it at once.
    await Promise.all([page.waitForURL(/[?&]state=partial/), page.locator('select[name="state"]').selectOption("partial")]);
    expect(new URL(page.url()).searchParams.get("token")).toBe(TOKEN);
    expect(await rowAttr("data-run")).toEqual([runs[2]!.runId, runs[1]!.runId]);
    expect(new Set(await rowAttr("data-state"))).toEqual(new Set(["partial"]));

    await page.locator('input[name="job"]').fill("mixed");
    await Promise.all([page.waitForURL(/[?&]job=mixed/), page.locator('#filters button[type="submit"]').click()]);
    expect(await rowAttr("data-run")).toEqual([runs[1]!.runId]);
    expect(await page.locator('select[name="state"]').inputValue()).toBe("partial");
    await d.shot(page, "dashboard-runs-filtered");

    await Promise.all([page.waitForURL((u) => !u.search.includes("job=")), page.locator("#filters a", { hasText: "Clear" }).click()]);
    expect(await rows().count()).toBe(4);

    await Promise.all([page.waitForURL(/[?&]since=1h/), page.locator('select[name="since"]').selectOption("1h")]);
    expect(await rows().count()).toBe(4);
    await page.goto(d.url("/?since=2098-12-31"));
    expect(await rows().count()).toBe(0);
    expect(await page.locator(".empty-state").textContent()).toContain("No runs match these filters.");
  });

  it("answers a filter it cannot read with the page, naming the filter, and a 400", async () => {
    const r = await page.goto(d.url("/?job=Not%20a%20job"));
    expect(r?.status()).toBe(400);
    expect(await page.locator(".filter-error").textContent()).toBe('job: expected a job name of lowercase letters, digits and dashes, starting with a letter, got "Not a job"');
    const s = await page.goto(d.url("/?since=yesterday"));
    expect(s?.status()).toBe(400);
    expect(await page.locator(".filter-error").textContent()).toMatch(/^since: expected a span back from now like 24h/);
  });

  it("shows the schedules with their next fire times, and Run now fires one for the current minute", async () => {
    await page.goto(d.url("/schedules"));
    const row = page.locator('tr[data-schedule="every-minute-tick"]');
    expect(await row.count()).toBe(1);
    expect(await row.locator("code").first().textContent()).toBe("* * * * *");
    const next = await row.locator(".next time").evaluateAll((ts) => ts.map((t) => Date.parse(t.getAttribute("datetime") ?? "")));
    expect(next).toHaveLength(3);
    // Every minute: the next three minute boundaries after the page was made.
    expect(next[0]! % 60_000).toBe(0);
    expect(next[0]! - Date.now()).toBeLessThanOrEqual(60_000);
    expect([next[1]! - next[0]!, next[2]! - next[1]!]).toEqual([60_000, 60_000]);
    // The last run it started: the one fired ahead of time above.
    expect(await row.locator("[data-last-run] a").textContent()).toBe(scheduled);
    expect(await row.locator('td:has-text("{\\"count\\":4}")').count()).toBe(1);

    // Run now asks first; dismissed, nothing is sent.
    const dismissed = await postsDuring(page, async () => {
      const asked = new Promise<string>((resolve) => page.once("dialog", (dialog) => void dialog.dismiss().then(() => resolve(dialog.message()))));
      await row.locator('button[data-action="fire"]').click();
      expect(await asked).toContain("Start a run of schedule every-minute-tick now (job every-minute");
    });
    expect(dismissed).toEqual([]);

    const request = page.waitForRequest((r) => r.method() === "POST");
    const response = page.waitForResponse((r) => r.request().method() === "POST");
    page.once("dialog", (dialog) => void dialog.accept());
    const before = Date.now();
    await row.locator('button[data-action="fire"]').click();
    const sent = await request;
    expect(sent.url()).toBe(`${d.base}/v1/schedules/every-minute-tick:fire`);
    expect(sent.headers().authorization).toBe(`Bearer ${TOKEN}`);
    expect(sent.headers()["x-cloudscheduler-scheduletime"]).toBeUndefined();
    expect(sent.postData()).toBeNull();
    const answer = await response;
    expect(answer.status()).toBe(202);
    const { runId } = (await answer.json()) as { runId: string };
    // The run of the service's current minute.
    expect([stampOf(before), stampOf(Date.now())]).toContain(runId.slice(0, 15));
    const msg = row.locator("[data-fire-msg]");
    await expect.poll(() => msg.textContent()).toBe(`Started run ${runId}`);
    await d.shot(page, "dashboard-schedules");

    // The message links to the run, which the schedule's arguments made: 4 items.
    await Promise.all([page.waitForURL(new RegExp(`/runs/${runId}\\?token=`)), msg.locator("a").click()]);
    await expect.poll(() => page.locator("#run-state").textContent(), { timeout: 30_000 }).toBe("succeeded");
    expect(await page.locator('[data-f="items.total"]').textContent()).toBe("4");
  });

  it("gives a browser without a token a sign-in page that explains ?token= and the header", async () => {
    const fresh = await d.open();
    const r = await fresh.goto(`${d.base}/?state=partial`);
    expect(r?.status()).toBe(401);
    expect(r?.headers()["content-type"]).toMatch(/^text\/html/);
    expect(await fresh.locator("h1").textContent()).toBe("Sign in to the shardrun dashboard");
    const text = (await fresh.locator("main").textContent()) ?? "";
    expect(text).toContain(`${d.base}/?token=<SHARDRUN_API_TOKEN>`);
    expect(text).toContain(`curl -H "Authorization: Bearer $SHARDRUN_API_TOKEN" ${d.base}/v1/runs`);
    expect(text).toContain("gcloud run services proxy");
    await d.shot(fresh, "dashboard-sign-in");

    // The form brings the browser back where it was going, filters and all, with the token.
    await fresh.locator('input[name="token"]').fill(TOKEN);
    await Promise.all([fresh.waitForURL(/\?/), fresh.locator('.token-form button[type="submit"]').click()]);
    const url = new URL(fresh.url());
    expect(url.pathname).toBe("/");
    expect(url.searchParams.get("state")).toBe("partial");
    expect(url.searchParams.get("token")).toBe(TOKEN);
    expect(await fresh.locator("h1").textContent()).toBe("Runs");
    expect(await fresh.locator("table.runs tbody tr").count()).toBe(2);

    // This browser kept the token: a plain address signs in by itself.
    await fresh.goto(`${d.base}/schedules`);
    await fresh.waitForURL(/\/schedules\?token=/);
    expect(await fresh.locator("h1").textContent()).toBe("Schedules");

    // A refused token says so, and is forgotten.
    const bad = await fresh.goto(`${d.base}/?token=not-the-token-0123456789`);
    expect(bad?.status()).toBe(401);
    expect(await fresh.locator(".sign-in .warn").textContent()).toBe("The service refused the token this page was opened with: the token is not valid.");
    const again = await fresh.goto(`${d.base}/`);
    expect(again?.status()).toBe(401);
    expect(fresh.url()).toBe(`${d.base}/`);

    // Clients that do not ask for HTML still get the API's JSON error.
    for (const path of ["/", "/v1/runs"]) {
      const api = await fresh.request.get(`${d.base}${path}`, { headers: { accept: "application/json" } });
      expect(api.status()).toBe(401);
      expect(((await api.json()) as { error: { code: string } }).error.code).toBe("unauthenticated");
    }
  });

  it("holds its layout at phone width: nothing overflows the page sideways", async () => {
    const phone = await d.open({ viewport: { width: 420, height: 860 }, isMobile: true, hasTouch: true });
    const pages: [string, string][] = [
      ["/", "runs"],
      [`/runs/${runs[2]!.runId}`, "run"],
      [`/runs/${scheduled}`, "run-scheduled"],
      ["/schedules", "schedules"],
      ["/?job=Not%20a%20job", "runs-error"],
    ];
    for (const [path, name] of pages) {
      await phone.goto(d.url(path));
      // Open what folds, so that its content is measured too.
      await phone.locator("details").evaluateAll((ds) => ds.forEach((x) => x.setAttribute("open", "")));
      const w = await fitsWidth(phone);
      expect(w.clientWidth, path).toBe(420);
      expect(w.scrollWidth, path).toBeLessThanOrEqual(w.clientWidth);
      await d.shot(phone, `dashboard-phone-${name}`);
    }
    const signIn = await d.open({ viewport: { width: 420, height: 860 }, isMobile: true });
    await signIn.goto(`${d.base}/runs/${runs[1]!.runId}`);
    const w = await fitsWidth(signIn);
    expect(w.scrollWidth).toBeLessThanOrEqual(w.clientWidth);
    await d.shot(signIn, "dashboard-phone-sign-in");
    expect(d.pageErrors).toEqual([]);
  });
});

/** `20261122-020300`: the start of a run id made for the minute of `ms`. */
function stampOf(ms: number): string {
  const iso = new Date(Math.floor(ms / 60_000) * 60_000).toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}00`;
}
