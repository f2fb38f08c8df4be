/**
 * The ObjectStore contract: what every adapter (fs, gcs, …) must do, checked only through the
 * port. An adapter's test file calls `storeContract(name, makeStore)`; `makeStore` gives a fresh,
 * empty store per test, a way to open a second instance on the same state, and a cleanup.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { listAll, listPrefixes, METADATA_MAX_BYTES, type ListedObject, type ObjectStore } from "../../src/store/port.js";

/** What `makeStore` hands each test. */
export interface StoreFixture {
  store: ObjectStore;
  /** Another instance over the same state, as a second process would open it. */
  reopen: () => Promise<ObjectStore>;
  cleanup: () => Promise<void>;
  /**
   * Waits `ms` on the store's clock. The suite waits `limits.objectWriteGapMs` between two
   * unconditional mutations of one key, as callers must (an unconditional write refused with 429
   * is not retried). Leave it out for a server that does not enforce the gap.
   * @default undefined (no waiting)
   */
  sleep?: (ms: number) => Promise<void>;
  /** The store's clock, for `updated` of listed objects. @default Date.now */
  now?: () => number;
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** Matches the rejection of a conditional write that lost; by `code`, as callers decide on it. */
const preconditionFailed = (key: string) => expect.objectContaining({ code: "PRECONDITION_FAILED", key });

async function readText(store: ObjectStore, key: string): Promise<string | undefined> {
  const object = await store.get(key);
  return object ? text(object.bytes) : undefined;
}

/** Read-modify-write with retry on PreconditionFailed: the pattern checkpoints rely on. */
async function increment(store: ObjectStore, key: string): Promise<number> {
  let conflicts = 0;
  for (;;) {
    const current = await store.get(key);
    const value = current ? Number(text(current.bytes)) : 0;
    try {
      await store.put(key, String(value + 1), { ifGenerationMatch: current ? current.generation : 0 });
      return conflicts;
    } catch (error) {
      if ((error as { code?: unknown }).code !== "PRECONDITION_FAILED") throw error;
      conflicts++;
    }
  }
}

async function putAll(store: ObjectStore, keys: string[]): Promise<void> {
  for (const key of keys) await store.put(key, key);
}

/** Defines the contract suite for one adapter. */
export function storeContract(name: string, makeStore: () => Promise<StoreFixture>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let fixture: StoreFixture;
    let store: ObjectStore;
    /** Waits out the store's gap between two mutations of one object name. */
    const gap = async () => {
      if (fixture.sleep && store.limits.objectWriteGapMs > 0) await fixture.sleep(store.limits.objectWriteGapMs);
    };
    beforeEach(async () => {
      fixture = await makeStore();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    describe("get and put", () => {
      it("returns null for a missing key", async () => {
        expect(await store.get("missing/key.json")).toBeNull();
      });

      it("round-trips strings and bytes exactly", async () => {
        const all = Uint8Array.from({ length: 256 }, (_, i) => i);
        await store.put("bin/all-bytes", all);
        await store.put("txt/unicode.txt", "héllo ✓ \n\0 end");
        await store.put("txt/empty", "");
        const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) % 251);
        await store.put("bin/big", big);

        expect(Array.from((await store.get("bin/all-bytes"))!.bytes)).toEqual(Array.from(all));
        expect(await readText(store, "txt/unicode.txt")).toBe("héllo ✓ \n\0 end");
        expect((await store.get("txt/empty"))!.bytes.length).toBe(0);
        expect(Buffer.from((await store.get("bin/big"))!.bytes).equals(Buffer.from(big))).toBe(true);
      });

      it("gives decimal-string generations that change on every write", async () => {
        const seen = new Set<string>();
        for (let i = 0; i < 5; i++) {
          if (i > 0) await gap();
          const generation = await store.put("gen/key", `v${i}`);
          expect(generation).toMatch(/^[1-9][0-9]*$/);
          expect(seen.has(generation)).toBe(false);
          seen.add(generation);
          expect(await store.get("gen/key")).toEqual({ bytes: expect.anything(), generation, metadata: {} });
        }
        expect(await readText(store, "gen/key")).toBe("v4");
      });

      it("keeps a key and keys below it apart", async () => {
        await store.put("a", "top");
        await store.put("a/b", "below");
        await store.put("a/b/c", "deeper");
        expect(await readText(store, "a")).toBe("top");
        expect(await readText(store, "a/b")).toBe("below");
        expect(await readText(store, "a/b/c")).toBe("deeper");
      });

      it("rejects keys that are not portable paths", async () => {
        for (const key of ["", "/abs", "a//b", "a/../b", "./a", "a/", "a@b", "a b", "ä"]) {
          await expect(store.get(key), key).rejects.toBeInstanceOf(TypeError);
          await expect(store.put(key, "x"), key).rejects.toBeInstanceOf(TypeError);
        }
      });

      it("lets another instance see the same objects and generations", async () => {
        const generation = await store.put("shared/x", "one");
        const other = await fixture.reopen();
        expect(other.url).toBe(store.url);
        const seen = await other.get("shared/x");
        expect(seen && { text: text(seen.bytes), generation: seen.generation }).toEqual({ text: "one", generation });
      });
    });

    describe("preconditions", () => {
      it("create-only succeeds once, then fails and changes nothing", async () => {
        const generation = await store.put("once", "first", { ifGenerationMatch: 0 });
        await expect(store.put("once", "second", { ifGenerationMatch: 0 })).rejects.toEqual(preconditionFailed("once"));
        await expect(store.put("once", "third", { ifGenerationMatch: "0" })).rejects.toEqual(preconditionFailed("once"));
        expect(await store.get("once")).toEqual({ bytes: expect.anything(), generation, metadata: {} });
        expect(await readText(store, "once")).toBe("first");
      });

      it("replaces only at the current generation", async () => {
        const first = await store.put("cas", "1");
        const second = await store.put("cas", "2", { ifGenerationMatch: first });
        expect(second).not.toBe(first);
        await expect(store.put("cas", "3", { ifGenerationMatch: first })).rejects.toEqual(preconditionFailed("cas"));
        await expect(store.put("missing", "x", { ifGenerationMatch: first })).rejects.toEqual(preconditionFailed("missing"));
        expect(await readText(store, "cas")).toBe("2");
        await store.put("cas", "3", { ifGenerationMatch: second });
        expect(await readText(store, "cas")).toBe("3");
      });

      it("fails a write on a stale generation after another instance wrote", async () => {
        const seen = await store.put("stale", "mine");
        const other = await fixture.reopen();
        const theirs = await other.put("stale", "theirs", { ifGenerationMatch: seen });
        await expect(store.put("stale", "lost update", { ifGenerationMatch: seen })).rejects.toEqual(preconditionFailed("stale"));
        const now = await store.get("stale");
        expect(now && { text: text(now.bytes), generation: now.generation }).toEqual({ text: "theirs", generation: theirs });
      });

      it("deletes only at the current generation", async () => {
        const first = await store.put("del", "1");
        await gap();
        const second = await store.put("del", "2");
        await expect(store.delete("del", { ifGenerationMatch: first })).rejects.toEqual(preconditionFailed("del"));
        expect(await readText(store, "del")).toBe("2");
        expect(await store.delete("del", { ifGenerationMatch: second })).toBe(true);
        expect(await store.get("del")).toBeNull();
        await expect(store.delete("del", { ifGenerationMatch: second })).rejects.toEqual(preconditionFailed("del"));
      });

      it("reports false when deleting nothing", async () => {
        expect(await store.delete("never/was")).toBe(false);
        await store.put("was", "x");
        await gap();
        expect(await store.delete("was")).toBe(true);
        await gap();
        expect(await store.delete("was")).toBe(false);
      });

      it("re-creates after a delete with a generation unlike any before", async () => {
        const generations = [await store.put("again", "1")];
        await gap();
        generations.push(await store.put("again", "2"));
        await gap();
        expect(await store.delete("again")).toBe(true);
        await expect(store.put("again", "x", { ifGenerationMatch: generations[1]! })).rejects.toEqual(preconditionFailed("again"));
        const recreated = await store.put("again", "3", { ifGenerationMatch: 0 });
        expect(generations).not.toContain(recreated);
        expect(await store.get("again")).toEqual({ bytes: expect.anything(), generation: recreated, metadata: {} });
        expect(await readText(store, "again")).toBe("3");
      });
    });

    describe("list", () => {
      const keys = [
        "runs/2026-01-01/run.json",
        "runs/2026-01-01/shards/0/checkpoint.json",
        "runs/2026-01-01/shards/1/checkpoint.json",
        "runs/2026-01-02/run.json",
        "runs/2025-12-31/run.json",
        "runs/2026.txt",
        "runs/index.json",
        "runsheet",
        "other/x",
      ];

      it("lists live keys under a prefix in byte order", async () => {
        await putAll(store, keys);
        await store.put("runs/gone.json", "x");
        await gap();
        await store.delete("runs/gone.json");
        const page = await store.list("runs/");
        expect(page.keys).toEqual(keys.filter((k) => k.startsWith("runs/")).sort());
        expect(page.prefixes).toEqual([]);
        expect(page.nextPageToken).toBeUndefined();
        expect((await store.list("")).keys).toEqual([...keys].sort());
        expect((await store.list("nothing/here/")).keys).toEqual([]);
      });

      it("orders by bytes across folder boundaries", async () => {
        const tricky = ["a-c", "a.b", "a/b", "a/b/c", "a0", "a", "A", "a+", "a=", "a_", "a/-", "ab/c"];
        await putAll(store, tricky);
        expect(await collect(listAll(store, ""))).toEqual([...tricky].sort());
        expect(await collect(listAll(store, "a", { maxResults: 1 }))).toEqual(tricky.filter((k) => k.startsWith("a")).sort());
      });

      it("rolls keys up into prefixes with delimiter /", async () => {
        await putAll(store, keys);
        await store.put("runs/deleted/only.json", "x");
        await gap();
        await store.delete("runs/deleted/only.json");
        const page = await store.list("runs/", { delimiter: "/" });
        expect(page.keys).toEqual(["runs/2026.txt", "runs/index.json"]);
        expect(page.prefixes).toEqual(["runs/2025-12-31/", "runs/2026-01-01/", "runs/2026-01-02/"]);
        expect(await store.list("", { delimiter: "/" })).toEqual({ keys: ["runsheet"], prefixes: ["other/", "runs/"] });
        expect(await listPrefixes(store, "runs/2026-01-01/shards/")).toEqual([
          "runs/2026-01-01/shards/0/",
          "runs/2026-01-01/shards/1/",
        ]);
      });

      it("matches a prefix that ends mid-segment", async () => {
        await putAll(store, keys);
        const page = await store.list("runs/2026", { delimiter: "/" });
        expect(page).toEqual({ keys: ["runs/2026.txt"], prefixes: ["runs/2026-01-01/", "runs/2026-01-02/"] });
        expect((await store.list("runs/2026-01-01/shards/0/check")).keys).toEqual(["runs/2026-01-01/shards/0/checkpoint.json"]);
        expect((await store.list("run")).keys).toEqual([...keys].filter((k) => k.startsWith("run")).sort());
      });

      it("pages through every key exactly once, in order", async () => {
        const many = Array.from({ length: 23 }, (_, i) => `p/${String(i % 7)}/${String(i).padStart(3, "0")}.json`);
        many.push("p/top.json", "p/0", "p/zz");
        await putAll(store, many);
        for (const maxResults of [1, 2, 5, 1000]) {
          const seen: string[] = [];
          let pageToken: string | undefined;
          do {
            const page = await store.list("p/", { maxResults, ...(pageToken ? { pageToken } : {}) });
            expect(page.keys.length).toBeLessThanOrEqual(maxResults);
            seen.push(...page.keys);
            pageToken = page.nextPageToken;
          } while (pageToken);
          expect(seen).toEqual([...many].sort());
        }
      });

      it("pages keys and prefixes together with a delimiter", async () => {
        await putAll(store, keys);
        const seen: string[] = [];
        let pageToken: string | undefined;
        do {
          const page = await store.list("runs/", { delimiter: "/", maxResults: 2, ...(pageToken ? { pageToken } : {}) });
          expect(page.keys.length + page.prefixes.length).toBeLessThanOrEqual(2);
          seen.push(...page.keys, ...page.prefixes);
          pageToken = page.nextPageToken;
        } while (pageToken);
        expect(seen.sort()).toEqual(["runs/2025-12-31/", "runs/2026-01-01/", "runs/2026-01-02/", "runs/2026.txt", "runs/index.json"]);
      });

      it("filters by matchGlob before paging, with metadata", async () => {
        const shards = Array.from({ length: 7 }, (_, i) => `g/shards/s${String(i).padStart(3, "0")}`);
        const all = shards.flatMap((s, i) => [`${s}/checkpoint.json`, `${s}/out/000001-000001.jsonl`, `${s}/out/000001-000002.jsonl`, ...(i % 2 ? [`${s}/items.jsonl`] : [])]);
        all.push("g/shards/checkpoint.json", "g/shards/s000/deep/checkpoint.json", "g/shards/s001/checkpoint.json.bak");
        await putAll(store, all);
        const wanted = shards.map((s) => `${s}/checkpoint.json`);
        for (const maxResults of [1, 3, 1000]) {
          const seen: string[] = [];
          let pageToken: string | undefined;
          do {
            const page = await store.list("g/shards/", { matchGlob: "g/shards/*/checkpoint.json", withMetadata: true, maxResults, ...(pageToken ? { pageToken } : {}) });
            expect(page.keys.length).toBeLessThanOrEqual(maxResults);
            expect(page.objects?.map((o) => o.key)).toEqual(page.keys);
            seen.push(...page.keys);
            pageToken = page.nextPageToken;
          } while (pageToken);
          expect(seen).toEqual(wanted);
        }
        // "**" crosses folders ("**/" also matches none), "?", sets and alternatives.
        expect(await collect(listAll(store, "g/", { matchGlob: "g/**/checkpoint.json" }))).toEqual(
          [...wanted, "g/shards/checkpoint.json", "g/shards/s000/deep/checkpoint.json"].sort(),
        );
        expect(await collect(listAll(store, "g/", { matchGlob: "g/shards/s00[!0-4]/{items.jsonl,checkpoint.json}" }))).toEqual([
          "g/shards/s005/checkpoint.json",
          "g/shards/s005/items.jsonl",
          "g/shards/s006/checkpoint.json",
        ]);
        expect(await collect(listAll(store, "g/", { matchGlob: "g/shards/s00?/out/*-000002.jsonl" }))).toEqual(shards.map((s) => `${s}/out/000001-000002.jsonl`));
      });

      it("starts at startOffset (inclusive), within the prefix, and pages on from there", async () => {
        const parts = Array.from({ length: 9 }, (_, i) => `o/s1/out/000002-${String(i + 1).padStart(6, "0")}.jsonl`);
        await putAll(store, [...parts, "o/s1/out/000001-000009.jsonl", "o/s1/checkpoint.json", "o/s2/out/000002-000001.jsonl"]);
        for (const maxResults of [1, 2, 1000]) {
          const seen: string[] = [];
          let pageToken: string | undefined;
          do {
            const page = await store.list("o/s1/out/000002-", { startOffset: "o/s1/out/000002-000004.jsonl", maxResults, ...(pageToken ? { pageToken } : {}) });
            seen.push(...page.keys);
            pageToken = page.nextPageToken;
          } while (pageToken);
          expect(seen).toEqual(parts.slice(3));
        }
        // An offset between keys starts at the next one; one past every key lists nothing.
        expect((await store.list("o/s1/", { startOffset: "o/s1/out/000001-000009.jsonm" })).keys).toEqual(parts);
        expect((await store.list("o/s1/", { startOffset: "o/s1/zzz" })).keys).toEqual([]);
      });

      it("refuses matchGlob or startOffset with a delimiter, and a malformed glob, with a TypeError", async () => {
        await expect(store.list("g/", { delimiter: "/", matchGlob: "g/*" })).rejects.toThrow(TypeError);
        await expect(store.list("g/", { delimiter: "/", startOffset: "g/a" })).rejects.toThrow(TypeError);
        await expect(store.list("g/", { matchGlob: "g/[a" })).rejects.toThrow(/matchGlob/);
        await expect(store.list("g/", { matchGlob: "g/{a,b" })).rejects.toThrow(/matchGlob/);
      });
    });

    describe("metadata", () => {
      const now = () => (fixture.now ?? Date.now)();
      /** The listed entry of `key`, from a list of its own folder with metadata. */
      async function listed(key: string): Promise<ListedObject | undefined> {
        const page = await store.list(key.slice(0, key.lastIndexOf("/") + 1), { withMetadata: true });
        expect(page.objects?.map((o) => o.key)).toEqual(page.keys);
        return page.objects?.find((o) => o.key === key);
      }

      it("is {} on an object written without it, in get and in list", async () => {
        const before = now();
        const generation = await store.put("m/plain", "abc");
        expect((await store.get("m/plain"))?.metadata).toEqual({});
        const entry = await listed("m/plain");
        expect(entry).toEqual({ key: "m/plain", generation, size: 3, metadata: {}, updated: expect.any(Number) });
        // The store's clock, not a timing goal: a generation is stamped when it is written.
        expect(Math.abs(entry!.updated - before)).toBeLessThan(10 * 60_000);
      });

      it("round-trips through put, get and list, and another instance sees it", async () => {
        const metadata = { state: "running", done: "12", "last_item-key": "doc-0042", empty: "", json: '{"a":[1,2]}' };
        const generation = await store.put("m/one.json", "{}", { metadata, ifGenerationMatch: 0 });
        expect(await store.get("m/one.json")).toEqual({ bytes: expect.anything(), generation, metadata });
        expect(await listed("m/one.json")).toEqual({ key: "m/one.json", generation, size: 2, metadata, updated: expect.any(Number) });
        const other = await fixture.reopen();
        expect((await other.get("m/one.json"))?.metadata).toEqual(metadata);
      });

      it("is replaced, not merged, by each new generation", async () => {
        const first = await store.put("m/rep", "1", { metadata: { a: "1", b: "1" } });
        const second = await store.put("m/rep", "2", { metadata: { b: "2" }, ifGenerationMatch: first });
        expect(await store.get("m/rep")).toEqual({ bytes: expect.anything(), generation: second, metadata: { b: "2" } });
        expect((await listed("m/rep"))?.metadata).toEqual({ b: "2" });
        const third = await store.put("m/rep", "3", { ifGenerationMatch: second });
        expect(await store.get("m/rep")).toEqual({ bytes: expect.anything(), generation: third, metadata: {} });
        expect((await listed("m/rep"))?.metadata).toEqual({});
        const fourth = await store.put("m/rep", "4", { metadata: { c: "4" }, ifGenerationMatch: third });
        expect(await listed("m/rep")).toMatchObject({ generation: fourth, size: 1, metadata: { c: "4" } });
      });

      it("refuses bad metadata with a TypeError naming the key, and writes nothing", async () => {
        const big = "v".repeat(3000);
        const cases: Array<[unknown, RegExp]> = [
          [{ Upper: "x" }, /"Upper"/],
          [{ "": "x" }, /""/],
          [{ "a.b": "x" }, /"a\.b"/],
          [{ ["k".repeat(65)]: "x" }, /"k{65}"/],
          [{ "shardrun-write": "x" }, /"shardrun-write"/],
          [{ n: 5 }, /"n".*string/],
          [{ accent: "héllo" }, /"accent".*ASCII/],
          [{ padded: " x" }, /"padded"/],
          [{ newline: "a\nb" }, /"newline"/],
          [{ long: "x".repeat(4097) }, /"long".*4096/],
          [{ a: big, b: big, c: big }, /"c"/],
          [["x"], /object/],
          [null, /object/],
        ];
        for (const [metadata, message] of cases) {
          const attempt = store.put("m/bad", "x", { metadata: metadata as Record<string, string> });
          await expect(attempt, JSON.stringify(metadata)?.slice(0, 40)).rejects.toThrow(message);
          await expect(store.put("m/bad", "x", { metadata: metadata as Record<string, string> })).rejects.toBeInstanceOf(TypeError);
        }
        expect(await store.get("m/bad")).toBeNull();
        // Exactly the limit is taken: keys and values together.
        const limit = { a: "x".repeat(4064), b: "y".repeat(METADATA_MAX_BYTES - 4064 - 2) };
        await store.put("m/at-limit", "x", { metadata: limit });
        expect((await store.get("m/at-limit"))?.metadata).toEqual(limit);
      });

      it("lists metadata page by page, one entry per key and none for prefixes", async () => {
        for (let i = 0; i < 7; i++) await store.put(`mp/${i}`, "x".repeat(i), { metadata: { i: String(i) } });
        await store.put("mp/sub/deep", "d", { metadata: { deep: "yes" } });
        await gap();
        await store.delete("mp/3");
        const seen: ListedObject[] = [];
        let pageToken: string | undefined;
        do {
          const page = await store.list("mp/", { delimiter: "/", maxResults: 2, withMetadata: true, ...(pageToken ? { pageToken } : {}) });
          expect(page.objects?.map((o) => o.key)).toEqual(page.keys);
          seen.push(...page.objects!);
          pageToken = page.nextPageToken;
        } while (pageToken);
        expect(seen.map((o) => [o.key, o.size, o.metadata])).toEqual(
          [0, 1, 2, 4, 5, 6].map((i) => [`mp/${i}`, i, { i: String(i) }]),
        );
        expect((await store.list("mp/")).objects).toBeUndefined();
      });
    });

    describe("byte ranges", () => {
      it("reads [start, end) with the whole object's generation and metadata", async () => {
        const generation = await store.put("r/digits", "0123456789", { metadata: { kind: "digits" } });
        const read = async (start: number, end?: number) => {
          const object = await store.get("r/digits", { range: end === undefined ? { start } : { start, end } });
          expect(object && { generation: object.generation, metadata: object.metadata }).toEqual({ generation, metadata: { kind: "digits" } });
          return text(object!.bytes);
        };
        expect(await read(2, 5)).toBe("234");
        expect(await read(0, 1)).toBe("0");
        expect(await read(7)).toBe("789");
        expect(await read(8, 100)).toBe("89");
        expect(await read(4, 4)).toBe("");
        expect(await read(10)).toBe("");
        expect(await read(0)).toBe("0123456789");
      });

      it("reads a range from the middle of a large object", async () => {
        const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 13) % 251);
        await store.put("r/big", big);
        const object = await store.get("r/big", { range: { start: 1_500_000, end: 1_600_123 } });
        expect(Buffer.from(object!.bytes).equals(Buffer.from(big.subarray(1_500_000, 1_600_123)))).toBe(true);
      });

      it("refuses a range past the end with a RangeError, a malformed one with a TypeError", async () => {
        await store.put("r/short", "abc");
        await expect(store.get("r/short", { range: { start: 4 } })).rejects.toBeInstanceOf(RangeError);
        await expect(store.get("r/short", { range: { start: 5, end: 9 } })).rejects.toThrow(/r\/short.*3 bytes/);
        for (const range of [{ start: -1 }, { start: 1.5 }, { start: 3, end: 2 }, { start: 0, end: Number.NaN }]) {
          await expect(store.get("r/short", { range }), JSON.stringify(range)).rejects.toBeInstanceOf(TypeError);
        }
        expect(await store.get("r/missing", { range: { start: 0, end: 10 } })).toBeNull();
      });
    });

    describe("limits", () => {
      it("declares them", () => {
        const { objectWriteGapMs, writesPerSecond, readsPerSecond } = store.limits;
        expect(objectWriteGapMs).toBeGreaterThanOrEqual(0);
        expect(writesPerSecond).toBeGreaterThan(0);
        expect(readsPerSecond).toBeGreaterThan(0);
      });
    });

    describe("concurrency", () => {
      it("lets exactly one of many racing create-only writes win", async () => {
        const other = await fixture.reopen();
        const results = await Promise.allSettled(
          Array.from({ length: 24 }, (_, i) => (i % 2 ? other : store).put("race/once", `writer ${i}`, { ifGenerationMatch: 0 })),
        );
        const winners = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
        expect(winners).toHaveLength(1);
        for (const r of results) if (r.status === "rejected") expect(r.reason).toEqual(preconditionFailed("race/once"));
        expect(await readText(store, "race/once")).toBe(`writer ${winners[0]}`);
      });

      it("loses no update under concurrent compare-and-swap increments", async () => {
        const other = await fixture.reopen();
        const workers = 8;
        const each = 10;
        const conflicts = await Promise.all(
          Array.from({ length: workers }, async (_, w) => {
            let lost = 0;
            for (let i = 0; i < each; i++) lost += await increment(w % 2 ? other : store, "race/counter");
            return lost;
          }),
        );
        expect(await readText(store, "race/counter")).toBe(String(workers * each));
        // Not a goal in itself, but with no conflicts at all the test would prove nothing.
        expect(conflicts.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      });
    });
  });
}

async function collect(items: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const item of items) out.push(item);
  return out;
}
