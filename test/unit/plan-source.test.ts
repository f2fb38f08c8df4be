import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/core/errors.js";
import { itemsFromJsonl } from "../../src/orchestrator/items-source.js";
import { planRun } from "../../src/orchestrator/plan.js";
import type { ObjectStore, StoredObject } from "../../src/store/port.js";
import { allKeys, planOptions, readBack, tempDir, tempStore, wrapStore } from "./plan-support.js";

const encoder = new TextEncoder();

/** A store whose get honours `{ range }` (as the port will on every adapter), counting range reads. */
function ranged(store: ObjectStore): ObjectStore & { ranges: { start: number; end?: number }[] } {
  const ranges: { start: number; end?: number }[] = [];
  return {
    url: store.url,
    ranges,
    put: (k, b, o) => store.put(k, b, o),
    list: (p, o) => store.list(p, o),
    delete: (k, o) => store.delete(k, o),
    async get(key: string, options?: { range?: { start: number; end?: number } }): Promise<StoredObject | null> {
      const got = await store.get(key);
      if (!got || !options?.range) return got;
      ranges.push(options.range);
      return { generation: got.generation, metadata: got.metadata, bytes: got.bytes.slice(options.range.start, options.range.end ?? got.bytes.byteLength) };
    },
  } as ObjectStore & { ranges: { start: number; end?: number }[] };
}

async function take(source: AsyncIterable<unknown>, n = Number.POSITIVE_INFINITY): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const v of source) {
    out.push(v);
    if (out.length >= n) break;
  }
  return out;
}

describe("itemsFromJsonl: a local file", () => {
  it("yields one item per line, skipping blank lines, with CRLF endings and a last line without one", async () => {
    const file = join(tempDir("items"), "items.jsonl");
    writeFileSync(file, '\uFEFF{"n":0,"cost":1}\r\n\r\n{"n":1,"cost":2}\n   \n{"n":2,"cost":3}');
    expect(await take(itemsFromJsonl(file))).toEqual([
      { n: 0, cost: 1 },
      { n: 1, cost: 2 },
      { n: 2, cost: 3 },
    ]);
  });

  it("is the plan's source: items are checked by the job's schema like any other (a bad one is planned, to fail later)", async () => {
    const dir = tempDir("items");
    const file = join(dir, "items.jsonl");
    writeFileSync(file, Array.from({ length: 25 }, (_, n) => JSON.stringify(n === 7 ? { n: "seven", cost: 1 } : { n, cost: n })).join("\n") + "\n");
    const store = tempStore();
    const run = await planRun(planOptions(store, { source: itemsFromJsonl("items.jsonl", { cwd: dir }) }));
    const items = await readBack(store, run);
    expect(items).toHaveLength(25);
    expect(items[7]).toMatchObject({ i: 7, key: "kseven", item: { n: "seven", cost: 1 } });
    expect(items[24]).toMatchObject({ i: 24, key: "k24" });
  });

  it("parses line by line: a bad line further on does not stop the items before it from being read", async () => {
    const file = join(tempDir("items"), "items.jsonl");
    writeFileSync(file, '{"n":0,"cost":1}\n{"n":1,\n');
    const source = itemsFromJsonl(file)[Symbol.asyncIterator]();
    expect((await source.next()).value).toEqual({ n: 0, cost: 1 });
    await expect(source.next()).rejects.toThrow(new RegExp(`^items ${file.replaceAll("/", "\\/")} line 2: not valid JSON`));
  });

  it("a line that is not JSON fails the plan naming the file and the line, with nothing written", async () => {
    const dir = tempDir("items");
    writeFileSync(join(dir, "items.jsonl"), '{"n":0,"cost":1}\n\nnot json\n');
    const store = wrapStore(tempStore());
    await expect(planRun(planOptions(store, { source: itemsFromJsonl("items.jsonl", { cwd: dir }) }))).rejects.toThrow(/^items items\.jsonl line 3: not valid JSON/);
    expect(store.calls.put).toEqual([]);
  });

  it("a missing file or a folder is a one-line error", async () => {
    const dir = tempDir("items");
    await expect(take(itemsFromJsonl("nope.jsonl", { cwd: dir }))).rejects.toThrow(new InvalidInputError("items file nope.jsonl: no such file"));
    await expect(take(itemsFromJsonl(dir))).rejects.toThrow(/: not a file$/);
    expect(() => itemsFromJsonl("https://example.com/items.jsonl")).toThrow(/expected a file path, file:\/\/\/path or gs:\/\/bucket\/path/);
  });

  it("text that is not UTF-8 names its line", async () => {
    const file = join(tempDir("items"), "items.jsonl");
    writeFileSync(file, Buffer.concat([Buffer.from('{"n":0,"cost":1}\n"'), Buffer.from([0xff, 0xfe]), Buffer.from('"\n')]));
    await expect(take(itemsFromJsonl(file))).rejects.toThrow(/line 2: not UTF-8 text/);
  });
});

