import { describe, expect, it } from "vitest";
import {
  canTakeLease,
  checkpointDue,
  commitBatch,
  emptyCheckpoint,
  heartbeatDue,
  MIN_WRITE_GAP_MS,
  settledPositions,
  takeLease,
} from "../../src/core/checkpoint.js";
import { Checkpoint, type FailedItem, type Owner } from "../../src/core/model.js";

const T0 = Date.UTC(2026, 10, 22, 2, 0, 0);
const TTL = 30_000;

function owner(over: Partial<Owner> = {}): Owner {
  return { execution: "exec-a", taskIndex: 0, attempt: 0, launch: 0, ...over };
}

/** A checkpoint that passes the store schema, held by `held` (or nobody). */
function cp(over: Partial<Checkpoint> = {}): Checkpoint {
  return Checkpoint.parse({
    v: 1,
    runId: "20261122-020000-demo-ab12",
    shard: "s00000",
    itemCount: 10,
    epoch: 3,
    owner: owner(),
    heartbeatAt: T0,
    leaseTtlMs: TTL,
    state: "open",
    done: [],
    failed: [],
    parts: [],
    executions: 0,
    updatedAt: new Date(T0).toISOString(),
    ...over,
  });
}

function failure(pos: number, over: Partial<FailedItem> = {}): FailedItem {
  return { pos, i: 100 + pos, key: `k${pos}`, error: "boom", attempts: 3, reason: "error", ...over };
}

describe("emptyCheckpoint", () => {
  it("is open, unowned, epoch 0, and passes the store schema", () => {
    const c = emptyCheckpoint("r", "s00001", 5, T0);
    expect(Checkpoint.parse(c)).toEqual(c);
    expect(c).toMatchObject({ runId: "r", shard: "s00001", itemCount: 5, epoch: 0, owner: null, state: "open", heartbeatAt: T0 });
    expect(c.updatedAt).toBe(new Date(T0).toISOString());
  });

  it("is done at once for a shard of no items", () => {
    expect(emptyCheckpoint("r", "s00001", 0, T0).state).toBe("done");
  });
});

describe("canTakeLease", () => {
  const fresh = T0 + 1_000; // well within the TTL

  it("takes a shard that has no checkpoint yet", () => {
    expect(canTakeLease(null, owner(), fresh)).toEqual({ ok: true, reason: "new" });
  });

  it("refuses a done shard, whoever held it and however old its heartbeat", () => {
    expect(canTakeLease(cp({ state: "done", owner: null }), owner(), fresh)).toEqual({ ok: false, reason: "done" });
    expect(canTakeLease(cp({ state: "done", owner: owner({ launch: 0 }) }), owner({ launch: 5 }), T0 + 10 * TTL)).toEqual({
      ok: false,
      reason: "done",
    });
  });

  it("takes an open shard whose owner released it", () => {
    expect(canTakeLease(cp({ owner: null }), owner({ execution: "other", taskIndex: 9 }), fresh)).toEqual({
      ok: true,
      reason: "released",
    });
  });

  it("takes over at once from a predecessor: same execution and task index, lower attempt", () => {
    const held = cp({ owner: owner({ execution: "exec-a", taskIndex: 2, attempt: 0, launch: 1 }) });
    expect(canTakeLease(held, owner({ execution: "exec-a", taskIndex: 2, attempt: 1, launch: 1 }), fresh)).toEqual({
      ok: true,
      reason: "predecessor",
    });
    expect(canTakeLease(held, owner({ execution: "exec-a", taskIndex: 2, attempt: 3, launch: 1 }), fresh).ok).toBe(true);
  });

  it("does not treat the same attempt as a predecessor", () => {
    const me = owner({ execution: "exec-a", taskIndex: 2, attempt: 1, launch: 1 });
    expect(canTakeLease(cp({ owner: { ...me } }), me, fresh)).toEqual({ ok: false, reason: "held" });
  });

  it("does not let a lower attempt take a shard from its successor", () => {
    const held = cp({ owner: owner({ taskIndex: 2, attempt: 2, launch: 1 }) });
    expect(canTakeLease(held, owner({ taskIndex: 2, attempt: 1, launch: 1 }), fresh)).toEqual({ ok: false, reason: "held" });
  });

  it("does not treat the same task index of another execution as a predecessor", () => {
    const held = cp({ owner: owner({ execution: "exec-a", taskIndex: 2, attempt: 0, launch: 1 }) });
    expect(canTakeLease(held, owner({ execution: "exec-b", taskIndex: 2, attempt: 1, launch: 1 }), fresh)).toEqual({
      ok: false,
      reason: "held",
    });
  });

  it("refuses a shard held by another task of the same launch with a live heartbeat", () => {
    const held = cp({ owner: owner({ taskIndex: 0, launch: 2 }) });
    expect(canTakeLease(held, owner({ taskIndex: 1, launch: 2 }), fresh)).toEqual({ ok: false, reason: "held" });
  });

  it("takes a shard held by a task of an earlier launch, even with a live heartbeat", () => {
    const held = cp({ owner: owner({ execution: "exec-1", launch: 1 }) });
    expect(canTakeLease(held, owner({ execution: "exec-2", launch: 2 }), fresh)).toEqual({ ok: true, reason: "earlier-launch" });
  });

  it("refuses a shard held by a later launch with a live heartbeat", () => {
    const held = cp({ owner: owner({ execution: "exec-3", launch: 3 }) });
    expect(canTakeLease(held, owner({ execution: "exec-2", launch: 2 }), fresh)).toEqual({ ok: false, reason: "held" });
  });

  it("takes a lease only once its heartbeat is older than its TTL (edge: exactly TTL is still held)", () => {
    const held = cp({ owner: owner({ taskIndex: 0, launch: 2 }), heartbeatAt: T0, leaseTtlMs: TTL });
    const other = owner({ taskIndex: 1, launch: 2 });
    expect(canTakeLease(held, other, T0 + TTL - 1)).toEqual({ ok: false, reason: "held" });
    expect(canTakeLease(held, other, T0 + TTL)).toEqual({ ok: false, reason: "held" });
    expect(canTakeLease(held, other, T0 + TTL + 1)).toEqual({ ok: true, reason: "expired" });
  });

  it("uses the TTL recorded in the checkpoint", () => {
    const held = cp({ owner: owner({ taskIndex: 0 }), heartbeatAt: T0, leaseTtlMs: 5_000 });
    expect(canTakeLease(held, owner({ taskIndex: 1 }), T0 + 5_001).reason).toBe("expired");
  });
});

