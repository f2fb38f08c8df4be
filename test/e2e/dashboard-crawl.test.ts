/**
 * Every page of the dashboard, clicked through in headless Chromium after the merge of the
 * operator, dashboard and doctor work (issue 12 §5): from the runs list, every link a page offers
 * is followed (runs of each kind, a run still planning, the schedules, filtered lists, downloads),
 * and each must answer, run its script without an error, keep the token on its links and hold
 * its layout at phone width.
 */
import { join } from "node:path";
import type { ConsoleMessage, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SKIP_BROWSER, TOKEN, fitsWidth, startDashboard, type Dashboard } from "./dashboard-harness.js";
import { ROOT, SLEEPY, cli } from "./helpers.js";

const EVERY_MINUTE = join(ROOT, "test", "fixtures", "jobs", "every-minute.ts");
const MIXED = join(ROOT, "test", "fixtures", "jobs", "mixed.ts");
const SLOW = `/v1/jobs/${encodeURIComponent("test/fixtures/jobs/slow-source.ts")}/runs`;

describe.skipIf(SKIP_BROWSER)("the dashboard, every page clicked through", () => {
  let d: Dashboard;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    d = await startDashboard({ scheduleJobs: [EVERY_MINUTE], allowJobPaths: true, planAnswerMs: 200 });
    const runs = [
      [SLEEPY, "--arg", "count=6", "--arg", "sleepMs=5"],
      [MIXED],
      // More failed items than the page lists: it links to the rest.
      [SLEEPY, "--arg", "count=505", "--arg", "sleepMs=0", "--arg", "failEvery=1", "--tasks", "4"],
    ];
    const states: string[] = [];
    for (const args of runs) {
      const r = await cli(["run", ...args, "--local", "--store", d.storeDir, "--json"], d.cwd);
      states.push((JSON.parse(r.stdout) as { state: string }).state);
    }
    expect(states).toEqual(["succeeded", "partial", "failed"]);
    const fired = await fetch(`${d.base}/v1/schedules/every-minute-tick:fire`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "x-cloudscheduler-scheduletime": "2099-01-01T00:00:00Z" } });
    expect(fired.status).toBe(202);
    // A run the API plans for long enough to be crawled while planning.
    const planning = await fetch(`${d.base}${SLOW}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify({ args: { count: 400, delayMs: 50 } }) });
    expect(planning.status).toBe(202);
  });

  afterAll(async () => {
    await d?.close();
  });

  it("follows every link from the runs list: each page answers, runs its script cleanly and keeps the token", async () => {
    const page = await d.open();
    watchConsole(page, consoleErrors);
    const seen = new Set<string>();
    const queue = [`/?token=${TOKEN}`];
    const visited: string[] = [];
    while (queue.length && visited.length < 60) {
      const path = queue.shift()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const r = await page.goto(`${d.base}${path}`);
      visited.push(path);
      expect(r?.status(), path).toBe(200);
      expect(r?.headers()["content-type"], path).toMatch(/^text\/html/);
      const links = await page.locator("a[href]").evaluateAll((as) => as.map((a) => ({ href: a.getAttribute("href") ?? "", download: a.hasAttribute("download") })));
      for (const { href, download } of links) {
        const u = new URL(href, `${d.base}${path}`);
        if (u.origin !== d.base) continue;
        expect(u.searchParams.get("token"), `${path} → ${href}`).toBe(TOKEN);
        if (download) {
          const got = await page.request.get(u.href);
          expect(got.status(), href).toBe(200);
          continue;
        }
        queue.push(u.pathname + u.search);
      }
    }
    // Each kind of page was reached by links alone.
    expect(visited.some((p) => p.startsWith("/schedules"))).toBe(true);
    expect(visited.filter((p) => p.startsWith("/runs/")).length).toBeGreaterThanOrEqual(4);
    expect(d.pageErrors).toEqual([]);
    expect(consoleErrors).toEqual([]);

    // Every state the runs filter offers is one the list takes.
    await page.goto(d.url("/"));
    const offered = await page.locator('select[name="state"] option').evaluateAll((os) => os.map((o) => o.getAttribute("value") ?? ""));
    expect(offered.length).toBeGreaterThan(5);
    for (const state of offered.filter(Boolean)) {
      const r = await page.goto(d.url(`/?state=${state}`));
      expect(r?.status(), state).toBe(200);
      expect(await page.locator(".filter-error").count(), state).toBe(0);
    }

    // Without the token, each page is the sign-in page (never JSON, never an error); at phone width, none overflows.
    const fresh = await d.open();
    const phone = await d.open({ viewport: { width: 420, height: 860 }, isMobile: true });
    for (const path of visited) {
      const bare = new URL(path, d.base);
      bare.searchParams.delete("token");
      const r = await fresh.goto(bare.href);
      expect(r?.status(), path).toBe(401);
      expect(await fresh.locator("h1").textContent(), path).toBe("Sign in to the shardrun dashboard");
      await phone.goto(`${d.base}${path}`);
      await phone.locator("details").evaluateAll((ds) => ds.forEach((x) => x.setAttribute("open", "")));
      const w = await fitsWidth(phone);
      expect(w.scrollWidth, path).toBeLessThanOrEqual(w.clientWidth);
    }
    expect(d.pageErrors).toEqual([]);
  });

  it("cancels a live run from its page: it asks, stops the run and shows it cancelled", async () => {
    const path = `/v1/jobs/${encodeURIComponent("test/fixtures/jobs/sleepy.ts")}/runs`;
    const r = await fetch(`${d.base}${path}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify({ args: { count: 40, sleepMs: 1000 }, tasks: 2 }) });
    expect(r.status).toBe(202);
    const { runId } = (await r.json()) as { runId: string };
    const page = await d.open();
    await page.goto(d.url(`/runs/${runId}`));
    await expect.poll(() => page.locator("#run-state").textContent(), { timeout: 30_000 }).toBe("running");
    const asked = new Promise<string>((resolve) => page.once("dialog", (dialog) => void dialog.accept().then(() => resolve(dialog.message()))));
    const answer = page.waitForResponse((res) => res.request().method() === "POST");
    await page.locator('button[data-action="cancel"]').click();
    expect(await asked).toMatch(/cancel/i);
    expect((await answer).url()).toBe(`${d.base}/v1/runs/${runId}:cancel`);
    expect((await answer).status()).toBe(200);
    await expect.poll(() => page.locator("#run-state").textContent(), { timeout: 30_000 }).toBe("cancelled");
    expect(await page.locator('button[data-action="cancel"]').count()).toBe(0);
    const st = (await (await fetch(`${d.base}/v1/runs/${runId}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { state: string; items: { succeeded: number; total: number } };
    expect(st.state).toBe("cancelled");
    expect(st.items.succeeded).toBeLessThan(st.items.total);
    expect(d.pageErrors).toEqual([]);
  });
});

function watchConsole(page: Page, into: string[]): void {
  page.on("console", (m: ConsoleMessage) => {
    if (m.type() === "error") into.push(`${page.url()}: ${m.text()}`);
  });
}
