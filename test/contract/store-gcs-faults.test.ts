/**
 * The gcs store's retries keep the contract when requests fail: these run the key parts of the
 * contract (create-only races, compare-and-swap without lost or doubled updates, conditional
 * replace and delete, reads and lists) through a proxy that breaks about a quarter of requests.
 * Only conditioned writes are used, since an unconditional one is (rightly) not retried.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GcsObjectStore, type GcsObjectStoreOptions } from "../../src/store/gcs.js";
import { listAll } from "../../src/store/port.js";
import { FaultProxy, findFakeGcs, isDelete, isMediaGet, isUpload, startFakeGcs, type FakeGcs } from "./fault-proxy.js";

const emulator = findFakeGcs();
const SEED = Number(process.env.SHARDRUN_FAULT_SEED ?? 20261122);
/** About 27% of requests fail or stall. */
const RATES = { unavailable: 0.08, "reset-before": 0.05, "reset-after": 0.08, delay: 0.06 };
const text = (bytes: Uint8Array | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined);
const preconditionFailed = expect.objectContaining({ code: "PRECONDITION_FAILED" });

if (emulator.missing && process.env.CI) {
  describe("GcsObjectStore under injected faults", () => {
    it("has the emulator installed", () => {
      throw new Error(`${emulator.missing} (CI must run the gcs store tests)`);
    });
  });
} else if (emulator.missing) {
  console.warn(`skipping the gcs fault-injection tests: ${emulator.missing}`);
}

