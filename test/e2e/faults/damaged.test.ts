/**
 * Damaged objects (issue 9): a truncated output part, a checkpoint that claims more than its shard
 * holds, and damaged packed items are each detected and named; `rerun --repair` runs exactly the
 * items involved again, and they end up once in the output.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { keys } from "../../../src/core/keys.js";
import { Checkpoint } from "../../../src/core/model.js";
import { FsObjectStore } from "../../../src/store/fs.js";
import { getJson, putJson } from "../../../src/store/json.js";
import { prepareJob, resolveJob } from "../../../src/config/jobs.js";
import { planRun } from "../../../src/orchestrator/plan.js";
import { ROOT, SLEEPY, cli, parseLines, tempDir } from "../helpers.js";

interface Status {
  runId: string;
  state: string;
  reason?: string;
  items: Record<string, number>;
  launches: unknown[];
}

const expectedKeys = (n: number) => Array.from({ length: n }, (_, k) => `item-${k}`).sort();

/** The newest generation file of a key in the fs store (for damaging it in place, as a disk would). */
async function generationFile(dir: string, key: string, store: FsObjectStore): Promise<string> {
  const obj = await store.get(key);
  return join(dir, ".shardrun", `${key}@`, obj!.generation);
}

async function succeededRun(dir: string, count: number): Promise<string> {
  const r = await cli(["run", SLEEPY, "--local", "--json", "--tasks", "2", "--items-per-shard", "5", "--arg", `count=${count}`, "--arg", "sleepMs=1"], dir);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as Status).runId;
}

describe("damaged objects", () => {
  it("a truncated output part: output fails naming it and prints no broken line; verify names it; repair reruns exactly its items", async () => {
    const dir = tempDir();
    const runId = await succeededRun(dir, 20);
    const store = new FsObjectStore(join(dir, ".shardrun"));
    const cp = (await getJson(store, keys.checkpoint(runId, "s000001"), Checkpoint))!.value;
    const part = cp.parts[0]!;
    const file = await generationFile(dir, keys.part(runId, "s000001", part.name), store);
    const bytes = (await store.get(keys.part(runId, "s000001", part.name)))!.bytes;
    writeFileSync(file, Buffer.concat([Buffer.from("D"), Buffer.from(bytes.subarray(0, Math.floor(bytes.length / 2)))]));

    const out = await cli(["output", runId], dir);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(keys.part(runId, "s000001", part.name));
    for (const line of out.stdout.split("\n").filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();

    const verify = await cli(["verify", runId, "--json"], dir);
    expect(verify.code).toBe(1);
    const report = JSON.parse(verify.stdout) as { problems: { object: string; repairable: boolean }[] };
    expect(report.problems).toEqual([expect.objectContaining({ object: keys.part(runId, "s000001", part.name), repairable: true })]);

    const repaired = await cli(["rerun", runId, "--local", "--repair", "--json"], dir);
    expect(repaired.code).toBe(0);
    const after = JSON.parse(repaired.stdout) as Status & { executions: number };
    expect(after.items).toEqual({ total: 20, succeeded: 20, failed: 0, pending: 0 });
    // Exactly the truncated part's items ran again.
    expect(after.executions).toBe(20 + part.count);
    const keysOut = parseLines((await cli(["output", runId], dir)).stdout).map((l) => l.key);
    expect(keysOut.sort()).toEqual(expectedKeys(20));
    expect((await cli(["verify", runId], dir)).code).toBe(0);
  });

  it("a checkpoint whose done covers [0, 500] of a 5-item shard: verify names it, the run is not counted from it, and repair rebuilds it from its parts", async () => {
    const dir = tempDir();
    const runId = await succeededRun(dir, 10);
    const store = new FsObjectStore(join(dir, ".shardrun"));
    const cur = (await getJson(store, keys.checkpoint(runId, "s000000"), Checkpoint))!;
    // Damage: the checkpoint claims everything, and has lost one of its parts' names.
    const lying: Checkpoint = { ...cur.value, done: [[0, 500]], parts: cur.value.parts.slice(0, -1) };
    await putJson(store, keys.checkpoint(runId, "s000000"), lying, { ifGenerationMatch: cur.generation });

    const verify = await cli(["verify", runId, "--json"], dir);
    expect(verify.code).toBe(1);
    const report = JSON.parse(verify.stdout) as { problems: { object: string; problem: string }[] };
    expect(report.problems.some((p) => p.object === keys.checkpoint(runId, "s000000") && p.problem.includes("outside the shard's 5 items"))).toBe(true);

    const repaired = await cli(["rerun", runId, "--local", "--repair", "--json"], dir);
    expect(repaired.code).toBe(0);
    expect((JSON.parse(repaired.stdout) as Status).items).toEqual({ total: 10, succeeded: 10, failed: 0, pending: 0 });
    const keysOut = parseLines((await cli(["output", runId], dir)).stdout).map((l) => l.key);
    expect(keysOut.sort()).toEqual(expectedKeys(10));
    expect((await cli(["verify", runId], dir)).code).toBe(0);
  });

  it("damaged packed items fail their shard at once with the reason, without burning launches", async () => {
    const dir = tempDir();
    const store = new FsObjectStore(join(dir, ".shardrun"));
    const prepared = await prepareJob(resolveJob(SLEEPY, ROOT));
    const run = await planRun({
      store,
      job: prepared.job,
      module: prepared.module,
      version: prepared.version,
      bundle: { key: prepared.key, bytes: prepared.bundle.bytes },
      args: { count: "10", sleepMs: "1" },
      policy: { itemsPerShard: 5 },
      settings: { leaseTtlMs: 30_000, taskTimeoutSeconds: 600, maxRetries: 2, maxLaunches: 3, tasks: 1 },
      trigger: "test",
    });
    // Flip a byte inside shard 1's items, as a damaged disk or a bad copy would.
    const key = keys.items(run.runId, 0);
    const whole = Buffer.from((await store.get(key))!.bytes);
    const nl = whole.indexOf(0x0a);
    const header = JSON.parse(whole.subarray(0, nl).toString()) as { shards: [number, number, number, number, string][] };
    const [, offset] = header.shards.find((e) => e[0] === 1)!;
    whole[nl + 1 + offset + 3] = 0x23;
    writeFileSync(await generationFile(dir, key, store), Buffer.concat([Buffer.from("D"), whole]));

    const r = await cli(["rerun", run.runId, "--local", "--json"], dir);
    expect(r.stderr).not.toContain("internal error");
    const status = JSON.parse(r.stdout) as Status;
    expect(status.state).toBe("partial");
    expect(status.items).toEqual({ total: 10, succeeded: 5, failed: 5, pending: 0 });
    expect(status.launches).toHaveLength(1);
    const dead = parseLines<{ reason: string; error: string; shard: string }>(new TextDecoder().decode((await store.get(keys.deadLetter(run.runId)))!.bytes));
    expect(dead).toHaveLength(5);
    for (const d of dead) expect(d).toMatchObject({ reason: "corrupt", shard: "s000001", error: expect.stringContaining(key) });
  });
});
