/** Failed items grouped by reason and error: what `shardrun failures` and the dashboard show. */
import { describe, expect, it } from "vitest";
import type { FailedItemView } from "../../src/core/status.js";
import { countByReason, errorSignature, groupFailures } from "../../src/orchestrator/failure-groups.js";

const failed = (i: number, error: string, reason = "error", over: Partial<FailedItemView> = {}): FailedItemView => ({ i, key: `item-${i}`, shard: "s000000", error, attempts: 2, reason, ...over });

describe("errorSignature", () => {
  it("takes out numbers, hashes and ids, and keeps the first line", () => {
    expect(errorSignature("item 13 fails")).toBe("item <n> fails");
    expect(errorSignature("upstream 503 after 1.5s for doc-27\n    at fetch (x.js:1:2)")).toBe("upstream <n> after <n>s for doc-<n>");
    expect(errorSignature("request 3f9a0c21d4e5 failed")).toBe("request <hex> failed");
    expect(errorSignature("trace 123e4567-e89b-12d3-a456-426614174000 lost")).toBe("trace <id> lost");
  });

  it("keeps digits that belong to a word or a version", () => {
    expect(errorSignature("s3 said utf8 is fine in v1.2.3")).toBe("s3 said utf8 is fine in v1.2.3");
    expect(errorSignature("deadbeef without digits stays")).toBe("deadbeef without digits stays");
  });

  it("cuts a very long message", () => {
    const s = errorSignature("x".repeat(1000));
    expect(s.length).toBe(301);
    expect(s.endsWith("…")).toBe(true);
  });
});

describe("groupFailures", () => {
  // 100 failures of two causes: the shape issue 12 reports as 100 rows.
  const items = [
    ...Array.from({ length: 60 }, (_, k) => failed(k * 3 + 1, `item ${k * 3 + 1} fails`)),
    ...Array.from({ length: 40 }, (_, k) => failed(k * 3 + 2, `refused: ${k * 3 + 2} is not allowed`, "non_retriable", { stack: `NonRetriableError: refused\n    at run (job.ts:${k}:1)` })),
  ].reverse();

  it("makes one group per reason and error, largest first, with counts", () => {
    const groups = groupFailures(items);
    expect(groups.map((g) => [g.reason, g.signature, g.count])).toEqual([
      ["error", "item <n> fails", 60],
      ["non_retriable", "refused: <n> is not allowed", 40],
    ]);
  });

  it("samples the lowest-numbered keys and keeps the first item whole", () => {
    const [errors, refused] = groupFailures(items, { samples: 3 });
    expect(errors!.sampleKeys).toEqual(["item-1", "item-4", "item-7"]);
    expect(refused!.first).toEqual(failed(2, "refused: 2 is not allowed", "non_retriable", { stack: "NonRetriableError: refused\n    at run (job.ts:0:1)" }));
  });

  it("keeps the same message under two reasons apart", () => {
    const groups = groupFailures([failed(1, "timed out"), failed(2, "timed out", "timeout"), failed(3, "timed out", "timeout")]);
    expect(groups.map((g) => [g.reason, g.count])).toEqual([
      ["timeout", 2],
      ["error", 1],
    ]);
  });

  it("refuses a bad sample count", () => {
    expect(() => groupFailures(items, { samples: -1 })).toThrow("Expected `samples` to be a whole number from 0 up, got -1");
  });

  it("counts by reason", () => {
    expect(countByReason(items)).toEqual({ error: 60, non_retriable: 40 });
    expect(countByReason([])).toEqual({});
  });
});
