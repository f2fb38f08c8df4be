/**
 * The run page's new controls in headless Chromium (issue 12 §5): failures grouped by error with
 * their stacks, items over time from the parts' write times, the output download, "Rerun failed
 * items" with its reason filter and upgrade control, and "Rerun" with a budget field after a
 * budget stop. Each test checks that the control is there, the request it sends, and the page
 * after. Screenshots are kept in test-results/.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SKIP_BROWSER, TOKEN, postsDuring, startDashboard, type Dashboard } from "./dashboard-harness.js";
import { SLEEPY, cli, sleep } from "./helpers.js";

/**
 * A job outside the package, edited by a test: documents whose number ends in 3 are refused for
 * good (NonRetriableError), those ending in 7 fail while the marker file exists (a fixable cause).
 */
const FLAKY = `import { existsSync } from "node:fs";
import { z } from "zod";
import { NonRetriableError, defineJob } from "shardrun";

export default defineJob({
  name: "flaky",
  args: z.object({ marker: z.string() }),
  item: z.object({ n: z.number().int(), marker: z.string() }),
  source: (args) => Array.from({ length: 30 }, (_, n) => ({ n, marker: args.marker })),
  key: (item) => "doc-" + item.n,
  shard: { itemsPerShard: 5 },
  retry: { attempts: 1 },
  checkpoint: { everyItems: 2, everyMs: 1000 },
  async run(item) {
    await new Promise((r) => setTimeout(r, 40));
    if (item.n % 10 === 3) throw new NonRetriableError("document " + item.n + " is refused");
    if (item.n % 10 === 7 && existsSync(item.marker)) throw new Error("upstream 503 for document " + item.n);
    return { n: item.n, words: item.n * 10 };
  },
});
`;

interface Status {
  runId: string;
  state: string;
  items: { total: number; succeeded: number; failed: number };
}

