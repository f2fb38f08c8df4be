import { describe, expect, it } from "vitest";
import {
  rangeAdd,
  rangeCount,
  rangeHas,
  rangeIndices,
  rangeMissing,
  rangeUnion,
  type Range,
  type RangeSet,
} from "../../src/core/ranges.js";
import { seededRandom as prng } from "../../src/core/time.js";


/** Sorted, disjoint, non-adjacent, non-empty: the only shape a RangeSet may have. */
function expectNormalized(set: RangeSet): void {
  for (const [s, e] of set) expect(e).toBeGreaterThan(s);
  for (let k = 1; k < set.length; k++) {
    // Strictly greater: touching ranges must have been merged.
    expect(set[k]![0]).toBeGreaterThan(set[k - 1]![1]);
  }
}

describe("rangeAdd", () => {
  it("normalizes unsorted indices with duplicates", () => {
    const out = rangeAdd([], [5, 1, 3, 2, 5, 1, 9]);
    expect(out).toEqual([
      [1, 4],
      [5, 6],
      [9, 10],
    ]);
    expectNormalized(out);
  });

  it("merges an index adjacent to an existing range on either side", () => {
    expect(rangeAdd([[2, 5]], [5])).toEqual([[2, 6]]);
    expect(rangeAdd([[2, 5]], [1])).toEqual([[1, 5]]);
  });

  it("fills the gap between two ranges into one", () => {
    expect(
      rangeAdd(
        [
          [0, 3],
          [4, 8],
        ],
        [3],
      ),
    ).toEqual([[0, 8]]);
  });

  it("keeps indices already inside the set without growing it", () => {
    const out = rangeAdd([[0, 10]], [0, 4, 9]);
    expect(out).toEqual([[0, 10]]);
    expect(rangeCount(out)).toBe(10);
  });

  it("returns an equal set for no indices and accepts any iterable", () => {
    expect(rangeAdd([[1, 2]], [])).toEqual([[1, 2]]);
    expect(rangeAdd([], new Set([7, 6]))).toEqual([[6, 8]]);
  });

  it("does not mutate the set it was given", () => {
    const set: Range[] = [
      [0, 2],
      [5, 7],
    ];
    const copy = structuredClone(set);
    const out = rangeAdd(set, [2, 3, 4]);
    expect(out).toEqual([[0, 7]]);
    expect(set).toEqual(copy);
  });
});

describe("rangeUnion", () => {
  it("sorts unsorted input and merges overlaps, containment and adjacency", () => {
    const out = rangeUnion(
      [
        [10, 12],
        [0, 3],
      ],
      [
        [2, 5],
        [12, 14],
        [20, 30],
        [22, 25],
      ],
    );
    expect(out).toEqual([
      [0, 5],
      [10, 14],
      [20, 30],
    ]);
    expectNormalized(out);
  });

  it("drops empty and inverted ranges", () => {
    expect(
      rangeUnion(
        [
          [3, 3],
          [9, 4],
        ],
        [[6, 7]],
      ),
    ).toEqual([[6, 7]]);
    expect(rangeUnion([[1, 1]], [])).toEqual([]);
  });

  it("keeps disjoint, non-adjacent ranges apart", () => {
    expect(rangeUnion([[0, 1]], [[2, 3]])).toEqual([
      [0, 1],
      [2, 3],
    ]);
  });

  it("does not mutate either input", () => {
    const a: Range[] = [[0, 2]];
    const b: Range[] = [[1, 4]];
    rangeUnion(a, b);
    expect(a).toEqual([[0, 2]]);
    expect(b).toEqual([[1, 4]]);
  });
});

