/** Failure handling across a run: dead letter, failure tolerance, redrive after a fix, versions. */
import { rmSync, symlinkSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FsObjectStore } from "../../src/store/fs.js";
import { ROOT, SLEEPY, cli, parseLines, tempDir } from "./helpers.js";

interface Status {
  runId: string;
  state: string;
  reason?: string;
  items: { total: number; succeeded: number; failed: number; pending: number };
}

async function deadLetter(dir: string, runId: string): Promise<{ key: string; error: string; attempts: number }[]> {
  const obj = await new FsObjectStore(join(dir, ".shardrun")).get(`runs/${runId}/dead-letter.jsonl`);
  return parseLines(Buffer.from(obj!.bytes).toString("utf8"));
}

describe("failed items", () => {
  it("5% failing items: the run ends partial with exactly those in the dead letter; a redrive after the fix completes them", async () => {
    const dir = tempDir();
    const marker = join(dir, "broken");
    writeFileSync(marker, "the cause of the failures");
    const r = await cli(["run", SLEEPY, "--local", "--json", "--tasks", "2", "--arg", "count=100", "--arg", "sleepMs=2", "--arg", "failEvery=20", "--arg", `failIfExists=${marker}`], dir);
    expect(r.code).toBe(3);
    const st = JSON.parse(r.stdout) as Status;
    expect(st.state).toBe("partial");
    expect(st.items).toEqual({ total: 100, succeeded: 95, failed: 5, pending: 0 });
    const dead = await deadLetter(dir, st.runId);
    expect(dead.map((d) => d.key).sort()).toEqual(["item-0", "item-20", "item-40", "item-60", "item-80"]);
    for (const d of dead) expect(d.error).toContain("fails");

    rmSync(marker); // fix the cause
    const again = await cli(["rerun", st.runId, "--local", "--failed-items", "--json"], dir);
    expect(again.code).toBe(0);
    const after = JSON.parse(again.stdout) as Status;
    expect(after.state).toBe("succeeded");
    expect(after.items).toEqual({ total: 100, succeeded: 100, failed: 0, pending: 0 });
    expect(await deadLetter(dir, st.runId)).toEqual([]);
    const keys = parseLines((await cli(["output", st.runId], dir)).stdout).map((l) => l.key);
    expect(keys).toHaveLength(100);
    expect(new Set(keys).size).toBe(100);
  });

  it("with a 1% tolerance the same failures fail the run early", async () => {
    const dir = tempDir();
    const r = await cli(
      ["run", SLEEPY, "--local", "--json", "--tasks", "1", "--max-failed-items", "1%", "--arg", "count=300", "--arg", "sleepMs=40", "--arg", "failEvery=20"],
      dir,
    );
    expect(r.code).toBe(4);
    const st = JSON.parse(r.stdout) as Status;
    expect(st.state).toBe("failed");
    expect(st.reason).toContain("failure tolerance exceeded");
    expect(st.items.failed).toBeGreaterThan(3);
    expect(st.items.pending).toBeGreaterThan(0); // it stopped instead of working through the rest
  });

  it("rejects a malformed tolerance", async () => {
    const r = await cli(["run", SLEEPY, "--local", "--max-failed-items", "lots"], tempDir());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--max-failed-items: expected a count like 5 or a percentage like 2%");
  });

  it("rerun runs the code the run recorded, even after the job changed; --upgrade runs the job as it is now", async () => {
    const dir = tempDir();
    const job = join(dir, "versioned.mjs");
    const source = (failing: boolean) => `
import { z } from "zod";
import { defineJob, NonRetriableError } from ${JSON.stringify(pathToFileURL(join(ROOT, "dist/src/index.js")).href)};
export default defineJob({
  name: "versioned",
  item: z.object({ n: z.number() }),
  source: () => [{ n: 1 }, { n: 2 }, { n: 3 }],
  run: (item) => { if (${failing} && item.n === 2) throw new NonRetriableError("v1 cannot do 2"); return { n: item.n }; },
});
`;
    writeFileSync(job, source(true));
    // The module imports zod: let it resolve from the repository's node_modules.
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
    const r = await cli(["run", job, "--local", "--json"], dir);
    expect(r.code).toBe(3);
    const st = JSON.parse(r.stdout) as Status;

    writeFileSync(job, source(false));
    const recorded = await cli(["rerun", st.runId, "--local", "--failed-items", "--reason", "non_retriable", "--json"], dir);
    expect(recorded.code).toBe(3); // the recorded v1 still cannot do 2
    expect((JSON.parse(recorded.stdout) as Status).items).toEqual({ total: 3, succeeded: 2, failed: 1, pending: 0 });
    expect((await deadLetter(dir, st.runId)).map((d) => d.error)).toEqual(["v1 cannot do 2"]);

    const upgraded = await cli(["rerun", st.runId, "--local", "--failed-items", "--reason", "non_retriable", "--upgrade", "--json"], dir);
    expect(upgraded.code).toBe(0);
    expect((JSON.parse(upgraded.stdout) as Status).items).toEqual({ total: 3, succeeded: 3, failed: 0, pending: 0 });
  });
});
