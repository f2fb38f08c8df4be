import { describe, expect, it } from "vitest";
import {
  isRunId,
  launchName,
  newRunId,
  partName,
  RUN_ID_PATTERN,
  SHARD_ID_PATTERN,
  shardId,
  shardNumber,
} from "../../src/core/ids.js";
import { keys } from "../../src/core/keys.js";

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

describe("newRunId", () => {
  it("is <yyyymmdd>-<hhmmss>-<job>-<4 hex> in UTC, with the injected date and random", () => {
    const id = newRunId("summarize-docs", new Date(Date.UTC(2026, 10, 22, 2, 0, 0)), () => 0xab12 / 0x10000);
    expect(id).toBe("20261122-020000-summarize-docs-ab12");
    expect(id).toMatch(RUN_ID_PATTERN);
    expect(isRunId(id)).toBe(true);
  });

  it("zero-pads every field", () => {
    expect(newRunId("a", new Date(Date.UTC(2027, 0, 2, 3, 4, 5)), () => 0)).toBe("20270102-030405-a-0000");
    expect(newRunId("a", new Date(Date.UTC(2025, 11, 31, 23, 59, 59)), () => 0.999999)).toBe("20251231-235959-a-ffff");
  });

  it("matches RUN_ID_PATTERN for random suffixes across [0, 1)", () => {
    for (const r of [0, 1 / 65536, 0.1, 0.5, 0.75, 0.9999999]) {
      expect(newRunId("nightly-sweep-2", new Date(Date.UTC(2026, 5, 1)), () => r)).toMatch(RUN_ID_PATTERN);
    }
  });

  it("uses Math.random by default and still matches the pattern", () => {
    expect(isRunId(newRunId("job", new Date()))).toBe(true);
  });

  it("sorts by creation time, whatever the random suffix", () => {
    const times = [
      Date.UTC(2025, 11, 31, 23, 59, 59),
      Date.UTC(2026, 0, 1, 0, 0, 0),
      Date.UTC(2026, 0, 1, 0, 0, 1),
      Date.UTC(2026, 0, 1, 0, 1, 0),
      Date.UTC(2026, 0, 1, 9, 0, 0),
      Date.UTC(2026, 0, 1, 10, 0, 0),
      Date.UTC(2026, 1, 1, 0, 0, 0),
      Date.UTC(2026, 9, 1, 0, 0, 0),
      Date.UTC(2026, 10, 22, 2, 0, 0),
    ];
    // Suffixes that decrease as time increases, so a sort by suffix would come out reversed.
    const ids = times.map((t, k) => newRunId("job", new Date(t), () => 1 - (k + 1) / 16));
    expect([...ids].sort(byCodeUnit)).toEqual(ids);
  });
});

describe("isRunId", () => {
  it("accepts well-formed ids", () => {
    expect(isRunId("20261122-020000-summarize-docs-ab12")).toBe(true);
    expect(isRunId("20261122-020000-a-0000")).toBe(true);
  });

  it("rejects path traversal and separators", () => {
    for (const bad of [
      "../x",
      "a/b",
      "..",
      "",
      "20261122-020000-summarize-docs-ab12/../x",
      "../20261122-020000-summarize-docs-ab12",
      "20261122-020000-../x-ab12",
      "20261122-020000-a/b-ab12",
      "20261122-020000-a\\b-ab12",
    ]) {
      expect(isRunId(bad), JSON.stringify(bad)).toBe(false);
    }
  });

  it("rejects near misses", () => {
    for (const bad of [
      "20261122-020000-summarize-docs-AB12", // upper-case hex
      "20261122-020000-Summarize-ab12", // upper-case job
      "20261122-020000-1job-ab12", // job starts with a digit
      "2026112-020000-job-ab12", // short date
      "20261122-020000-job-ab1", // short suffix
      "20261122-020000-job-ab12\n", // trailing newline
      " 20261122-020000-job-ab12",
      `20261122-020000-${"a".repeat(49)}-ab12`, // job longer than 48
    ]) {
      expect(isRunId(bad), JSON.stringify(bad)).toBe(false);
    }
    expect(isRunId(`20261122-020000-${"a".repeat(48)}-ab12`)).toBe(true);
  });
});