describe.skipIf(SKIP_BROWSER)("the run page's controls in headless Chromium", () => {
  let d: Dashboard;
  let page: Page;
  let jobFile: string;
  let marker: string;
  let flaky: Status;

  const runState = () => page.locator("#run-state").textContent();

  beforeAll(async () => {
    d = await startDashboard();
    mkdirSync(join(d.cwd, "flaky"));
    jobFile = join(d.cwd, "flaky", "index.ts");
    writeFileSync(jobFile, FLAKY);
    marker = join(d.cwd, "upstream-down");
    writeFileSync(marker, "");
    const r = await cli(["run", jobFile, "--local", "--store", d.storeDir, "--tasks", "2", "--arg", `marker=${marker}`, "--json"], d.cwd);
    flaky = JSON.parse(r.stdout) as Status;
    expect(flaky).toMatchObject({ state: "partial", items: { total: 30, succeeded: 24, failed: 6 } });
    page = await d.open();
  });

  afterAll(async () => {
    await d?.close();
  });

  it("groups the failures by reason and error, with counts, sample keys and the first stack", async () => {
    await page.goto(d.url(`/runs/${flaky.runId}`));
    const groups = page.locator("#failure-groups details.group");
    expect(await groups.count()).toBe(2);
    const summary = async (k: number) => ({
      reason: await groups.nth(k).getAttribute("data-reason"),
      count: await groups.nth(k).getAttribute("data-count"),
      signature: await groups.nth(k).locator(".signature").textContent(),
      keys: await groups.nth(k).locator(".samples .key").allTextContents(),
    });
    // Equal counts: the group whose first item comes first leads.
    expect(await summary(0)).toEqual({ reason: "non_retriable", count: "3", signature: "document <n> is refused", keys: ["doc-3", "doc-13", "doc-23"] });
    expect(await summary(1)).toEqual({ reason: "error", count: "3", signature: "upstream <n> for document <n>", keys: ["doc-7", "doc-17", "doc-27"] });

    // The stack is folded away until the group is opened.
    const refused = groups.nth(0);
    expect(await refused.locator("pre.stack").isVisible()).toBe(false);
    await refused.locator("summary").click();
    expect(await refused.locator("pre.stack").isVisible()).toBe(true);
    expect(await refused.locator("pre.message").textContent()).toBe("document 3 is refused");
    expect(await refused.locator("pre.stack").textContent()).toMatch(/^\s*at /);
    // Every failed item is still listed, one row each, folded away too.
    expect(await page.locator("details.all-failed tbody tr").count()).toBe(6);
    expect(await page.locator("details.all-failed").getAttribute("open")).toBeNull();
    await d.shot(page, "dashboard-failure-groups");
  });

  it("draws items over time from the output parts' write times, not from two points", async () => {
    await page.goto(d.url(`/runs/${flaky.runId}`));
    const points = ((await page.locator("#chart-ok").getAttribute("points")) ?? "").split(" ").map((p) => p.split(",").map(Number) as [number, number]);
    // Parts of two items at most, over 6 shards: many points; the line rises and never falls.
    expect(points.length).toBeGreaterThan(5);
    expect(points[0]).toEqual([0, 220]);
    expect(points.at(-1)).toEqual([1000, 220 - (24 / 30) * 220]);
    for (let k = 1; k < points.length; k++) {
      expect(points[k]![0]).toBeGreaterThanOrEqual(points[k - 1]![0]);
      expect(points[k]![1]).toBeLessThanOrEqual(points[k - 1]![1]);
    }
    // In between, the line is not the straight one from start to end.
    const straight = points.slice(1, -1).every(([x, y]) => Math.abs(y - (220 - (x / 1000) * (220 - points.at(-1)![1]))) < 1);
    expect(straight).toBe(false);
    expect(await page.locator(".chart-note").textContent()).toContain("A point per output part");
  });

  it("downloads the output as JSONL and CSV, with the failed items or without, as `shardrun output` writes them", async () => {
    await page.goto(d.url(`/runs/${flaky.runId}`));
    const cases = [
      { group: "output", format: "jsonl", args: [], file: `${flaky.runId}.jsonl`, query: "" },
      { group: "output", format: "csv", args: ["--format", "csv"], file: `${flaky.runId}.csv`, query: "" },
      { group: "failed", format: "jsonl", args: ["--failed"], file: `${flaky.runId}-with-failed.jsonl`, query: "failed=true&" },
      { group: "failed", format: "csv", args: ["--format", "csv", "--failed"], file: `${flaky.runId}-with-failed.csv`, query: "failed=true&" },
    ];
    const texts = new Map<string, string>();
    for (const k of cases) {
      const link = page.locator(`[data-downloads="${k.group}"] a[data-download="${k.format}"]`);
      expect(await link.textContent()).toBe(k.format.toUpperCase());
      const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
      expect(download.suggestedFilename()).toBe(k.file);
      expect(download.url()).toBe(`${d.base}/runs/${flaky.runId}/output.${k.format}?${k.query}token=${TOKEN}`);
      const text = readFileSync((await download.path())!, "utf8");
      const cliOutput = await cli(["output", flaky.runId, "--store", d.storeDir, ...k.args], d.cwd);
      expect(text, k.file).toBe(cliOutput.stdout);
      texts.set(k.file, text);
    }
    const lines = texts.get(`${flaky.runId}.jsonl`)!.trim().split("\n").map((l) => JSON.parse(l) as { key: string; output: { n: number } });
    expect(lines).toHaveLength(24);
    expect(new Set(lines.map((l) => l.key)).size).toBe(24);
    expect(lines.some((l) => l.key === "doc-3" || l.key === "doc-7")).toBe(false);
    // CSV: a header and a row per succeeded item; with the failed items, their six rows after them.
    const rows = texts.get(`${flaky.runId}.csv`)!.split("\r\n").filter(Boolean);
    expect(rows[0]!.startsWith("i,key,")).toBe(true);
    expect(rows).toHaveLength(25);
    const withFailed = texts.get(`${flaky.runId}-with-failed.csv`)!.split("\r\n").filter(Boolean);
    expect(withFailed[0]!.endsWith(",status,reason,error,attempts")).toBe(true);
    expect(withFailed).toHaveLength(31);
    expect(withFailed.filter((r) => /,failed,(error|non_retriable),/.test(r))).toHaveLength(6);
    const failedLines = texts.get(`${flaky.runId}-with-failed.jsonl`)!.trim().split("\n").map((l) => JSON.parse(l) as { key: string; failed?: { reason: string } });
    expect(failedLines.filter((l) => l.failed).map((l) => l.key).sort()).toEqual(["doc-13", "doc-17", "doc-23", "doc-27", "doc-3", "doc-7"]);

    // Streamed (chunked, no length known up front), not built whole first.
    const streamed = await page.request.get(`${d.base}/runs/${flaky.runId}/output.csv?failed=true&token=${TOKEN}`);
    expect(streamed.headers()["content-type"]).toBe("text/csv; charset=utf-8; header=present");
    expect(streamed.headers()["content-length"]).toBeUndefined();
    expect(streamed.headers()["transfer-encoding"]).toBe("chunked");
    // A value the route does not take is refused, naming it.
    const bad = await page.request.get(`${d.base}/runs/${flaky.runId}/output.csv?failed=yes&token=${TOKEN}`, { headers: { accept: "application/json" } });
    expect(bad.status()).toBe(400);
    expect(((await bad.json()) as { error: { field?: string } }).error.field).toBe("failed");
  });

  it("reruns the failures of the reasons chosen, with the job's current code when asked", async () => {
    await page.goto(d.url(`/runs/${flaky.runId}`));
    // Unchanged code: no upgrade offered. Reasons: every one but non_retriable, those without items off.
    expect(await page.locator("#upgrade").isHidden()).toBe(true);
    expect(await page.locator("#code-note").textContent()).toContain("unchanged since the run was planned");
    const box = (reason: string) => page.locator(`input[name="reason"][value="${reason}"]`);
    expect(await box("error").isChecked()).toBe(true);
    expect(await box("non_retriable").isChecked()).toBe(false);
    expect(await box("timeout").isDisabled()).toBe(true);
    expect(await page.locator("#retry-count").textContent()).toBe("3 of 6 failed items");

    // No reason chosen: nothing is sent, and the page says why.
    await box("error").uncheck();
    expect(await page.locator("#retry-count").textContent()).toBe("0 of 6 failed items");
    const none = await postsDuring(page, async () => {
      await page.locator('button[data-action="rerun-failed"]').click();
      await sleep(300);
    });
    expect(none).toEqual([]);
    expect(await page.locator("#action-msg").textContent()).toBe("choose at least one reason to retry");

    // The job is edited (refused documents are accepted now) and its upstream is back.
    writeFileSync(jobFile, readFileSync(jobFile, "utf8").replace('if (item.n % 10 === 3) throw new NonRetriableError("document " + item.n + " is refused");', "if (item.n % 10 === 3) return { n: item.n, words: 0, accepted: true };"));
    unlinkSync(marker);
    await page.reload();
    const upgrade = page.locator('#upgrade input[name="upgrade"]');
    expect(await upgrade.isVisible()).toBe(true);
    expect(await page.locator("#upgrade").textContent()).toContain("The job's code changed since the run was planned");
    await upgrade.check();
    await box("non_retriable").check();
    await box("error").uncheck();
    expect(await page.locator("#retry-count").textContent()).toBe("3 of 6 failed items");
    await d.shot(page, "dashboard-rerun-failed-options");

    const request = page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith(`/v1/runs/${flaky.runId}:rerun`));
    const response = page.waitForResponse((r) => r.url().endsWith(`/v1/runs/${flaky.runId}:rerun`));
    const asked = new Promise<string>((resolve) => page.once("dialog", (dialog) => void dialog.accept().then(() => resolve(dialog.message()))));
    await page.locator('button[data-action="rerun-failed"]').click();
    expect(await asked).toBe(`Rerun the failed items of run ${flaky.runId}? 3 items (non_retriable) are re-planned into new shards and run again. They run the job's current code (upgrade).`);
    const sent = await request;
    expect(sent.postDataJSON()).toEqual({ failedItems: true, reasons: ["non_retriable"], upgrade: true });
    expect(sent.headers().authorization).toBe(`Bearer ${TOKEN}`);
    expect((await response).status()).toBe(202);

    // The page after (rendered by the server once the run is finished: the finish card is back):
    // the refused documents ran with the new code; the upstream failures were not chosen, so
    // they stay failed although they would succeed now.
    await expect.poll(async () => (await runState()) === "partial" && (await page.locator("#finish").count()) === 1 && (await page.locator('.round[data-round="1"] .cell').count()) > 0, { timeout: 30_000 }).toBe(true);
    const groups = page.locator("#failure-groups details.group");
    expect(await groups.count()).toBe(1);
    expect(await groups.first().getAttribute("data-reason")).toBe("error");
    expect(await groups.first().getAttribute("data-count")).toBe("3");
    expect(await page.locator('.round[data-round="1"] .cell').count()).toBe(1); // 3 items: one new shard
    const output = (await cli(["output", flaky.runId, "--store", d.storeDir], d.cwd)).stdout;
    const byKey = new Map(output.trim().split("\n").map((l) => [(JSON.parse(l) as { key: string }).key, JSON.parse(l) as { output: { accepted?: boolean } }]));
    expect(byKey.size).toBe(27);
    expect(byKey.get("doc-13")?.output.accepted).toBe(true);
    expect(byKey.has("doc-17")).toBe(false);
    await d.shot(page, "dashboard-rerun-failed-after");
  });

  it("raises the budget of a run stopped at it, from its Rerun form", async () => {
    const r = await cli(["run", SLEEPY, "--local", "--store", d.storeDir, "--json", "--budget-tokens", "300", "--arg", "count=40", "--arg", "sleepMs=5", "--arg", "tokens=100"], d.cwd);
    const stopped = JSON.parse(r.stdout) as Status;
    expect(stopped.state).toBe("budget_exhausted");
    await page.goto(d.url(`/runs/${stopped.runId}`));
    // The CLI's word for the state, not a paraphrase.
    expect(await runState()).toBe("budget_exhausted");
    const form = page.locator('form[data-form="rerun"]');
    expect(await form.locator(".budget-fields").textContent()).toContain("The run stopped at its budget (300 tokens)");
    const tokens = form.locator('input[name="budgetTokens"]');
    expect(await tokens.isVisible()).toBe(true);
    expect(await form.locator('input[name="budgetUsd"]').isVisible()).toBe(true);

    // A value the field refuses is not sent.
    await tokens.fill("0");
    const refused = await postsDuring(page, async () => {
      await form.locator('button[data-action="rerun"]').click();
      await sleep(300);
    });
    expect(refused).toEqual([]);
    expect(await page.locator("#action-msg").textContent()).toMatch(/^budget tokens: /);

    await tokens.fill("1000000");
    await d.shot(page, "dashboard-budget-rerun");
    const request = page.waitForRequest((q) => q.method() === "POST" && q.url().endsWith(`/v1/runs/${stopped.runId}:rerun`));
    const response = page.waitForResponse((q) => q.url().endsWith(`/v1/runs/${stopped.runId}:rerun`));
    const asked = new Promise<string>((resolve) => page.once("dialog", (dialog) => void dialog.accept().then(() => resolve(dialog.message()))));
    await form.locator('button[data-action="rerun"]').click();
    expect(await asked).toContain("Run budget: 1,000,000 tokens.");
    expect((await request).postDataJSON()).toEqual({ budgetTokens: 1_000_000 });
    expect((await response).status()).toBe(202);

    await expect.poll(runState, { timeout: 30_000 }).toBe("succeeded");
    expect(await page.locator(".budget").first().textContent()).toContain("1.0M tokens");
    expect(await page.locator('form[data-form="rerun"]').count()).toBe(0);
    const after = JSON.parse((await cli(["status", stopped.runId, "--store", d.storeDir, "--json"], d.cwd)).stdout) as Status;
    expect(after).toMatchObject({ state: "succeeded", items: { succeeded: 40, failed: 0 } });
    expect(d.pageErrors).toEqual([]);
  });
});
