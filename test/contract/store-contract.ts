/**
 * The ObjectStore contract: what every adapter (fs, gcs, …) must do, checked only through the
 * port. An adapter's test file calls `storeContract(name, makeStore)`; `makeStore` gives a fresh,
 * empty store per test, a way to open a second instance on the same state, and a cleanup.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { listAll, listPrefixes, type ObjectStore } from "../../src/store/port.js";

/** What `makeStore` hands each test. */
export interface StoreFixture {
  store: ObjectStore;
  /** Another instance over the same state, as a second process would open it. */
  reopen: () => Promise<ObjectStore>;
  cleanup: () => Promise<void>;
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
          const generation = await store.put("gen/key", `v${i}`);
          expect(generation).toMatch(/^[1-9][0-9]*$/);
          expect(seen.has(generation)).toBe(false);
          seen.add(generation);
          expect(await store.get("gen/key")).toEqual({ bytes: expect.anything(), generation });
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
        expect(await store.get("once")).toEqual({ bytes: expect.anything(), generation });
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
        expect(await store.delete("was")).toBe(true);
        expect(await store.delete("was")).toBe(false);
      });

      it("re-creates after a delete with a generation unlike any before", async () => {
        const generations = [await store.put("again", "1"), await store.put("again", "2")];
        expect(await store.delete("again")).toBe(true);
        await expect(store.put("again", "x", { ifGenerationMatch: generations[1]! })).rejects.toEqual(preconditionFailed("again"));
        const recreated = await store.put("again", "3", { ifGenerationMatch: 0 });
        expect(generations).not.toContain(recreated);
        expect(await store.get("again")).toEqual({ bytes: expect.anything(), generation: recreated });
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
