import { describe, expect, it } from "vitest";
import { keys } from "../../src/core/keys.js";
import { RunRecord } from "../../src/core/model.js";
import { planRun } from "../../src/orchestrator/plan.js";
import { readShard, readShardEntries } from "../../src/orchestrator/plan-read.js";
import { planFailedItems, ReplanConflict, type FailedItemRef } from "../../src/orchestrator/rerun.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { getJson, putJson } from "../../src/store/json.js";
import type { ObjectStore } from "../../src/store/port.js";
import { allKeys, planOptions, readBack, tempDir, tempStore, wrapStore } from "./plan-support.js";

const decoder = new TextDecoder();

function failed(i: number): FailedItemRef {
  return { i, key: `k${i}`, shard: `s${String(Math.floor(i / 10)).padStart(6, "0")}`, reason: "error" };
}

async function runOf(store: ObjectStore, runId: string): Promise<RunRecord> {
  return (await getJson(store, keys.run(runId), RunRecord))!.value;
}

async function planned(store: ObjectStore, count = 100): Promise<RunRecord> {
  return planRun(planOptions(store, { args: { count } }));
}

describe("planFailedItems", () => {
  it("writes the failed items into a new round, copied from their shards as planned, and commits it in run.json", async () => {
    const store = tempStore();
    const run = await planned(store);
    const before = await readBack(store, run);
    const result = await planFailedItems(store, run.runId, [failed(27), failed(23), failed(71)]);
    expect(result).toEqual({ round: { round: 1, firstShard: 10, shards: 1, items: 3, superseded: 3 }, shards: ["s000010"] });
    const after = await runOf(store, run.runId);
    expect(after.state).toBe("running");
    expect(after.plan).toMatchObject({ shardCount: 11, itemChunks: [0, 10], totalItems: 100 });
    expect(after.plan.rounds[1]).toEqual(result!.round);
    const items = await readShard(store, after, 10);
    // Byte for byte the lines they were planned with, in source order.
    const expected = [23, 27, 71].map((i) => before.find((l) => l.i === i)!);
    expect(decoder.decode(items.bytes)).toBe(expected.map((l) => JSON.stringify({ i: l.i, key: l.key, item: l.item }) + "\n").join(""));
    const entries = [];
    for await (const e of readShardEntries(store, after, 1)) entries.push(e);
    expect(entries).toEqual([{ id: "s000010", round: 1, count: 3, weight: 3, indices: [[23, 24], [27, 28], [71, 72]] }]);
  });

  it("re-plans items that failed again in a later round into the round after", async () => {
    const store = tempStore();
    const run = await planned(store);
    await planFailedItems(store, run.runId, [failed(5), failed(6)]);
    const again = await planFailedItems(store, run.runId, [{ i: 6, key: "k6", shard: "s000010", reason: "error" }]);
    expect(again!.round).toEqual({ round: 2, firstShard: 11, shards: 1, items: 1, superseded: 1 });
    const after = await runOf(store, run.runId);
    expect(after.plan.itemChunks).toEqual([0, 10, 11]);
    expect([...(await readBack(store, after))].filter((l) => l.shard >= 10).map((l) => [l.shard, l.i])).toEqual([
      [10, 5],
      [10, 6],
      [11, 6],
    ]);
  });

  it("cuts many failed items by the run's policy, and packs the new shards into items objects", async () => {
    const store = tempStore();
    const run = await planned(store, 500);
    const result = await planFailedItems(store, run.runId, Array.from({ length: 45 }, (_, n) => failed(n * 11)));
    expect(result!.shards).toEqual(["s000050", "s000051", "s000052", "s000053", "s000054"]);
    const after = await runOf(store, run.runId);
    expect(after.plan.itemChunks).toEqual([0, 50]);
    const lines = (await readBack(store, after)).filter((l) => l.shard >= 50);
    expect(lines.map((l) => l.i)).toEqual(Array.from({ length: 45 }, (_, n) => n * 11));
  });

  it("reads only what it needs, with range reads", async () => {
    const base = tempStore();
    const run = await planned(base, 3000);
    const store = wrapStore(base);
    await planFailedItems(store, run.runId, [failed(1234), failed(1239), failed(2501)]);
    // One items object per failed shard's chunk (read by range), plus run.json, the lock and
    // the plan round: never the whole plan.
    const itemReads = store.calls.get.filter((k) => k.includes("/items/"));
    expect(new Set(itemReads)).toEqual(new Set([keys.items(run.runId, 100), keys.items(run.runId, 200)]));
  });

  it("returns null for nothing to re-plan, and refuses a shard the run does not have or an item its shard does not hold", async () => {
    const store = tempStore();
    const run = await planned(store);
    const keysBefore = await allKeys(store);
    expect(await planFailedItems(store, run.runId, [])).toBeNull();
    await expect(planFailedItems(store, run.runId, [{ i: 1, key: "k1", shard: "s000099", reason: "error" }])).rejects.toThrow(/has no shard s000099/);
    await expect(planFailedItems(store, run.runId, [{ i: 55, key: "k55", shard: "s000001", reason: "error" }])).rejects.toThrow(/shard s000001 holds no item 55/);
    // Nothing was committed or left behind by the refusals.
    expect((await runOf(store, run.runId)).plan.rounds).toHaveLength(1);
    expect(await allKeys(store)).toEqual(keysBefore);
  });

  it("refuses items whose shard is damaged, naming the object", async () => {
    const store = tempStore();
    const run = await planned(store);
    const key = keys.items(run.runId, 0);
    const obj = await store.get(key);
    const damaged = obj!.bytes.slice();
    damaged[damaged.length - 5] = "9".charCodeAt(0) === damaged[damaged.length - 5] ? "8".charCodeAt(0) : "9".charCodeAt(0);
    await store.delete(key);
    await store.put(key, damaged);
    await expect(planFailedItems(store, run.runId, [failed(99)])).rejects.toThrow(new RegExp(`${key}: shard 9 fails its CRC32C check`));
  });
});

