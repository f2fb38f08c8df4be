/**
 * One item in a hundred is poison (it exits its process): the run of 5,000 items still finishes
 * partial, with exactly those 50 items in the dead letter, every other item once in the output,
 * and at most 10% of item executions wasted (counted from an append-only log of executions).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { keys } from "../../../src/core/keys.js";
import { FsObjectStore } from "../../../src/store/fs.js";
import { ROOT, cli, parseLines, tempDir } from "../helpers.js";

const POISON = join(ROOT, "test", "fixtures", "jobs", "poison.ts");

describe("1% poison items among 5,000", () => {
  it("ends partial with exactly the poison items dead-lettered, the rest once, executions ÷ items ≤ 1.10", async () => {
    const dir = tempDir();
    const log = join(dir, "executions.jsonl");
    const count = 5000;
    const bad = Array.from({ length: 50 }, (_, k) => 37 + k * 100);
    const r = await cli(
      ["run", POISON, "--local", "--json", "--tasks", "4", "--items-per-shard", "100", "--max-retries", "10", "--max-launches", "10", "--arg", `count=${count}`, "--arg", "sleepMs=100", "--arg", `bad=${bad.join(",")}`, "--arg", "mode=exit", "--arg", `log=${log}`],
      dir,
    );
    expect(r.stderr).not.toContain("internal error");
    const status = JSON.parse(r.stdout) as { runId: string; state: string; items: Record<string, number> };
    expect(status.state).toBe("partial");
    expect(status.items).toEqual({ total: count, succeeded: count - 50, failed: 50, pending: 0 });
    const store = new FsObjectStore(join(dir, ".shardrun"));
    const dead = parseLines<{ key: string; reason: string }>(new TextDecoder().decode((await store.get(keys.deadLetter(status.runId)))!.bytes));
    expect(dead.map((d) => d.key).sort()).toEqual(bad.map((n) => `item-${n}`).sort());
    expect(new Set(dead.map((d) => d.reason))).toEqual(new Set(["crashed"]));
    const out = parseLines((await cli(["output", status.runId], dir)).stdout).map((l) => l.key);
    expect(out).toHaveLength(count - 50);
    expect(new Set(out).size).toBe(count - 50);
    const executions = readFileSync(log, "utf8").split("\n").filter(Boolean).length;
    expect(executions / count).toBeLessThanOrEqual(1.1);
  }, 300_000);
});
