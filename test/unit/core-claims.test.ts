import { describe, expect, it } from "vitest";
import { ownPositions, ownPositionsFromEnd, victims } from "../../src/core/claims.js";

const seeded = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};

describe("victims", () => {
  it("visits every other owning task once, never itself", () => {
    for (const seed of [1, 2, 3]) {
      const seen = [...victims(10, 4, seeded(seed))];
      expect(seen).toHaveLength(9);
      expect(new Set(seen)).toEqual(new Set([0, 1, 2, 3, 5, 6, 7, 8, 9]));
    }
  });

  it("draws only among the tasks that own shards when there are more tasks than shards", () => {
    // 1,000 tasks over 200 shards: tasks 200-999 own nothing, so a thief looks only at 0-199.
    const owners = Math.min(1000, 200);
    const fromIdle = [...victims(owners, 731, seeded(5))];
    expect(fromIdle).toHaveLength(200);
    expect(new Set(fromIdle).size).toBe(200);
    expect(Math.max(...fromIdle)).toBe(199);
    for (const v of fromIdle) expect([...ownPositionsFromEnd(200, 1000, v)]).toEqual([v]);
    const fromOwner = [...victims(owners, 17, seeded(5))];
    expect(fromOwner).toHaveLength(199);
    expect(fromOwner).not.toContain(17);
  });

  it("yields nothing when no other task owns shards", () => {
    expect([...victims(1, 0, seeded(1))]).toEqual([]);
    expect([...victims(0, 3, seeded(1))]).toEqual([]);
  });

  it("own positions and their reverse agree", () => {
    expect([...ownPositions(10, 3, 1)]).toEqual([1, 4, 7]);
    expect([...ownPositionsFromEnd(10, 3, 1)]).toEqual([7, 4, 1]);
  });
});
