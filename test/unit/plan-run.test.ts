import { describe, expect, it } from "vitest";
import { z } from "zod";
import { InvalidInputError } from "../../src/core/errors.js";
import { defineJob } from "../../src/core/job.js";
import { keys } from "../../src/core/keys.js";
import { PlanLimitExceeded } from "../../src/core/plan.js";
import { PlanCancelled, PlanFailed, planRun } from "../../src/orchestrator/plan.js";
import { readShardEntries } from "../../src/orchestrator/plan-read.js";
import { cancelPlanning, listRuns } from "../../src/orchestrator/runs-index.js";
import { FsObjectStore } from "../../src/store/fs.js";
import { allKeys, asJob, entries, numberedDefinition, planOptions, readBack, SETTINGS, tempDir, tempStore, wrapStore } from "./plan-support.js";

const decoder = new TextDecoder();

describe("planRun: the layout it commits", () => {
  it("packs 250 shards into 3 items objects, writes the round's entries and a small run.json last, and indexes the run", async () => {
    const store = wrapStore(tempStore());
    const run = await planRun(planOptions(store, { args: { count: 2500 } }));
    expect(run.v).toBe(2);
    expect(run.plan).toMatchObject({ order: "source", totalItems: 2500, shardCount: 250, itemChunks: [0, 100, 200], rounds: [{ round: 0, firstShard: 0, shards: 250, items: 2500, superseded: 0 }] });
    const puts = store.calls.put;
    expect(puts.slice(0, 3)).toEqual([keys.items(run.runId, 0), keys.items(run.runId, 100), keys.items(run.runId, 200)]);
    expect(puts).toContain(keys.planRound(run.runId, 0));
    // run.json is the commit point: written after every object of the plan, then the index entry.
    // After the commit point: the live marker (reconcile drives a planned run), then the index entry.
    expect(puts.indexOf(keys.run(run.runId))).toBe(puts.length - 3);
    expect(puts[puts.length - 2]).toBe(keys.liveRun(run.runId));
    expect(puts[puts.length - 1]).toMatch(/^index\/runs\/\d{8}\//);
    const runJson = await store.get(keys.run(run.runId));
    expect(runJson!.bytes.byteLength).toBeLessThan(1500);
    expect((await listRuns(store)).map((r) => [r.runId, r.state])).toEqual([[run.runId, "planned"]]);
  });

  it("reads back every item once, in order, with its key and its source index", async () => {
    const store = tempStore();
    const run = await planRun(planOptions(store, { args: { count: 1234 } }));
    const items = await readBack(store, run);
    expect(items.map((l) => l.i)).toEqual(Array.from({ length: 1234 }, (_, i) => i));
    expect(items[17]).toEqual({ shard: 1, i: 17, key: "k17", item: { n: 17, cost: (17 * 7919) % 101 } });
    const shards = [];
    for await (const e of readShardEntries(store, run)) shards.push(e);
    expect(shards).toHaveLength(124);
    expect(shards[123]).toEqual({ id: "s000123", round: 0, count: 4, weight: 4, indices: [[1230, 1234]] });
  });

  it("plans an item that fails its schema (it fails when a task reaches it), keyed by key() on the raw item", async () => {
    const store = tempStore();
    const run = await planRun(planOptions(store, { args: { count: 5, badAt: 2 } }));
    const items = await readBack(store, run);
    expect(items[2]).toMatchObject({ i: 2, key: "knot a number", item: { n: "not a number", cost: 1 } });
  });

  it("records the settings it was given, over the job's", async () => {
    const store = tempStore();
    const run = await planRun(planOptions(store, { args: { count: 30 }, settings: { ...SETTINGS, maxFailedItems: { percent: 5 }, runBudget: { tokens: 1000 }, tasks: 2, itemTimeoutMs: 9000 } }));
    expect(run.settings).toMatchObject({ maxFailedItems: { percent: 5 }, budgets: { run: { tokens: 1000 } }, tasks: 2, parallelism: 2, itemTimeoutMs: 9000, crashLimit: 2, concurrency: 4 });
  });
});

describe("planRun: heaviest first", () => {
  it("puts the heaviest items in shard 0 and each shard's heaviest first; i stays the source index", async () => {
    const store = tempStore();
    const job = defineJob({ ...numberedDefinition, order: "heaviest-first", cost: (item: { cost: number }) => item.cost });
    const run = await planRun(planOptions(store, { job: asJob(job), args: { count: 300 } }));
    expect(run.plan.order).toBe("heaviest-first");
    const items = await readBack(store, run);
    const costs = items.map((l) => (l.item as { cost: number }).cost);
    // Sorted by cost, heaviest first; equal costs keep the source order.
    const expected = Array.from({ length: 300 }, (_, i) => i).sort((a, b) => ((b * 7919) % 101) - ((a * 7919) % 101) || a - b);
    expect(items.map((l) => l.i)).toEqual(expected);
    expect(costs[0]).toBe(100);
    for (let p = 1; p < costs.length; p++) expect(costs[p]).toBeLessThanOrEqual(costs[p - 1]!);
    expect(new Set(items.map((l) => l.i)).size).toBe(300);
    // The entries name each shard's source indices, in its order.
    const first = await readShardEntries(store, run, 0).next();
    expect(first.value!.indices.flatMap(([a, b]: [number, number]) => Array.from({ length: b - a }, (_, k) => a + k))).toEqual(expected.slice(0, 10));
  });

  it("uses weight as the cost when the job gives none, and order from the options over the job's", async () => {
    const store = tempStore();
    const job = defineJob({ ...numberedDefinition, weight: (item: { n: number }) => item.n % 5 });
    const run = await planRun(planOptions(store, { job: asJob(job), order: "heaviest-first", args: { count: 20 } }));
    const items = await readBack(store, run);
    expect(items.slice(0, 5).map((l) => l.i)).toEqual([4, 9, 14, 19, 3]);
  });

  it("assembles objects over several passes when the reordered items exceed one window", async () => {
    const store = tempStore();
    const job = defineJob({
      ...numberedDefinition,
      item: z.object({ n: z.number(), pad: z.string() }),
      source: function* () {
        // ~30 MB of items: more than one 16 MiB window.
        for (let n = 0; n < 3000; n++) yield { n, pad: "x".repeat(10_000) };
      },
      args: undefined,
      order: "heaviest-first",
      cost: (item: { n: number }) => item.n % 7,
      shard: { itemsPerShard: 100 },
    });
    const run = await planRun(planOptions(store, { job: asJob(job) }));
    const items = await readBack(store, run);
    expect(items).toHaveLength(3000);
    expect(items.slice(0, 3).map((l) => l.i)).toEqual([6, 13, 20]);
    expect(new Set(items.map((l) => l.i)).size).toBe(3000);
    expect(run.plan.itemChunks.length).toBeGreaterThan(3);
  }, 60_000);
});

describe("planRun: checks before the first write", () => {
  const badCases: [string, Parameters<typeof planOptions>[1], RegExp][] = [
    ["a failure tolerance above 100%", { settings: { ...SETTINGS, maxFailedItems: { percent: 150 } } }, /run settings: maxFailedItems\.percent/],
    ["a lease shorter than 3 s", { settings: { ...SETTINGS, leaseTtlMs: 100 } }, /run settings: leaseTtlMs/],
    ["a misspelled argument", { args: { cuont: 5 } }, /has no argument "cuont"; its arguments: count, dupAt, badAt/],
    ["an argument of the wrong type", { args: { count: "many" } }, /arguments: arg\.count/],
    ["a shard count over the limit", { policy: { count: 500 }, limits: { maxShards: 100 } }, /asks for 500 shards, over the limit maxShards=100/],
    ["a bad policy", { policy: { itemsPerShard: 0 } as never }, /shard policy: itemsPerShard/],
    ["a limit out of range", { limits: { maxShards: 2_000_000 } }, /run limits: maxShards/],
    ["a bad run id", { runId: "../etc" }, /run id "\.\.\/etc" is not valid/],
  ];
  for (const [what, over, message] of badCases) {
    it(`refuses ${what} with one line, without reading the source or writing anything`, async () => {
      const store = wrapStore(tempStore());
      let pulled = 0;
      const source = (function* () {
        for (;;) yield { n: pulled++, cost: 1 };
      })();
      await expect(planRun(planOptions(store, { source, ...over }))).rejects.toThrow(message);
      expect(pulled).toBe(0);
      expect(store.calls.put).toEqual([]);
      expect(await allKeys(store)).toEqual([]);
    });
  }

  it("refuses a run id that exists", async () => {
    const store = tempStore();
    const run = await planRun(planOptions(store, { args: { count: 3 } }));
    await expect(planRun(planOptions(store, { args: { count: 3 }, runId: run.runId }))).rejects.toThrow(`run ${run.runId} already exists`);
  });
});

describe("planRun: limits", () => {
  it("stops at once past maxItems, having written nothing, naming the limit and how to raise it", async () => {
    const store = wrapStore(tempStore());
    const spool = tempDir("spool");
    let pulled = 0;
    const source = (function* () {
      for (;;) yield { n: pulled++, cost: 1 };
    })();
    const error = await planRun(planOptions(store, { source, limits: { maxItems: 1000 }, spoolDir: spool })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanLimitExceeded);
    expect((error as Error).message).toBe(
      "the plan has more than 1000 items, over the limit maxItems=1000: raise it for this run (setting maxItems) or for every run (SHARDRUN_MAX_ITEMS), or give the job fewer items",
    );
    expect(pulled).toBe(1001);
    expect(store.calls.put).toEqual([]);
    expect(entries(spool)).toEqual([]);
  });

  it("stops at once past maxShards as the shards are cut, having written nothing", async () => {
    const store = wrapStore(tempStore());
    let pulled = 0;
    const source = (function* () {
      for (;;) yield { n: pulled++, cost: 1 };
    })();
    await expect(planRun(planOptions(store, { source, limits: { maxShards: 50 } }))).rejects.toThrow(/needs more than 50 shards, over the limit maxShards=50/);
    // 10 items a shard: the 51st shard is closed by item 510.
    expect(pulled).toBe(510);
    expect(store.calls.put).toEqual([]);
  });

  it("takes limits from the environment, and a run's own over them", async () => {
    const store = tempStore();
    await expect(planRun(planOptions(store, { args: { count: 20 }, env: { SHARDRUN_MAX_ITEMS: "10" } }))).rejects.toThrow(/maxItems=10/);
    const run = await planRun(planOptions(store, { args: { count: 20 }, env: { SHARDRUN_MAX_ITEMS: "10" }, limits: { maxItems: 20 } }));
    expect(run.plan.totalItems).toBe(20);
  });
});

describe("planRun: duplicate keys", () => {
  it("are refused, naming both positions, with nothing written", async () => {
    const store = wrapStore(tempStore());
    await expect(planRun(planOptions(store, { args: { count: 50, dupAt: 37 } }))).rejects.toThrow(
      new InvalidInputError('item key "k3" appears twice, at items 3 and 37 of job "numbered": keys must be unique in a run (see the job\'s key())'),
    );
    expect(store.calls.put).toEqual([]);
  });

  it("are found among 200,000 keys, and distinct keys pass", async () => {
    const store = tempStore();
    await expect(planRun(planOptions(store, { args: { count: 200_000, dupAt: 199_999 } }))).rejects.toThrow(/at items 3 and 199999/);
    const run = await planRun(planOptions(store, { args: { count: 200_000 } }));
    expect(run.plan.totalItems).toBe(200_000);
  }, 60_000);

  it("are compared as keys, not by hash: keys that differ in non-ASCII text both pass", async () => {
    const store = tempStore();
    const job = defineJob({ ...numberedDefinition, args: undefined, source: () => [{ n: 1, cost: 1 }, { n: 2, cost: 1 }], key: (item: { n: number }) => (item.n === 1 ? "café" : "cafe\u0301") });
    const run = await planRun(planOptions(store, { job: asJob(job) }));
    expect((await readBack(store, run)).map((l) => l.key)).toEqual(["café", "cafe\u0301"]);
  });
});

describe("planRun: failures leave nothing listed and remove what they wrote", () => {
  it("a store that fails after 3 writes: the plan removes the objects it wrote; the error names the store and the object", async () => {
    const store = tempStore();
    const failing = wrapStore(store, { failPutAt: 4 });
    const error = await planRun(planOptions(failing, { args: { count: 5000 } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanFailed);
    expect((error as Error).message).toMatch(new RegExp(`^planning run \\S+: the store ${store.url.replaceAll("/", "\\/")} refused runs\\/\\S+\\/items\\/\\d{6}\\.jsonl: connection reset by peer; the plan's objects were removed$`));
    expect(await allKeys(store)).toEqual([]);
    expect(await listRuns(store)).toEqual([]);
    // Every object that was written was deleted.
    expect(failing.calls.delete.length).toBeGreaterThanOrEqual(3);
  });

  it("a full store: one line saying which store is full and what to do", async () => {
    const store = tempStore();
    const full = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    const failing = wrapStore(store, { failPutAt: 2, failWith: () => full });
    await expect(planRun(planOptions(failing, { args: { count: 3000 } }))).rejects.toThrow(
      new RegExp(`the store ${store.url.replaceAll("/", "\\/")} is full \\(writing runs/.*: ENOSPC: no space left on device, write\\): free space there and plan again; the plan's objects were removed$`),
    );
    expect(await allKeys(store)).toEqual([]);
  });

  it("a failed commit (run.json refused) removes every object of the plan", async () => {
    const store = tempStore();
    const failing = wrapStore(store, { beforePut: (_, key) => { if (key.endsWith("/run.json")) throw new Error("503 backend error"); } });
    await expect(planRun(planOptions(failing, { args: { count: 500 } }))).rejects.toThrow(/refused runs\/\S+\/run\.json: 503 backend error/);
    expect(await allKeys(store)).toEqual([]);
  });

  it("a failure that also stops the cleanup says what was left, and still nothing is listed", async () => {
    const store = tempStore();
    let broken = false;
    const failing = wrapStore(store, { beforePut: (n) => { if (n === 3) broken = true; if (broken) throw new Error("network unreachable"); } });
    const deleting = { ...failing, url: failing.url, get: failing.get, list: failing.list, put: failing.put, delete: async () => { throw new Error("network unreachable"); } };
    const error = await planRun(planOptions(deleting, { args: { count: 3000 } })).catch((e: unknown) => e);
    // Two writes succeeded; the third failed without an answer, so it may have landed too.
    expect((error as Error).message).toMatch(/refused runs\/\S+: network unreachable; 3 of the objects it wrote could not be removed \(under runs\/\S+\/; no reader lists them\)$/);
    expect((error as PlanFailed).left).toHaveLength(3);
    expect(await listRuns(store)).toEqual([]);
  });

  it("a source that throws midway: the job's error, nothing left, the spool folder removed", async () => {
    const store = tempStore();
    const spool = tempDir("spool");
    const job = defineJob({ ...numberedDefinition, args: undefined, *source() {
      for (let n = 0; n < 100; n++) yield { n, cost: 1 };
      throw new Error("database went away");
    } });
    await expect(planRun(planOptions(store, { job: asJob(job), spoolDir: spool }))).rejects.toThrow('job "numbered" source failed after 100 items: database went away');
    expect(await allKeys(store)).toEqual([]);
    expect(entries(spool)).toEqual([]);
  });

  it("an AbortSignal midway (while writing): PlanCancelled, and what it wrote is removed", async () => {
    const store = tempStore();
    const controller = new AbortController();
    const failing = wrapStore(store, { beforePut: (n) => { if (n === 3) controller.abort(); } });
    const error = await planRun(planOptions(failing, { args: { count: 5000 }, signal: controller.signal })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanCancelled);
    expect(await allKeys(store)).toEqual([]);
  });

  it("an AbortSignal while the source is read stops the source (it is closed)", async () => {
    const store = tempStore();
    const controller = new AbortController();
    let closed = false;
    const source = (function* () {
      try {
        for (let n = 0; ; n++) {
          if (n === 50) controller.abort();
          yield { n, cost: 1 };
        }
      } finally {
        closed = true;
      }
    })();
    await expect(planRun(planOptions(store, { source, signal: controller.signal }))).rejects.toBeInstanceOf(PlanCancelled);
    expect(closed).toBe(true);
    expect(await allKeys(store)).toEqual([]);
  });
});

describe("planRun: announced runs", () => {
  it("is listed as planning while it plans, then as planned with its items", async () => {
    const store = tempStore();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const atGate = new Promise<void>((r) => (reached = r));
    const source = (async function* () {
      for (let n = 0; n < 40; n++) {
        if (n === 20) {
          reached();
          await gate;
        }
        yield { n, cost: 1 };
      }
    })();
    const planning = planRun(planOptions(store, { source, announce: true }));
    await atGate;
    const during = await listRuns(store);
    expect(during).toHaveLength(1);
    expect(during[0]).toMatchObject({ state: "planning", items: 0, job: "numbered" });
    release();
    const run = await planning;
    expect((await listRuns(store)).map((r) => [r.runId, r.state, (r as { items?: number }).items])).toEqual([[run.runId, "planned", 40]]);
  });

  it("is cancelled from another process through its index entry: it stops before its commit and removes everything", async () => {
    const dir = tempDir("plan-store");
    const store = new FsObjectStore(dir);
    const other = new FsObjectStore(dir);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const atGate = new Promise<void>((r) => (reached = r));
    const source = (async function* () {
      for (let n = 0; n < 100; n++) {
        if (n === 50) {
          reached();
          await gate;
        }
        yield { n, cost: 1 };
      }
    })();
    const planning = planRun(planOptions(store, { source, announce: true }));
    await atGate;
    const runId = (await listRuns(other))[0]!.runId;
    expect(await cancelPlanning(other, runId)).toBe(true);
    release();
    await expect(planning).rejects.toBeInstanceOf(PlanCancelled);
    // Only the marker that listRuns leaves once per store (see runs-index.test.ts) is there.
    expect(await allKeys(other)).toEqual([keys.runIndexComplete()]);
    expect(await cancelPlanning(other, runId)).toBe(false);
  });

  it("a failed announced plan removes its entry too", async () => {
    const store = tempStore();
    await expect(planRun(planOptions(store, { args: { count: 50, dupAt: 20 }, announce: true }))).rejects.toThrow(/appears twice/);
    expect(await allKeys(store)).toEqual([]);
  });
});

describe("planRun: progress", () => {
  it("reports reading, then writing", async () => {
    const store = tempStore();
    const seen: string[] = [];
    await planRun(planOptions(store, { args: { count: 9000 }, onProgress: (p) => seen.push(p.phase) }));
    expect(seen[0]).toBe("read");
    expect(seen[seen.length - 1]).toBe("write");
    expect(seen.indexOf("write")).toBeGreaterThan(seen.lastIndexOf("read"));
  });

  it("run.json stays small whatever the number of shards", async () => {
    const store = tempStore();
    const run = await planRun(planOptions(store, { args: { count: 20_000 }, policy: { itemsPerShard: 1 } }));
    expect(run.plan.shardCount).toBe(20_000);
    expect(decoder.decode((await store.get(keys.run(run.runId)))!.bytes).length).toBeLessThan(5000);
  }, 60_000);
});
