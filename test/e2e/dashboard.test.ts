/**
 * The dashboard in a real browser (issue 5's done-when): headless Chromium, from Debian's
 * `chromium` package (scripts/chromium.sh), driven by playwright-core against the scheduler
 * service on a local folder store. It watches a live run's shard grid change in place, clicks
 * "Rerun failed items" on a partial run, and keeps screenshots in test-results/.
 *
 * Without Chromium the test fails under CI and is skipped elsewhere, saying why.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/core/log.js";
import { listRuns } from "../../src/orchestrator/runs-index.js";
import { tokenAuthenticator } from "../../src/service/auth.js";
import { createService, type Service } from "../../src/service/app.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { WORKER_COMMAND, compiledLocalLauncher } from "../contract/launcher-contract.js";
import { ROOT, SLEEPY, cli, sleep, startCli, tempDir } from "./helpers.js";

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const missing = !existsSync(CHROMIUM);
const ARTIFACTS = join(ROOT, "test-results");
const TOKEN = "dashboard-e2e-token-0123456789";

if (missing && !process.env.CI) {
  console.warn(`dashboard browser test skipped: no Chromium at ${CHROMIUM} (install it with scripts/chromium.sh install)`);
}

describe.skipIf(missing && !process.env.CI)("dashboard in headless Chromium", () => {
  let cwd: string;
  let storeDir: string;
  let profile: string;
  let service: Service;
  let server: Server;
  let base: string;
  let context: BrowserContext;
  let page: Page;
  let disposeLauncher: (() => Promise<void>) | undefined;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (missing) throw new Error(`no Chromium at ${CHROMIUM}: CI must install it (scripts/chromium.sh install)`);
    cwd = tempDir("shardrun-dashboard-");
    storeDir = join(cwd, "store");
    // The compiled launcher: its executions run node processes that cannot load our TypeScript.
    // Its state sits beside the folder store, where the CLI's launcher keeps it too.
    const compiled = await compiledLocalLauncher();
    disposeLauncher = compiled.dispose;
    const launcher = new compiled.LocalLauncher({ stateDir: join(storeDir, ".executions"), command: WORKER_COMMAND });
    service = createService({ store: new FsObjectStore(storeDir), launcher, auth: tokenAuthenticator({ token: TOKEN }), logger: silentLogger });
    server = createServer(service.handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    profile = mkdtempSync(join(tmpdir(), "shardrun-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  afterAll(async () => {
    await context?.close();
    if (server) await new Promise((resolve) => server.close(resolve));
    await service?.drain();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await disposeLauncher?.();
  });

  const doneCells = () => page.locator('#rounds .cell[data-state="done"]').count();
  const runState = () => page.locator("#run-state").textContent();
  // A marker on the window lives only as long as the document: it tells an in-place update from a reload.
  const mark = () => page.evaluate(() => Object.assign(globalThis, { __sameDocument: true }));
  const sameDocument = () => page.evaluate(() => (globalThis as { __sameDocument?: boolean }).__sameDocument === true);

  it("shows a live run's shards finishing without reloading the page", async () => {
    // 24 shards of 5 items at 0.4 s each, two tasks: about ten seconds of run to watch.
    const run = startCli(
      ["run", SLEEPY, "--local", "--store", storeDir, "--tasks", "2", "--items-per-shard", "5", "--arg", "count=120", "--arg", "sleepMs=400", "--json"],
      cwd,
    );
    try {
      let runId: string | undefined;
      await expect.poll(async () => (runId = (await listRuns(new FsObjectStore(storeDir)))[0]?.runId), { timeout: 15_000 }).toBeTruthy();

      // From the runs list, the way a person gets there; the link carries the token.
      await page.goto(`${base}/?token=${TOKEN}`);
      const row = page.locator(`tr[data-run="${runId}"]`);
      await expect.poll(() => row.count()).toBe(1);
      await row.locator("a.job").click();
      await page.waitForURL(new RegExp(`/runs/${runId}\\?token=`));
      expect(await page.locator("#rounds .cell").count()).toBe(24);
      expect(await page.locator('button[data-action="cancel"]').count()).toBe(1);

      await mark();
      const first = await doneCells();
      expect(first).toBeLessThan(24);
      await expect.poll(doneCells, { timeout: 20_000, interval: 250 }).toBeGreaterThan(first);
      expect(await sameDocument()).toBe(true);
      expect(await page.locator("#chart-ok").getAttribute("points")).toMatch(/^(\S+ ){2,}/);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-live.png"), fullPage: true });

      // When the run ends the page stops polling and reloads once, for the final buttons.
      expect((await run.done).code).toBe(0);
      await expect.poll(sameDocument, { timeout: 15_000 }).toBe(false);
      expect(await runState()).toBe("succeeded");
      expect(await page.locator('button[data-action="cancel"]').count()).toBe(0);
      expect(await doneCells()).toBe(24);
    } finally {
      run.child.kill("SIGINT");
    }
  });

  it("reruns the failed items of a partial run from its page", async () => {
    // Every 7th item fails while this file exists: a cause one can fix before the rerun.
    const cause = join(cwd, "broken");
    writeFileSync(cause, "");
    const first = await cli(
      ["run", SLEEPY, "--local", "--store", storeDir, "--tasks", "2", "--arg", "count=40", "--arg", "sleepMs=50", "--arg", "failEvery=7", "--arg", `failIfExists=${cause}`, "--json"],
      cwd,
    );
    const partial = JSON.parse(first.stdout) as { runId: string; state: string; items: { failed: number }; shards: { total: number } };
    expect(partial.state).toBe("partial");
    expect(partial.items.failed).toBe(6);
    unlinkSync(cause);

    // What `serve --local` does on a timer: reconcile carries the rerun on after its first step.
    let reconciling = true;
    const reconciler = (async () => {
      while (reconciling) {
        await service.reconcile().catch(() => undefined);
        await sleep(300);
      }
    })();
    try {
      await page.goto(`${base}/runs/${partial.runId}?token=${TOKEN}`);
      expect(await runState()).toBe("partial");
      expect(await page.locator("tbody pre.error").count()).toBe(6);
      expect(await page.locator('button[data-action="rerun"]').count()).toBe(0); // every shard is done

      // The button asks first: dismissed, nothing is sent; accepted, the rerun starts.
      const posted: string[] = [];
      const onRequest = (r: { method(): string; url(): string }) => {
        if (r.method() === "POST") posted.push(r.url());
      };
      page.on("request", onRequest);
      const dismissed = new Promise<string>((resolve) => page.once("dialog", (d) => void d.dismiss().then(() => resolve(d.message()))));
      await page.locator('button[data-action="rerun-failed"]').click();
      expect(await dismissed).toContain(`Rerun the failed items of run ${partial.runId}?`);
      await sleep(300);
      expect(posted).toEqual([]);
      expect(await page.locator('button[data-action="rerun-failed"]').isEnabled()).toBe(true);
      page.off("request", onRequest);

      const request = page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith(`/v1/runs/${partial.runId}:rerun`));
      const response = page.waitForResponse((r) => r.url().endsWith(`/v1/runs/${partial.runId}:rerun`));
      page.once("dialog", (d) => void d.accept());
      await page.locator('button[data-action="rerun-failed"]').click();
      const sent = await request;
      expect(sent.postDataJSON()).toEqual({ failedItems: true });
      expect(sent.headers().authorization).toBe(`Bearer ${TOKEN}`);
      expect((await response).status()).toBe(202);

      // The page reloads into the rerun: a second round of shards holding the failed items.
      await expect.poll(() => page.locator('.round[data-round="1"] .cell').count(), { timeout: 15_000 }).toBeGreaterThan(0);
      expect(["running", "succeeded"]).toContain(await runState());
      // Then the run finishes (the page reloads once at the end, or was rendered finished).
      await mark();
      await expect.poll(async () => (await runState()) === "succeeded" && !(await sameDocument()), { timeout: 30_000 }).toBe(true);
      expect(await page.locator('.round[data-round="1"] .cell[data-state="done"]').count()).toBe(await page.locator('.round[data-round="1"] .cell').count());
      // The first round's failures were re-run: its shards no longer show as failed.
      expect(await page.locator('.round[data-round="0"] .cell[data-state="redone"]').count()).toBeGreaterThan(0);
      expect(await page.locator('#rounds .cell[data-state="partial"]').count()).toBe(0);
      expect(await page.locator("tbody pre.error").count()).toBe(0);
      expect(await page.locator('button[data-action="rerun-failed"]').count()).toBe(0);
      expect(await page.locator("#launches-body tr").count()).toBe(2);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
      expect(existsSync(join(ARTIFACTS, "dashboard.png"))).toBe(true);
      expect(pageErrors).toEqual([]);
    } finally {
      reconciling = false;
      await reconciler;
    }
  });
});