describe("shardId", () => {
  it("zero-pads to six digits and matches SHARD_ID_PATTERN", () => {
    expect(shardId(0)).toBe("s000000");
    expect(shardId(42)).toBe("s000042");
    expect(shardId(999_999)).toBe("s999999");
    for (const n of [0, 7, 1234, 99_999, 999_999]) expect(shardId(n)).toMatch(SHARD_ID_PATTERN);
  });

  it("refuses numbers that do not fit six digits", () => {
    expect(() => shardId(1_000_000)).toThrow(RangeError);
    expect(() => shardId(-1)).toThrow(RangeError);
  });

  it("round-trips through shardNumber", () => {
    for (const n of [0, 1, 9, 10, 12_345, 99_999]) expect(shardNumber(shardId(n))).toBe(n);
  });

  it("sorts in shard order as a string (store listings come back in shard order)", () => {
    const ns = [0, 1, 2, 9, 10, 11, 99, 100, 999, 1000, 9999, 10_000, 54_321, 99_998, 99_999];
    const ids = ns.map(shardId);
    expect([...ids].sort(byCodeUnit)).toEqual(ids);
  });

  it("keeps shard order past 99999 shards (a 100000-shard plan plus rerun shards, or itemsPerShard plans)", () => {
    // SHARD_ID_PATTERN allows six digits, { count } allows 100000 shards, and rerun numbers new
    // shards after the plan's: ids past s99999 must still sort after it.
    const ns = [9_999, 10_000, 10_001, 99_999, 100_000, 100_001, 150_000];
    const ids = ns.map(shardId);
    for (const id of ids) expect(id).toMatch(SHARD_ID_PATTERN);
    expect([...ids].sort(byCodeUnit)).toEqual(ids);
  });
});

describe("partName", () => {
  it("zero-pads epoch and sequence to six digits", () => {
    expect(partName(1, 2)).toBe("000001-000002.jsonl");
    expect(partName(123, 45_678)).toBe("000123-045678.jsonl");
  });

  it("sorts by epoch, then by sequence within the epoch", () => {
    const pairs: [number, number][] = [
      [0, 1],
      [1, 1],
      [1, 2],
      [1, 10],
      [1, 999],
      [2, 1],
      [10, 3],
      [99, 100_000],
      [100, 1],
    ];
    const names = pairs.map(([e, s]) => partName(e, s));
    expect([...names].reverse().sort(byCodeUnit)).toEqual(names);
  });
});

describe("launchName and keys", () => {
  it("pads launch numbers to four digits", () => {
    expect(launchName(0)).toBe("0000");
    expect(launchName(12)).toBe("0012");
  });

  it("lays out the store as DESIGN.md says", () => {
    const r = "20261122-020000-demo-ab12";
    expect(keys.run(r)).toBe(`runs/${r}/run.json`);
    expect(keys.items(r, 100)).toBe(`runs/${r}/items/000100.jsonl`);
    expect(keys.planRound(r, 1)).toBe(`runs/${r}/plan/0001.jsonl`);
    expect(keys.checkpoint(r, "s00001")).toBe(`runs/${r}/shards/s00001/checkpoint.json`);
    expect(keys.part(r, "s00001", partName(2, 3))).toBe(`runs/${r}/shards/s00001/out/000002-000003.jsonl`);
    expect(keys.part(r, "s00001", "x").startsWith(keys.partsPrefix(r, "s00001"))).toBe(true);
    expect(keys.launch(r, 3)).toBe(`runs/${r}/launches/0003.json`);
    expect(keys.launch(r, 3).startsWith(keys.launchesPrefix(r))).toBe(true);
    expect(keys.deadLetter(r)).toBe(`runs/${r}/dead-letter.jsonl`);
    expect(keys.run(r).startsWith(keys.runPrefix(r))).toBe(true);
    expect(keys.runPrefix(r).startsWith(keys.runsPrefix())).toBe(true);
  });
});
