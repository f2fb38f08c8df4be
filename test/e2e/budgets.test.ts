/** Budgets: a run stops at its token budget within the items in flight, and a raised budget finishes it. */
import { describe, expect, it } from "vitest";
import { SLEEPY, cli, parseLines, tempDir } from "./helpers.js";

interface Status {
  runId: string;
  state: string;
  reason?: string;
  items: { total: number; succeeded: number; failed: number; pending: number };
  usage: { tokens: number; usd: number };
  budgets: { run?: { tokens?: number } };
}

describe("budgets", () => {
  it("stops a run at its token budget, shows budget_exhausted with the spend, and finishes after rerun --budget-tokens", async () => {
    const dir = tempDir();
    const tasks = 2;
    const concurrency = 4; // sleepy's
    const perItem = 100;
    const budget = 5000;
    const r = await cli(
      ["run", SLEEPY, "--local", "--json", "--tasks", String(tasks), "--budget-tokens", String(budget), "--arg", "count=200", "--arg", "sleepMs=20", "--arg", `tokens=${perItem}`],
      dir,
    );
    expect(r.code).toBe(4);
    const st = JSON.parse(r.stdout) as Status;
    expect(st.state).toBe("budget_exhausted");
    expect(st.reason).toContain("budget");
    // What is left is less than one item for each task: the budget is split among the tasks'
    // reservations, and a task stops when its share and its bank's rest do not cover another item.
    expect(budget - st.usage.tokens).toBeLessThan(tasks * perItem);
    // Overshoot stays within the items in flight: at most every task's concurrent items.
    expect(st.usage.tokens).toBeLessThanOrEqual(budget + tasks * concurrency * perItem);
    expect(st.items.succeeded).toBe(st.usage.tokens / perItem);
    expect(st.items.pending).toBeGreaterThan(0);

    const human = await cli(["status", st.runId], dir);
    expect(human.stdout).toContain("budget_exhausted");
    expect(human.stdout).toMatch(/spend\s+\d+ tokens/);

    const again = await cli(["rerun", st.runId, "--local", "--json", "--budget-tokens", "100000"], dir);
    expect(again.code).toBe(0);
    const done = JSON.parse(again.stdout) as Status;
    expect(done.state).toBe("succeeded");
    expect(done.items).toEqual({ total: 200, succeeded: 200, failed: 0, pending: 0 });
    expect(done.usage.tokens).toBe(200 * perItem);
    expect(done.budgets.run?.tokens).toBe(100000);
    const keys = parseLines((await cli(["output", st.runId], dir)).stdout).map((l) => l.key);
    expect(new Set(keys).size).toBe(200);
  });

  it("a rerun without a raised budget launches nothing and stays budget_exhausted", async () => {
    const dir = tempDir();
    const r = await cli(["run", SLEEPY, "--local", "--json", "--budget-tokens", "300", "--arg", "count=40", "--arg", "sleepMs=5", "--arg", "tokens=100"], dir);
    const st = JSON.parse(r.stdout) as Status & { launches: unknown[] };
    expect(st.state).toBe("budget_exhausted");
    const again = await cli(["rerun", st.runId, "--local", "--json"], dir);
    expect(again.code).toBe(4);
    const after = JSON.parse(again.stdout) as Status & { launches: unknown[] };
    expect(after.state).toBe("budget_exhausted");
    expect(after.launches).toHaveLength(st.launches.length);
  });

  it("rejects a malformed budget", async () => {
    const r = await cli(["run", SLEEPY, "--local", "--budget-usd", "lots"], tempDir());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--budget-usd: expected an amount of dollars");
  });
});
