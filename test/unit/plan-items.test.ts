import { describe, expect, it } from "vitest";
import {
  chunkOf,
  CorruptItemsError,
  crc32cHex,
  encodeItemsObject,
  HEADER_PROBE_BYTES,
  itemLineAt,
  itemLines,
  lineStarts,
  locateShard,
  parseItemsHeader,
  readShardItems,
  type ReadBytes,
  type ShardBody,
} from "../../src/core/items.js";
import { keys } from "../../src/core/keys.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const RUN = "20261122-020000-echo-ab12";

function shard(shard: number, first: number, count: number, pad = ""): ShardBody {
  const lines = Array.from({ length: count }, (_, n) => JSON.stringify({ i: first + n, key: `k${first + n}`, item: { n: first + n, pad } }) + "\n");
  return { shard, count, bytes: encoder.encode(lines.join("")) };
}

/** A reader over objects in memory that honours ranges and counts its calls. */
function memoryReader(objects: Map<string, Uint8Array>, o: { ignoreRanges?: boolean } = {}): ReadBytes & { calls: { key: string; range?: { start: number; end?: number } }[] } {
  const calls: { key: string; range?: { start: number; end?: number } }[] = [];
  const read = (async (key: string, range?: { start: number; end?: number }) => {
    calls.push({ key, ...(range ? { range } : {}) });
    const bytes = objects.get(key);
    if (!bytes) return null;
    if (!range || o.ignoreRanges) return bytes;
    return bytes.slice(range.start, range.end ?? bytes.byteLength);
  }) as ReadBytes & { calls: typeof calls };
  read.calls = calls;
  return read;
}

describe("items objects", () => {
  it("round-trips: each shard's bytes are found by its header entry and pass their CRC", () => {
    const shards = [shard(7, 0, 3), shard(8, 3, 1), shard(9, 4, 5)];
    const object = encodeItemsObject(shards);
    const parsed = parseItemsHeader(object, "obj");
    if (!parsed.complete) throw new Error("header not complete");
    expect(parsed.header.shards.map((s) => s[0])).toEqual([7, 8, 9]);
    for (const s of shards) {
      const at = locateShard(parsed.header, parsed.bodyStart, s.shard)!;
      expect(at.count).toBe(s.count);
      expect(object.subarray(at.start, at.end)).toEqual(s.bytes);
      expect(at.crc32c).toBe(crc32cHex(s.bytes));
    }
    expect(locateShard(parsed.header, parsed.bodyStart, 10)).toBeNull();
  });

  it("CRC32C is Cloud Storage's (the check value of 123456789 is e3069283)", () => {
    expect(crc32cHex("123456789")).toBe("e3069283");
  });

  it("asks for more bytes when the header is longer than what was read, and parses it then", () => {
    // 100 shards with long numbers make a header of several KiB; read only its first 100 bytes.
    const object = encodeItemsObject(Array.from({ length: 100 }, (_, s) => shard(900_000 + s, s * 2, 2)));
    const first = parseItemsHeader(object.subarray(0, 100), "obj");
    expect(first.complete).toBe(false);
    if (first.complete) return;
    expect(first.needBytes).toBeGreaterThan(100);
    const second = parseItemsHeader(object.subarray(0, Math.max(first.needBytes, object.indexOf(10) + 1)), "obj");
    expect(second.complete).toBe(true);
  });

  it("refuses a header that never ends in a whole object (truncated)", () => {
    const object = encodeItemsObject([shard(0, 0, 2)]);
    const cut = object.subarray(0, 20);
    expect(() => parseItemsHeader(cut, "runs/x/items/000000.jsonl", true)).toThrow(/runs\/x\/items\/000000\.jsonl: the header line has no end/);
  });

  it("refuses a header whose entries do not follow each other", () => {
    const bad = encoder.encode(`{"v":1,"shards":[[0,0,10,1,"00000000"],[1,12,10,1,"00000000"]]}\n`);
    expect(() => parseItemsHeader(bad, "obj")).toThrow(/shard 1 starts at byte 12, expected 10/);
    expect(() => parseItemsHeader(encoder.encode(`{"v":2}\n`), "obj")).toThrow(CorruptItemsError);
    expect(() => parseItemsHeader(encoder.encode(`not json\n`), "obj")).toThrow(/not valid JSON/);
  });

  it("chunkOf finds the last items object that starts at or before the shard", () => {
    const chunks = [0, 100, 200, 250];
    expect(chunkOf(chunks, 0)).toBe(0);
    expect(chunkOf(chunks, 99)).toBe(0);
    expect(chunkOf(chunks, 100)).toBe(100);
    expect(chunkOf(chunks, 249)).toBe(200);
    expect(chunkOf(chunks, 9999)).toBe(250);
    expect(() => chunkOf([5], 2)).toThrow(RangeError);
  });
});