describe.skipIf(emulator.bin === undefined)("GcsObjectStore under injected faults", () => {
  let gcs: FakeGcs;
  let proxy: FaultProxy;
  const bucket = `shardrun-faults-${randomBytes(4).toString("hex")}`;
  let prefixes = 0;
  let prefix = "";
  const open = (options: Partial<GcsObjectStoreOptions> = {}) =>
    new GcsObjectStore({
      bucket,
      prefix,
      storage: { apiEndpoint: proxy.url },
      retry: { attempts: 12, minDelayMs: 5, maxDelayMs: 100 },
      ...options,
    });

  beforeAll(async () => {
    gcs = await startFakeGcs(emulator.bin!);
    await gcs.createBucket(bucket);
    proxy = await FaultProxy.start({ target: gcs.url, seed: SEED, delayMs: [20, 250] });
  });
  afterAll(async () => {
    await proxy?.close();
    await gcs?.stop();
  });
  beforeEach(() => {
    prefix = `t${++prefixes}`;
  });

  describe(`with ~27% of requests failing (seed ${SEED})`, () => {
    beforeAll(() => proxy.setRates(RATES));
    afterAll(() => proxy.setRates({}));

    it("lets exactly one of many racing create-only writes win", async () => {
      const [a, b] = [open(), open()];
      for (let round = 0; round < 4; round++) {
        const key = `race/once-${round}`;
        const results = await Promise.allSettled(
          Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).put(key, `writer ${i}`, { ifGenerationMatch: 0 })),
        );
        const winners = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
        expect(winners).toHaveLength(1);
        for (const r of results) if (r.status === "rejected") expect(r.reason).toEqual(preconditionFailed);
        const stored = await a.get(key);
        expect(text(stored?.bytes)).toBe(`writer ${winners[0]}`);
        expect(stored?.generation).toBe((results[winners[0]!] as PromiseFulfilledResult<string>).value);
      }
    });

    it("counts every compare-and-swap increment of one writer exactly once, though answers are lost", async () => {
      const store = open();
      const lostBefore = proxy.count("reset-after", isUpload);
      // At least one lost answer whatever the seed draws; the random faults come on top.
      proxy.script("reset-after", isUpload);
      for (let i = 0; i < 60; i++) {
        const current = await store.get("counter");
        const value = current ? Number(text(current.bytes)) : 0;
        // No other writer exists: a PreconditionFailed here could only be a lost answer misread.
        await store.put("counter", String(value + 1), { ifGenerationMatch: current?.generation ?? 0 });
      }
      expect(text((await store.get("counter"))?.bytes)).toBe("60");
      expect(proxy.count("reset-after", isUpload) - lostBefore).toBeGreaterThan(0);
    });

    it("loses no update and applies none twice under concurrent compare-and-swap", async () => {
      const [a, b] = [open(), open()];
      const workers = 6;
      const each = 6;
      // Each update adds its own id, as a checkpoint marks its own items done: a writer whose
      // answer was lost finds its id on the next read, so the result must be exact.
      await Promise.all(
        Array.from({ length: workers }, async (_, w) => {
          const store = w % 2 ? a : b;
          for (let i = 0; i < each; i++) {
            const id = `${w}-${i}`;
            for (;;) {
              const current = await store.get("ids.json");
              const ids = current ? (JSON.parse(text(current.bytes)!) as string[]) : [];
              if (ids.includes(id)) break;
              try {
                await store.put("ids.json", JSON.stringify([...ids, id]), { ifGenerationMatch: current?.generation ?? 0 });
                break;
              } catch (error) {
                expect(error).toEqual(preconditionFailed);
              }
            }
          }
        }),
      );
      const ids = JSON.parse(text((await a.get("ids.json"))?.bytes) ?? "[]") as string[];
      const expected = Array.from({ length: workers * each }, (_, n) => `${Math.floor(n / each)}-${n % each}`);
      expect([...ids].sort()).toEqual(expected.sort());
    });

    it("replaces and deletes only at the current generation", async () => {
      const store = open();
      for (let i = 0; i < 10; i++) {
        const key = `cas/${i}`;
        const first = await store.put(key, "1", { ifGenerationMatch: 0 });
        const second = await store.put(key, "2", { ifGenerationMatch: first });
        await expect(store.put(key, "stale", { ifGenerationMatch: first })).rejects.toEqual(preconditionFailed);
        await expect(store.delete(key, { ifGenerationMatch: first })).rejects.toEqual(preconditionFailed);
        expect(await store.get(key)).toEqual({ bytes: expect.anything(), generation: second, metadata: {} });
        expect(await store.delete(key, { ifGenerationMatch: second })).toBe(true);
        expect(await store.get(key)).toBeNull();
      }
    });

    it("reads and pages through lists", async () => {
      const store = open();
      const keys = Array.from({ length: 30 }, (_, i) => `l/${String(i % 4)}/${String(i).padStart(2, "0")}`);
      for (const key of keys) await store.put(key, key, { ifGenerationMatch: 0 });
      expect(await collect(listAll(store, "", { maxResults: 7 }))).toEqual([...keys].sort());
      for (const key of keys) expect(text((await store.get(key))?.bytes)).toBe(key);
      for (const key of keys.slice(0, 10)) {
        const range = await store.get(key, { range: { start: 2, end: 4 } });
        expect(text(range?.bytes)).toBe(key.slice(2, 4));
      }
    });
  });

  describe("scripted faults", () => {
    it("returns the generation of a create-only write whose answer was lost", async () => {
      const store = open();
      proxy.script("reset-after", isUpload);
      const generation = await store.put("lost", "mine", { ifGenerationMatch: 0, metadata: { owner: "me" } });
      expect(await store.get("lost")).toEqual({ bytes: expect.anything(), generation, metadata: { owner: "me" } });
      // The retry saw 412 and read the object back rather than reporting a lost race.
      expect(proxy.events.filter(isUpload).slice(-2).map((e) => e.upstreamStatus)).toEqual([200, 412]);
      await expect(store.put("lost", "again", { ifGenerationMatch: 0 })).rejects.toEqual(preconditionFailed);
    });

    it("returns the generation of a conditional replace whose answer was lost, or a slow one", async () => {
      const store = open({ requestTimeoutMs: 500 });
      const first = await store.put("replace", "1", { ifGenerationMatch: 0 });
      proxy.script("reset-after", isUpload);
      const second = await store.put("replace", "2", { ifGenerationMatch: first });
      expect(await store.get("replace")).toEqual({ bytes: expect.anything(), generation: second, metadata: {} });
      const slow = await FaultProxy.start({ target: gcs.url, delayMs: [1500, 1500] });
      try {
        slow.script("delay", isUpload);
        const third = await open({ requestTimeoutMs: 500, storage: { apiEndpoint: slow.url } }).put("replace", "3", { ifGenerationMatch: second });
        expect(await store.get("replace")).toEqual({ bytes: expect.anything(), generation: third, metadata: {} });
        expect(text((await store.get("replace"))?.bytes)).toBe("3");
        // The abandoned first attempt still reaches the server, late: its precondition stops it.
        await expect.poll(() => slow.events[0]?.upstreamStatus, { timeout: 5000 }).toBe(412);
        expect(text((await store.get("replace"))?.bytes)).toBe("3");
      } finally {
        await slow.close();
      }
    });

    it("abandons a read or a list that does not answer within requestTimeoutMs, and tries again", async () => {
      const store = open();
      await store.put("late-read", "body", { ifGenerationMatch: 0 });
      const slow = await FaultProxy.start({ target: gcs.url, delayMs: [10_000, 10_000] });
      try {
        const viaSlow = open({ requestTimeoutMs: 500, storage: { apiEndpoint: slow.url } });
        slow.script("delay", isMediaGet);
        expect(text((await viaSlow.get("late-read"))?.bytes)).toBe("body");
        // The answer came from a later request: the first is still held by the proxy, given up.
        expect([slow.events[0]?.fault, slow.events[0]?.upstreamStatus]).toEqual(["delay", undefined]);
        expect(slow.events.length).toBeGreaterThanOrEqual(2);
        const before = slow.events.length;
        slow.script("delay", (r) => r.method === "GET" && r.path.endsWith("/o"));
        expect((await viaSlow.list("late-")).keys).toEqual(["late-read"]);
        expect([slow.events[before]?.fault, slow.events[before]?.upstreamStatus]).toEqual(["delay", undefined]);
        expect(slow.events.length).toBeGreaterThanOrEqual(before + 2);
      } finally {
        await slow.close();
      }
    });

    it("reports a conditional delete whose answer was lost as done", async () => {
      const store = open();
      const generation = await store.put("del", "x", { ifGenerationMatch: 0 });
      proxy.script("reset-after", isDelete);
      expect(await store.delete("del", { ifGenerationMatch: generation })).toBe(true);
      expect(await store.get("del")).toBeNull();
    });

    it("does not take a 412 or 404 after a 429 for its own earlier write: a 429 is a refusal", async () => {
      // Our retry waits 500 ms, long enough for the other writer (straight to the emulator,
      // not through the proxy, so that the refusal is surely ours) to go first.
      const store = open({ retry: { attempts: 3, minDelayMs: 500, maxDelayMs: 500 } });
      const other = open({ storage: { apiEndpoint: gcs.url } });
      const generation = await store.put("refused", "x", { ifGenerationMatch: 0 });
      // Our delete is refused once; meanwhile another writer deletes the object.
      proxy.script("unavailable", isDelete, 429);
      const ours = store.delete("refused", { ifGenerationMatch: generation });
      await expect.poll(() => proxy.events.at(-1)?.fault).toBe("unavailable");
      await other.delete("refused", { ifGenerationMatch: generation });
      await expect(ours).rejects.toEqual(preconditionFailed);
      // The same for a put: refused once, then another writer's create wins.
      proxy.script("unavailable", isUpload, 429);
      const put = store.put("refused", "mine", { ifGenerationMatch: 0 });
      await expect.poll(() => proxy.events.at(-1)?.fault).toBe("unavailable");
      const theirs = await other.put("refused", "theirs", { ifGenerationMatch: 0 });
      await expect(put).rejects.toEqual(preconditionFailed);
      expect(await store.get("refused")).toEqual({ bytes: expect.anything(), generation: theirs, metadata: {} });
    });

    it("does not retry an unconditional put or delete", async () => {
      const store = open();
      const uploads = proxy.count("none", isUpload) + proxy.count("unavailable", isUpload);
      proxy.script("unavailable", isUpload);
      await expect(store.put("blind", "x")).rejects.toMatchObject({ code: "INTERNAL", message: expect.stringContaining("not retried") });
      expect(proxy.count("none", isUpload) + proxy.count("unavailable", isUpload)).toBe(uploads + 1);
      await store.put("blind", "x");
      proxy.script("reset-before", isDelete);
      await expect(store.delete("blind")).rejects.toMatchObject({ message: expect.stringContaining("pass ifGenerationMatch") });
      expect(await store.delete("blind")).toBe(true);
    });

    it("lets the server reject an upload corrupted in flight, by the MD5 it declares", async () => {
      const corrupting = await FaultProxy.start({
        target: gcs.url,
        rewrite: (request, body) => (isUpload(request) ? Buffer.from(body.toString("latin1").replace("intact", "broken"), "latin1") : body),
      });
      try {
        const store = open({ storage: { apiEndpoint: corrupting.url } });
        await expect(store.put("checked", "intact bytes", { ifGenerationMatch: 0 })).rejects.toMatchObject({ message: expect.stringMatching(/MD5/i) });
        expect(await open().get("checked")).toBeNull();
        expect(corrupting.events.filter(isUpload).map((e) => e.upstreamStatus)).toEqual([400]);
      } finally {
        await corrupting.close();
      }
    });

    it("retries reads through errors and resets", async () => {
      const store = open();
      await store.put("read", "body", { ifGenerationMatch: 0 });
      proxy.script("unavailable", isMediaGet);
      proxy.script("reset-before", isMediaGet);
      proxy.script("reset-after", isMediaGet);
      expect(text((await store.get("read"))?.bytes)).toBe("body");
    });
  });
});

async function collect(items: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const item of items) out.push(item);
  return out;
}