describe("takeLease", () => {
  it("increments the epoch, sets the owner, heartbeat, TTL and updatedAt", () => {
    const before = cp({ epoch: 3, owner: null, heartbeatAt: T0, leaseTtlMs: 0 });
    const me = owner({ execution: "exec-z", taskIndex: 4, attempt: 1, launch: 2 });
    const after = takeLease(before, me, 45_000, T0 + 7_000);
    expect(after.epoch).toBe(4);
    expect(after.owner).toEqual(me);
    expect(after.heartbeatAt).toBe(T0 + 7_000);
    expect(after.leaseTtlMs).toBe(45_000);
    expect(after.updatedAt).toBe(new Date(T0 + 7_000).toISOString());
    expect(Checkpoint.parse(after)).toEqual(after);
  });

  it("keeps progress and does not mutate its input", () => {
    const before = cp({ done: [[0, 4]], failed: [failure(5)], parts: [{ name: "000003-000001.jsonl", count: 4 }], executions: 7 });
    const copy = structuredClone(before);
    const after = takeLease(before, owner({ attempt: 1 }), TTL, T0 + 1);
    expect(before).toEqual(copy);
    expect(after).toMatchObject({ done: [[0, 4]], failed: [failure(5)], parts: copy.parts, executions: 7, state: "open" });
  });
});