describe("rangeHas", () => {
  const set: RangeSet = [
    [2, 4],
    [6, 7],
    [10, 15],
    [20, 21],
    [30, 40],
  ];

  it("is false for the empty set", () => {
    expect(rangeHas([], 0)).toBe(false);
  });

  it("treats ranges as half-open [start, end)", () => {
    expect(rangeHas(set, 2)).toBe(true);
    expect(rangeHas(set, 3)).toBe(true);
    expect(rangeHas(set, 4)).toBe(false);
    expect(rangeHas(set, 6)).toBe(true);
    expect(rangeHas(set, 7)).toBe(false);
    expect(rangeHas(set, 39)).toBe(true);
    expect(rangeHas(set, 40)).toBe(false);
  });

  it("finds nothing before the first, between, or after the last range", () => {
    for (const i of [0, 1, 5, 8, 9, 15, 19, 21, 29, 41, 1000]) expect(rangeHas(set, i), `index ${i}`).toBe(false);
  });

  it("agrees with a linear scan for every index, for sets of every length", () => {
    for (let len = 1; len <= 9; len++) {
      const s: Range[] = Array.from({ length: len }, (_, k) => [k * 3, k * 3 + 2] as Range);
      for (let i = -1; i < len * 3 + 2; i++) {
        expect(rangeHas(s, i), `len ${len} index ${i}`).toBe(s.some(([a, b]) => i >= a && i < b));
      }
    }
  });
});

describe("rangeCount", () => {
  it("sums the range lengths", () => {
    expect(rangeCount([])).toBe(0);
    expect(
      rangeCount([
        [0, 3],
        [5, 6],
        [10, 20],
      ]),
    ).toBe(14);
  });
});

describe("rangeMissing", () => {
  it("yields the indices of [0, size) outside the set, in order", () => {
    expect([
      ...rangeMissing(
        [
          [1, 3],
          [5, 6],
        ],
        8,
      ),
    ]).toEqual([0, 3, 4, 6, 7]);
  });

  it("yields everything for an empty set and nothing for size 0", () => {
    expect([...rangeMissing([], 4)]).toEqual([0, 1, 2, 3]);
    expect([...rangeMissing([[0, 2]], 0)]).toEqual([]);
  });

  it("yields nothing when the set covers [0, size)", () => {
    expect([...rangeMissing([[0, 5]], 5)]).toEqual([]);
  });

  it("ignores ranges at or past size", () => {
    expect([
      ...rangeMissing(
        [
          [2, 4],
          [8, 12],
          [20, 30],
        ],
        10,
      ),
    ]).toEqual([0, 1, 4, 5, 6, 7]);
    expect([...rangeMissing([[3, 100]], 5)]).toEqual([0, 1, 2]);
  });
});

describe("rangeIndices", () => {
  it("yields every index of every range, in order", () => {
    expect([
      ...rangeIndices([
        [0, 2],
        [5, 8],
      ]),
    ]).toEqual([0, 1, 5, 6, 7]);
    expect([...rangeIndices([])]).toEqual([]);
  });
});

describe("ranges against a plain Set (property, seeded)", () => {
  for (const seed of [1, 42, 20261122]) {
    it(`agrees with a Set over 300 random operations (seed ${seed})`, () => {
      const random = prng(seed);
      const U = 200;
      const int = (n: number) => Math.floor(random() * n);
      const model = new Set<number>();
      let set: Range[] = [];

      for (let op = 0; op < 300; op++) {
        if (random() < 0.6) {
          const batch = Array.from({ length: 1 + int(8) }, () => int(U));
          set = rangeAdd(set, batch);
          for (const i of batch) model.add(i);
        } else {
          // Unsorted, possibly empty or inverted ranges: the union must cope with all of them.
          const extra: Range[] = Array.from({ length: 1 + int(3) }, () => {
            const s = int(U);
            return [s, s + int(12) - 2] as Range;
          });
          set = rangeUnion(set, extra);
          for (const [s, e] of extra) for (let i = s; i < Math.min(e, U + 20); i++) model.add(i);
        }

        expectNormalized(set);
        expect(rangeCount(set)).toBe(model.size);
        const sorted = [...model].sort((a, b) => a - b);
        expect([...rangeIndices(set)]).toEqual(sorted);
        const size = int(U + 30);
        const missing: number[] = [];
        for (let i = 0; i < size; i++) if (!model.has(i)) missing.push(i);
        expect([...rangeMissing(set, size)]).toEqual(missing);
        for (let i = -1; i < U + 25; i++) {
          if (rangeHas(set, i) !== model.has(i)) expect.fail(`op ${op}: rangeHas(${i}) disagrees with the Set`);
        }
      }
    });
  }
});