describe("planFailedItems: reruns at once", () => {
  it("two reruns of the same failures: one wins, the other gets a clear conflict, and no item is planned twice", async () => {
    const dir = tempDir("plan-store");
    const a = new FsObjectStore(dir);
    const b = new FsObjectStore(dir);
    const run = await planned(a);
    const list = [failed(3), failed(44), failed(45)];
    const results = await Promise.allSettled([planFailedItems(a, run.runId, list), planFailedItems(b, run.runId, list)]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(lost.reason).toBeInstanceOf(ReplanConflict);
    expect((lost.reason as Error).message).toMatch(/re-planned by another rerun meanwhile; nothing left to re-plan/);
    const after = await runOf(a, run.runId);
    expect(after.plan.rounds).toHaveLength(2);
    expect((await readBack(a, after)).filter((l) => l.shard >= 10).map((l) => l.i)).toEqual([3, 44, 45]);
  });

  it("two reruns of overlapping failures: both commit, and each item is re-planned once", async () => {
    const dir = tempDir("plan-store");
    const a = new FsObjectStore(dir);
    const b = new FsObjectStore(dir);
    const run = await planned(a);
    const results = await Promise.all([planFailedItems(a, run.runId, [failed(3), failed(44)]), planFailedItems(b, run.runId, [failed(44), failed(71)])]);
    expect(results.map((r) => r!.round.round).sort()).toEqual([1, 2]);
    const after = await runOf(a, run.runId);
    const replanned = (await readBack(a, after)).filter((l) => l.shard >= 10).map((l) => l.i);
    expect(replanned.sort((x, y) => x - y)).toEqual([3, 44, 71]);
  });

  it("waits for another rerun's lock, and gives up with a conflict when it is held too long", async () => {
    const store = tempStore();
    const run = await planned(store);
    await putJson(store, keys.replanLock(run.runId), { token: "other", at: Date.now() }, { ifGenerationMatch: 0 });
    await expect(planFailedItems(store, run.runId, [failed(1)], { waitMs: 300 })).rejects.toThrow(/another rerun is re-planning its failed items now; try again in a moment/);
  });

  it("takes over the lock of a rerun that died, and replaces the objects it left", async () => {
    const store = tempStore();
    const run = await planned(store);
    // A rerun that died after writing its round's first object, holding the lock.
    await putJson(store, keys.replanLock(run.runId), { token: "dead", at: Date.now() - 120_000 }, { ifGenerationMatch: 0 });
    await store.put(keys.items(run.runId, 10), "half of something", { ifGenerationMatch: 0 });
    const result = await planFailedItems(store, run.runId, [failed(8)]);
    expect(result!.shards).toEqual(["s000010"]);
    const items = await readShard(store, await runOf(store, run.runId), 10);
    expect(decoder.decode(items.bytes)).toMatch(/^\{"i":8,"key":"k8"/);
    expect(await store.get(keys.replanLock(run.runId))).toBeNull();
  });

  it("plans again over its own objects when run.json moved on meanwhile (a driver's state change)", async () => {
    const base = tempStore();
    const run = await planned(base);
    let moved = false;
    const store = wrapStore(base, {
      beforePut: async (_, key) => {
        if (key !== keys.run(run.runId) || moved) return;
        moved = true;
        const current = (await getJson(base, key, RunRecord))!;
        await putJson(base, key, { ...current.value, state: "partial" }, { ifGenerationMatch: current.generation });
      },
    });
    const result = await planFailedItems(store, run.runId, [failed(12)]);
    expect(result!.round.round).toBe(1);
    const after = await runOf(base, run.runId);
    expect(after.plan.rounds).toHaveLength(2);
    expect((await readShard(base, after, 10)).location.count).toBe(1);
  });
});
