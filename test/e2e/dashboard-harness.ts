/**
 * What the dashboard's browser tests share: the scheduler service on a local folder store with
 * the compiled local launcher (as `serve --local` runs it), headless Chromium through
 * playwright-core, a reconcile loop standing in for `serve --local`'s timer, and screenshots kept
 * in test-results/. Without Chromium the tests fail under CI and are skipped elsewhere, saying why.
 */
import { existsSync, mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page, type Request } from "playwright-core";
import { expect } from "vitest";
import { silentLogger } from "../../src/core/log.js";
import { tokenAuthenticator } from "../../src/service/auth.js";
import { createService, type Service } from "../../src/service/app.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { WORKER_COMMAND, compiledLocalLauncher } from "../contract/launcher-contract.js";
import { ROOT, sleep, tempDir } from "./helpers.js";

export const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
export const NO_CHROMIUM = !existsSync(CHROMIUM);
/** Skip (saying why) only off CI: CI must have Chromium. */
export const SKIP_BROWSER = NO_CHROMIUM && !process.env.CI;
export const ARTIFACTS = join(ROOT, "test-results");
export const TOKEN = "dashboard-e2e-token-0123456789";

if (SKIP_BROWSER) console.warn(`dashboard browser tests skipped: no Chromium at ${CHROMIUM} (install it with scripts/chromium.sh install)`);

export interface DashboardOptions {
  /** Job modules whose schedules the service knows (`scheduleJobs`). */
  scheduleJobs?: string[];
  /** Let `POST /v1/jobs/{job}/runs` name a job module by its path (a test fixture). */
  allowJobPaths?: boolean;
  /** How long a start request waits for its plan before answering 202 `planning`. */
  planAnswerMs?: number;
}

export interface Dashboard {
  cwd: string;
  storeDir: string;
  store: FsObjectStore;
  service: Service;
  base: string;
  browser: Browser;
  /** Errors thrown by any page's script: a test ends with none. */
  pageErrors: string[];
  /** A new browser context (its own storage) and page; closed by `close()`. */
  open(options?: BrowserContextOptions): Promise<Page>;
  /** `/path` of the service with the token. */
  url(path: string): string;
  /** A full-page screenshot in test-results/<name>.png. */
  shot(page: Page, name: string): Promise<void>;
  close(): Promise<void>;
}

export async function startDashboard(o: DashboardOptions = {}): Promise<Dashboard> {
  if (NO_CHROMIUM) throw new Error(`no Chromium at ${CHROMIUM}: CI must install it (scripts/chromium.sh install)`);
  const cwd = tempDir("shardrun-dashboard-");
  const storeDir = join(cwd, "store");
  // The compiled launcher: its executions run node processes that cannot load our TypeScript.
  // Its state sits beside the folder store, where the CLI's launcher keeps it too.
  const compiled = await compiledLocalLauncher();
  const launcher = new compiled.LocalLauncher({ stateDir: join(storeDir, ".executions"), command: WORKER_COMMAND });
  const store = new FsObjectStore(storeDir);
  const service = createService({
    store,
    launcher,
    auth: tokenAuthenticator({ token: TOKEN }),
    logger: silentLogger,
    root: ROOT,
    ...(o.scheduleJobs ? { scheduleJobs: o.scheduleJobs } : {}),
    ...(o.allowJobPaths ? { allowJobPaths: true } : {}),
    ...(o.planAnswerMs !== undefined ? { planAnswerMs: o.planAnswerMs } : {}),
  });
  const server: Server = createServer(service.handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];

  // What `serve --local` does on a timer: reconcile carries reruns and fires on after their first step.
  let reconciling = true;
  const reconciler = (async () => {
    while (reconciling) {
      await service.reconcile().catch(() => undefined);
      await sleep(300);
    }
  })();

  return {
    cwd,
    storeDir,
    store,
    service,
    base,
    browser,
    pageErrors,
    async open(options = {}) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
      contexts.push(context);
      const page = await context.newPage();
      page.on("pageerror", (e) => pageErrors.push(String(e)));
      return page;
    },
    url: (path) => `${base}${path}${path.includes("?") ? "&" : "?"}token=${TOKEN}`,
    async shot(page, name) {
      const path = join(ARTIFACTS, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      expect(existsSync(path)).toBe(true);
    },
    async close() {
      reconciling = false;
      await reconciler;
      for (const c of contexts) await c.close().catch(() => undefined);
      await browser.close();
      await new Promise((resolve) => server.close(resolve));
      await service.drain();
      await compiled.dispose();
    },
  };
}

/** Watches a page's POSTs while `fn` runs: what the page sent, in order. */
export async function postsDuring(page: Page, fn: () => Promise<void>): Promise<Request[]> {
  const posts: Request[] = [];
  const on = (r: Request) => {
    if (r.method() === "POST") posts.push(r);
  };
  page.on("request", on);
  try {
    await fn();
  } finally {
    page.off("request", on);
  }
  return posts;
}

/** How wide the page is against its viewport: equal when nothing overflows sideways. */
export async function fitsWidth(page: Page): Promise<{ scrollWidth: number; clientWidth: number }> {
  return page.evaluate(() => {
    // Runs in the page; the tests compile without the DOM's types.
    const root = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
    return { scrollWidth: root.scrollWidth, clientWidth: root.clientWidth };
  });
}