describe("readShardItems", () => {
  it("reads a small shard with one range read: the probe holds the header and the shard", async () => {
    const key = keys.items(RUN, 0);
    const read = memoryReader(new Map([[key, encodeItemsObject([shard(0, 0, 3), shard(1, 3, 3)])]]));
    const got = await readShardItems(read, RUN, [0], 1);
    expect([...itemLines(got.bytes, got.object)].map((l) => l.i)).toEqual([3, 4, 5]);
    expect(read.calls).toEqual([{ key, range: { start: 0, end: HEADER_PROBE_BYTES } }]);
  });

  it("reads a shard beyond the probe with a second range read of exactly its bytes", async () => {
    const key = keys.items(RUN, 10);
    const big = "x".repeat(200);
    const object = encodeItemsObject([shard(10, 0, 100, big), shard(11, 100, 100, big)]);
    const read = memoryReader(new Map([[key, object]]));
    const got = await readShardItems(read, RUN, [0, 10], 11);
    expect(got.location.count).toBe(100);
    expect(read.calls).toHaveLength(2);
    expect(read.calls[1]).toEqual({ key, range: { start: got.location.start, end: got.location.end } });
    // Another shard of the same object, with the header cached: one read.
    const headers = new Map();
    await readShardItems(read, RUN, [0, 10], 10, headers);
    const before = read.calls.length;
    await readShardItems(read, RUN, [0, 10], 11, headers);
    expect(read.calls.length - before).toBe(1);
  });

  it("reads a header longer than the probe by reading more", async () => {
    const key = keys.items(RUN, 0);
    // A header over 16 KiB: long shard numbers, and more shards than a planner packs together.
    const shards = Array.from({ length: 600 }, (_, s) => shard(900_000 + s, s, 1));
    const object = encodeItemsObject(shards);
    expect(object.indexOf(10)).toBeGreaterThan(HEADER_PROBE_BYTES);
    const read = memoryReader(new Map([[key, object]]));
    const got = await readShardItems(read, RUN, [0], 900_599);
    expect([...itemLines(got.bytes, got.object)].map((l) => l.key)).toEqual(["k599"]);
    expect(read.calls.length).toBeGreaterThanOrEqual(2);
  });

  it("works with a reader that ignores ranges (returns whole objects)", async () => {
    const key = keys.items(RUN, 0);
    const big = "y".repeat(500);
    const read = memoryReader(new Map([[key, encodeItemsObject([shard(0, 0, 50, big), shard(1, 50, 50, big)])]]), { ignoreRanges: true });
    const got = await readShardItems(read, RUN, [0], 1);
    expect([...itemLines(got.bytes, got.object)].map((l) => l.i)).toEqual(Array.from({ length: 50 }, (_, n) => 50 + n));
    expect(read.calls).toHaveLength(1);
  });

  it("detects a CRC mismatch, naming the object and the shard", async () => {
    const key = keys.items(RUN, 0);
    const object = encodeItemsObject([shard(0, 0, 3), shard(1, 3, 3)]);
    // Flip one byte inside shard 1's items (a digit of an item, still valid JSON).
    const parsed = parseItemsHeader(object, key);
    if (!parsed.complete) throw new Error("header");
    const at = locateShard(parsed.header, parsed.bodyStart, 1)!;
    const damaged = object.slice();
    const digit = damaged.indexOf("4".charCodeAt(0), at.start);
    damaged[digit] = "5".charCodeAt(0);
    const read = memoryReader(new Map([[key, damaged]]));
    await expect(readShardItems(read, RUN, [0], 1)).rejects.toThrow(new RegExp(`${key.replaceAll("/", "\\/")}: shard 1 fails its CRC32C check`));
    // Shard 0 is intact and still reads.
    await expect(readShardItems(read, RUN, [0], 0)).resolves.toBeTruthy();
  });

  it("detects a truncated object", async () => {
    const key = keys.items(RUN, 0);
    const object = encodeItemsObject([shard(0, 0, 3), shard(1, 3, 3)]);
    const read = memoryReader(new Map([[key, object.subarray(0, object.byteLength - 10)]]));
    await expect(readShardItems(read, RUN, [0], 1)).rejects.toThrow(/truncated/);
  });

  it("says which object is missing", async () => {
    await expect(readShardItems(memoryReader(new Map()), RUN, [0], 0)).rejects.toThrow(/items\/000000\.jsonl: the items object is missing/);
  });
});

describe("item lines", () => {
  it("yields lines one at a time, lazily: a bad line later does not stop the first ones", () => {
    const bytes = encoder.encode(`{"i":0,"key":"a","item":1}\n{"i":1,"key":"b","item":2}\nnot json\n`);
    const it = itemLines(bytes, "obj");
    expect(it.next().value).toMatchObject({ i: 0, key: "a", item: 1, pos: 0 });
    expect(it.next().value).toMatchObject({ i: 1, key: "b", item: 2, pos: 1 });
    expect(() => it.next()).toThrow(/item line 3 is not valid JSON/);
  });

  it("yields only positions [from, to)", () => {
    const s = shard(0, 10, 8);
    expect([...itemLines(s.bytes, "obj", 3, 6)].map((l) => [l.pos, l.i])).toEqual([
      [3, 13],
      [4, 14],
      [5, 15],
    ]);
  });

  it("lineStarts gives random access to any position", () => {
    const s = shard(0, 100, 5);
    const starts = lineStarts(s.bytes);
    expect(starts).toHaveLength(6);
    expect(itemLineAt(s.bytes, starts, 4, "obj")).toEqual({ i: 104, key: "k104", item: { n: 104, pad: "" } });
    expect(decoder.decode(s.bytes.subarray(starts[2], starts[3]))).toBe(`{"i":102,"key":"k102","item":{"n":102,"pad":""}}\n`);
    expect(() => itemLineAt(s.bytes, starts, 5, "obj")).toThrow(RangeError);
  });

  it("refuses a line that is JSON but not an item line", () => {
    expect(() => [...itemLines(encoder.encode(`{"i":-1,"key":"a","item":1}\n`), "obj")]).toThrow(/is not \{"i": index/);
    expect(() => [...itemLines(encoder.encode(`{"i":0,"key":"a"}\n`), "obj")]).toThrow(CorruptItemsError);
    expect(() => [...itemLines(encoder.encode(`{"i":0,"key":"a","item":1}`), "obj")]).toThrow(/has no end/);
  });
});