describe("itemsFromJsonl: a store object", () => {
  const lines = Array.from({ length: 40 }, (_, n) => JSON.stringify({ n, cost: n, text: "é".repeat(n % 5) })).join("\n") + "\n";

  it("reads it a window at a time by range reads; lines that span windows come out whole", async () => {
    const base = tempStore();
    await base.put("inputs/items.jsonl", lines);
    const store = ranged(base);
    const items = await take(itemsFromJsonl({ store, key: "inputs/items.jsonl" }, { windowBytes: 64 }));
    expect(items).toEqual(lines.trim().split("\n").map((l) => JSON.parse(l)));
    const size = encoder.encode(lines).byteLength;
    expect(store.ranges.length).toBe(Math.floor(size / 64) + 1);
    expect(store.ranges[1]).toEqual({ start: 64, end: 128 });
  });

  it("is lazy: the first item costs one range read", async () => {
    const base = tempStore();
    await base.put("items.jsonl", lines);
    const store = ranged(base);
    expect(await take(itemsFromJsonl({ store, key: "items.jsonl" }, { windowBytes: 128 }), 1)).toEqual([{ n: 0, cost: 0, text: "" }]);
    expect(store.ranges).toHaveLength(1);
  });

  it("opens gs://bucket/path through the store port, and reads a store that ignores ranges from its one answer", async () => {
    const base = tempStore();
    await base.put("items.jsonl", lines);
    const opened: string[] = [];
    // The fs store of this branch answers a ranged get with the whole object.
    const source = itemsFromJsonl("gs://acme-inputs/2026/items.jsonl", {
      windowBytes: 100,
      openStore: async (url) => {
        opened.push(url);
        return base;
      },
    });
    expect(await take(source)).toHaveLength(40);
    expect(opened).toEqual(["gs://acme-inputs/2026"]);
  });

  it("a missing object, or one replaced while it is read, is a one-line error", async () => {
    const base = tempStore();
    await expect(take(itemsFromJsonl({ store: base, key: "none.jsonl" }))).rejects.toThrow(/^items file:\/\/\S+\/none\.jsonl: no such object$/);
    await base.put("items.jsonl", lines);
    const store = ranged(base);
    const it = itemsFromJsonl({ store, key: "items.jsonl" }, { windowBytes: 64 })[Symbol.asyncIterator]();
    await it.next();
    await base.put("items.jsonl", lines);
    await expect(take({ [Symbol.asyncIterator]: () => it })).rejects.toThrow(/was replaced while it was read/);
  });

  it("a plan from a store object holds every item once", async () => {
    const base = tempStore();
    await base.put("items.jsonl", lines);
    const store = tempStore();
    const run = await planRun(planOptions(store, { source: itemsFromJsonl({ store: ranged(base), key: "items.jsonl" }, { windowBytes: 256 }) }));
    expect((await readBack(store, run)).map((l) => l.key)).toEqual(Array.from({ length: 40 }, (_, n) => `k${n}`));
    expect(await allKeys(store, "runs/")).toHaveLength(3);
  });
});