describe("commitBatch", () => {
  it("adds done positions, failures, the part and the executions", () => {
    const before = cp({ done: [[0, 2]], executions: 2, parts: [{ name: "p1", count: 2 }] });
    const after = commitBatch(
      before,
      { part: { name: "p2", count: 3 }, done: [4, 2, 3], failed: [failure(6)], executions: 5 },
      T0 + 5_000,
    );
    expect(after.done).toEqual([[0, 5]]);
    expect(after.failed).toEqual([failure(6)]);
    expect(after.parts).toEqual([
      { name: "p1", count: 2 },
      { name: "p2", count: 3 },
    ]);
    expect(after.executions).toBe(7);
    expect(after.heartbeatAt).toBe(T0 + 5_000);
    expect(after.updatedAt).toBe(new Date(T0 + 5_000).toISOString());
    expect(after.state).toBe("open");
    expect(after.owner).toEqual(before.owner);
    expect(after.epoch).toBe(before.epoch);
    expect(Checkpoint.parse(after)).toEqual(after);
  });

  it("without a part keeps the parts as they were (a batch of only failures)", () => {
    const after = commitBatch(cp({ parts: [{ name: "p1", count: 1 }] }), { done: [], failed: [failure(1)], executions: 1 }, T0);
    expect(after.parts).toEqual([{ name: "p1", count: 1 }]);
    expect(after.failed).toHaveLength(1);
  });

  it("an empty batch is a heartbeat: only heartbeatAt and updatedAt move", () => {
    const before = cp({ done: [[1, 3]], failed: [failure(5)], executions: 4 });
    const after = commitBatch(before, { done: [], failed: [], executions: 0 }, T0 + 12_000);
    expect(after).toEqual({ ...before, heartbeatAt: T0 + 12_000, updatedAt: new Date(T0 + 12_000).toISOString() });
  });

  it("re-committing positions already done does not count them twice", () => {
    const after = commitBatch(cp({ itemCount: 5, done: [[0, 4]] }), { done: [0, 1, 2, 3], failed: [], executions: 0 }, T0);
    expect(after.done).toEqual([[0, 4]]);
    expect(after.state).toBe("open");
  });

  it("becomes done and releases the owner once every position is done or failed", () => {
    const before = cp({ itemCount: 5, done: [[0, 2]], failed: [failure(2)] });
    const after = commitBatch(before, { part: { name: "p", count: 1 }, done: [3], failed: [failure(4)], executions: 2 }, T0 + 1);
    expect(after.state).toBe("done");
    expect(after.owner).toBeNull();
    expect(settledPositions(after)).toEqual(new Set([0, 1, 2, 3, 4]));
  });

  it("a shard whose items all fail is done too", () => {
    const after = commitBatch(cp({ itemCount: 2 }), { done: [], failed: [failure(0), failure(1)], executions: 6 }, T0);
    expect(after.state).toBe("done");
    expect(after.owner).toBeNull();
  });

  it("stays open and keeps the owner while positions are left", () => {
    const before = cp({ itemCount: 5 });
    const after = commitBatch(before, { done: [0, 1, 2, 3], failed: [], executions: 4 }, T0);
    expect(after.state).toBe("open");
    expect(after.owner).toEqual(before.owner);
  });

  it("release = true clears the owner of a shard that stays open", () => {
    const after = commitBatch(cp({ itemCount: 5 }), { done: [0], failed: [], executions: 1 }, T0, true);
    expect(after.state).toBe("open");
    expect(after.owner).toBeNull();
    // A released shard can be taken at once by anyone.
    expect(canTakeLease(after, owner({ execution: "x", taskIndex: 7 }), T0 + 1)).toEqual({ ok: true, reason: "released" });
  });

  it("does not mutate its input checkpoint or batch", () => {
    const before = cp({ itemCount: 10, done: [[0, 2]], failed: [failure(9)], parts: [{ name: "p1", count: 2 }], executions: 3 });
    const batch = { part: { name: "p2", count: 2 }, done: [3, 2], failed: [failure(8)], executions: 2 };
    const copy = structuredClone(before);
    const batchCopy = structuredClone(batch);
    const after = commitBatch(before, batch, T0 + 9);
    expect(before).toEqual(copy);
    expect(batch).toEqual(batchCopy);
    // Nor does it share the done ranges: changing the result leaves the input alone.
    (after.done[0] as [number, number])[1] = 99;
    expect(before.done).toEqual([[0, 2]]);
  });
});

describe("settledPositions", () => {
  it("is the union of done positions and failed positions", () => {
    const c = cp({
      done: [
        [0, 2],
        [5, 7],
      ],
      failed: [failure(3), failure(9)],
    });
    expect([...settledPositions(c)].sort((a, b) => a - b)).toEqual([0, 1, 3, 5, 6, 9]);
  });

  it("is empty for a fresh checkpoint", () => {
    expect(settledPositions(cp()).size).toBe(0);
  });
});

describe("checkpointDue", () => {
  const cadence = { everyItems: 50, everyMs: 5_000 };

  it("is false with nothing pending, however long since the last write", () => {
    expect(checkpointDue({ pending: 0, sinceWriteMs: 10 * 60_000 }, cadence)).toBe(false);
  });

  it("is never true within 1000 ms of the last write, even with many items pending", () => {
    expect(MIN_WRITE_GAP_MS).toBe(1_000);
    expect(checkpointDue({ pending: 10_000, sinceWriteMs: 0 }, cadence)).toBe(false);
    expect(checkpointDue({ pending: 10_000, sinceWriteMs: 999 }, cadence)).toBe(false);
    expect(checkpointDue({ pending: 10_000, sinceWriteMs: 1_000 }, cadence)).toBe(true);
    // Even a cadence that asks for more is held to the gap.
    expect(checkpointDue({ pending: 1, sinceWriteMs: 999 }, { everyItems: 1, everyMs: 1 })).toBe(false);
  });

  it("is due once everyItems items are pending", () => {
    expect(checkpointDue({ pending: 49, sinceWriteMs: 2_000 }, cadence)).toBe(false);
    expect(checkpointDue({ pending: 50, sinceWriteMs: 2_000 }, cadence)).toBe(true);
  });

  it("is due once everyMs has passed with anything pending", () => {
    expect(checkpointDue({ pending: 1, sinceWriteMs: 4_999 }, cadence)).toBe(false);
    expect(checkpointDue({ pending: 1, sinceWriteMs: 5_000 }, cadence)).toBe(true);
  });
});

describe("heartbeatDue", () => {
  it("is due at a third of the TTL", () => {
    expect(heartbeatDue(9_999, 30_000)).toBe(false);
    expect(heartbeatDue(10_000, 30_000)).toBe(true);
  });

  it("is never due within 1000 ms of the last write, even for a short TTL", () => {
    expect(heartbeatDue(999, 1_500)).toBe(false);
    expect(heartbeatDue(1_000, 1_500)).toBe(true);
  });
});
