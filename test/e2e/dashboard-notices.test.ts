/**
 * The dashboard where there is no run page to show, in headless Chromium (issue 12 §5): a run the
 * API still plans in the background opens as a page that says so and follows the plan to the
 * run's page; a plan that fails (or is cancelled from that page) says why; an unknown page or
 * run is an HTML 404 with the way back, while API clients still get the JSON error.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SKIP_BROWSER, TOKEN, fitsWidth, startDashboard, type Dashboard } from "./dashboard-harness.js";

const SLOW = `/v1/jobs/${encodeURIComponent("test/fixtures/jobs/slow-source.ts")}/runs`;
/** A well-formed run id that no run has. */
const NO_RUN = "20260101-000000-nothing-here-abcd";

describe.skipIf(SKIP_BROWSER)("the dashboard's notices in headless Chromium", () => {
  let d: Dashboard;
  let page: Page;

  /** Starts a run of the slow source through the API; its plan outlasts the service's wait. */
  async function startSlow(args: Record<string, number>): Promise<string> {
    const r = await fetch(`${d.base}${SLOW}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify({ args, tasks: 2 }) });
    expect(r.status).toBe(202);
    const body = (await r.json()) as { runId: string; state: string };
    expect(body.state).toBe("planning");
    return body.runId;
  }

  beforeAll(async () => {
    // A short wait: the slow sources below outlast it however loaded the machine is.
    d = await startDashboard({ allowJobPaths: true, planAnswerMs: 200 });
  });

  // A page of its own per test: a run page left behind reloads itself when its run ends.
  beforeEach(async () => {
    page = await d.open();
  });

  afterAll(async () => {
    await d?.close();
  });

  it("opens a run still planning as a page that says so, then follows it to the run's page", async () => {
    const runId = await startSlow({ count: 60, delayMs: 100 });
    const r = await page.goto(d.url(`/runs/${runId}`));
    expect(r?.status()).toBe(200);
    expect(await page.locator("#run-state").textContent()).toBe("planning");
    expect(await page.locator("#planning-h").textContent()).toBe("Planning");
    expect(await page.locator(".crumb a").getAttribute("href")).toBe(`/?token=${TOKEN}`);
    await expect.poll(() => page.locator("#conn").textContent()).toMatch(/^planning · /);
    await d.shot(page, "dashboard-run-planning");
    // No navigation by the test: the page loads the run's page by itself once the plan commits.
    await expect.poll(() => page.locator("#run-state").textContent(), { timeout: 60_000 }).not.toBe("planning");
    expect(await page.locator("#planning-h").count()).toBe(0);
    expect(await page.locator('[data-f="items.total"]').textContent()).toBe("60");
    await expect.poll(() => page.locator("#run-state").textContent(), { timeout: 60_000 }).toBe("succeeded");
  });

  it("shows why a plan failed after its 202, on the page that followed it", async () => {
    const runId = await startSlow({ count: 30, delayMs: 150, duplicateAt: 25 });
    await page.goto(d.url(`/runs/${runId}`));
    expect(await page.locator("#run-state").textContent()).toBe("planning");
    await expect.poll(() => page.locator("#notice-h").count(), { timeout: 30_000 }).toBe(1);
    expect(await page.locator("#notice-h").textContent()).toBe(`Run ${runId} was not planned`);
    expect(await page.locator(".notice-message").textContent()).toMatch(/^Its planning failed: item key "id-0" appears twice, at items 0 and 25 .*; nothing of it was left in the store\.$/);
    const again = await page.goto(d.url(`/runs/${runId}`));
    expect(again?.status()).toBe(404);
    expect(again?.headers()["content-type"]).toMatch(/^text\/html/);
    await d.shot(page, "dashboard-run-plan-failed");
  });

  it("cancels a run from its planning page, and then says it was cancelled", async () => {
    const runId = await startSlow({ count: 400, delayMs: 30 });
    await page.goto(d.url(`/runs/${runId}`));
    expect(await page.locator("#run-state").textContent()).toBe("planning");
    const asked = new Promise<string>((resolve) => page.once("dialog", (dialog) => void dialog.accept().then(() => resolve(dialog.message()))));
    const cancelled = page.waitForResponse((res) => res.request().method() === "POST");
    await page.locator('button[data-action="cancel"]').click();
    expect(await asked).toBe("Cancel this run while it is planned? Nothing of it is kept.");
    const answer = await cancelled;
    expect(answer.url()).toBe(`${d.base}/v1/runs/${runId}:cancel`);
    expect(answer.status()).toBe(200);
    // Reloaded: the run is cancelled (its entry still there) or gone, saying it was cancelled.
    await expect.poll(() => page.locator("main").textContent(), { timeout: 30_000 }).toMatch(/cancelled while it was planned/);
    expect(await page.locator('button[data-action="cancel"]').count()).toBe(0);
  });

  it("answers a browser an unknown page or run with an HTML 404 that leads back to the runs list", async () => {
    for (const [path, message] of [
      ["/no-such-page", "there is no page at /no-such-page"],
      [`/runs/${NO_RUN}`, `no run ${NO_RUN}`],
      [`/runs/${NO_RUN}/output.csv`, `no run ${NO_RUN}`],
    ] as const) {
      const r = await page.goto(d.url(path));
      expect(r?.status(), path).toBe(404);
      expect(r?.headers()["content-type"], path).toMatch(/^text\/html/);
      expect(await page.locator("#notice-h").textContent(), path).toBe("Not found");
      expect(await page.locator(".notice-message").textContent(), path).toBe(message);
    }
    await d.shot(page, "dashboard-not-found");
    // The way back keeps the token.
    await Promise.all([page.waitForURL(/\/\?token=/), page.locator(".notice a", { hasText: "Back to the runs list" }).click()]);
    expect(await page.locator("h1").textContent()).toBe("Runs");

    // At phone width, nothing overflows.
    const phone = await d.open({ viewport: { width: 420, height: 860 }, isMobile: true });
    await phone.goto(d.url(`/runs/${NO_RUN}`));
    const w = await fitsWidth(phone);
    expect(w.scrollWidth).toBeLessThanOrEqual(w.clientWidth);
    expect(d.pageErrors).toEqual([]);
  });

  it("shows a run whose record cannot be read as such, from its row in the list, never as the reader's mistake", async () => {
    const damaged = "20260102-000000-sleepy-bad1";
    await d.store.put(`runs/${damaged}/run.json`, "{ truncated");
    await d.store.put(`index/runs/20260102/${damaged}`, JSON.stringify({ runId: damaged, job: "sleepy", state: "succeeded", createdAt: "2026-01-02T00:00:00.000Z", items: 3, trigger: "cli" }));
    await page.goto(d.url("/"));
    const row = page.locator(`tr[data-run="${damaged}"]`);
    expect(await row.locator(".badge").textContent()).toBe("unreadable");
    const [answer] = await Promise.all([page.waitForResponse((r) => r.url().includes(`/runs/${damaged}?`)), row.locator("a.job").click()]);
    expect(answer.status()).toBe(500);
    expect(await page.locator("#notice-h").textContent()).toBe("This run's record cannot be read");
    expect(await page.locator(".notice-message").textContent()).toMatch(new RegExp(`^run ${damaged} cannot be read: runs/${damaged}/run.json .*not valid JSON`));
    // The API says the same.
    const api = await fetch(`${d.base}/runs/${damaged}/output.jsonl`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(api.status).toBe(500);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe("run_unreadable");
    await d.shot(page, "dashboard-run-unreadable");
  });

  it("still answers API clients, and the API's paths, with the JSON error", async () => {
    const cases = [
      ["/no-such-page", "application/json", "not_found"],
      [`/runs/${NO_RUN}`, "application/json", "not_found"],
      [`/v1/runs/${NO_RUN}`, "text/html", "not_found"],
      ["/v1/no-such-endpoint", "text/html", "not_found"],
    ] as const;
    for (const [path, accept, code] of cases) {
      const r = await fetch(`${d.base}${path}`, { headers: { authorization: `Bearer ${TOKEN}`, accept } });
      expect(r.status, path).toBe(404);
      expect(r.headers.get("content-type"), path).toMatch(/^application\/json/);
      expect(((await r.json()) as { error: { code: string } }).error.code, path).toBe(code);
    }
    // A browser without credentials gets the sign-in page for a run, found or not: whether a run exists is not told.
    const fresh = await d.open();
    const r = await fresh.goto(`${d.base}/runs/${NO_RUN}`);
    expect(r?.status()).toBe(401);
    expect(await fresh.locator("h1").textContent()).toBe("Sign in to the shardrun dashboard");
  });
});
