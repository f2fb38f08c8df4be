/**
 * Poison items (issue 9): an item that kills its task process on every attempt — by exiting, by
 * running it out of memory, by hanging past its time limit, or by blocking its event loop — must
 * not stall its shard. The run ends partial with exactly that item in the dead letter and every
 * other item once, within a bounded number of launches.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { keys } from "../../../src/core/keys.js";
import { FsObjectStore } from "../../../src/store/fs.js";
import { ROOT, cli, parseLines, tempDir } from "../helpers.js";

const POISON = join(ROOT, "test", "fixtures", "jobs", "poison.ts");

interface Status {
  runId: string;
  state: string;
  items: Record<string, number>;
  launches: unknown[];
}

const cases: { mode: string; reason: string; flags: string[]; env?: Record<string, string> }[] = [
  { mode: "exit", reason: "crashed", flags: [] },
  { mode: "oom", reason: "crashed", flags: [], env: { NODE_OPTIONS: "--max-old-space-size=64" } },
  { mode: "hang", reason: "timeout", flags: ["--item-timeout", "1"] },
  { mode: "spin", reason: "crashed", flags: ["--item-timeout", "1"] },
];

describe("poison items", () => {
  for (const c of cases) {
    it(`an item that ${c.mode === "exit" ? "exits its process" : c.mode === "oom" ? "runs its process out of memory" : c.mode === "hang" ? "hangs and ignores its abort" : "spins"} is dead-lettered alone; the rest succeed once`, async () => {
      const dir = tempDir();
      const r = await cli(
        ["run", POISON, "--local", "--json", "--shards", "2", "--tasks", "1", "--max-retries", "3", "--max-launches", "3", "--task-timeout", "60", ...c.flags, "--arg", "count=10", "--arg", "bad=3", "--arg", `mode=${c.mode}`],
        dir,
        c.env ?? {},
      );
      expect(r.stderr).not.toContain("internal error");
      const status = JSON.parse(r.stdout) as Status;
      expect(status.state).toBe("partial");
      expect(r.code).toBe(3);
      expect(status.items).toEqual({ total: 10, succeeded: 9, failed: 1, pending: 0 });
      expect(status.launches.length).toBeLessThanOrEqual(3);
      const out = parseLines((await cli(["output", status.runId], dir)).stdout).map((l) => l.key);
      expect(out.sort()).toEqual(Array.from({ length: 10 }, (_, n) => `item-${n}`).filter((k) => k !== "item-3").sort());
      const store = new FsObjectStore(join(dir, ".shardrun"));
      const dead = parseLines<{ key: string; reason: string; attempts: number; error: string }>(new TextDecoder().decode((await store.get(keys.deadLetter(status.runId)))!.bytes));
      expect(dead).toEqual([expect.objectContaining({ key: "item-3", reason: c.reason })]);
    });
  }
});
