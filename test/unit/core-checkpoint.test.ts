import { describe, expect, it } from "vitest";
import {
  checkpointMetadata,
  checkpointProblems,
  claimedCheckpoint,
  commit,
  horizonFor,
  leaseDecision,
  settledRanges,
  splitOff,
  stealable,
  takeOver,
  type LeaseTerms,
} from "../../src/core/checkpoint.js";
import { LeaseLost } from "../../src/core/errors.js";
import { Checkpoint, type FailedItem, type Lease, type Owner } from "../../src/core/model.js";

const T0 = Date.UTC(2026, 10, 22, 2, 0, 0);
const TTL = 30_000;
const TERMS: LeaseTerms = { leaseTtlMs: TTL, lookahead: 4, mode: "checkpoint" };
const describeItem = (pos: number) => ({ i: 100 + pos, key: `k${pos}` });

function owner(over: Partial<Owner> = {}): Owner {
  return { execution: "exec-a", taskIndex: 0, attempt: 0, launch: 0, ...over };
}

function failure(pos: number, over: Partial<FailedItem> = {}): FailedItem {
  return { pos, i: 100 + pos, key: `k${pos}`, error: "boom", attempts: 3, reason: "error", ...over };
}

function lease(cp: Checkpoint, epoch: number): Lease {
  const l = cp.leases.find((x) => x.epoch === epoch);
  if (!l) throw new Error(`no lease ${epoch}`);
  return l;
}

const fresh = (n = 10, me = owner()) => claimedCheckpoint("20261122-020000-demo-ab12", "s000000", n, me, T0, TERMS);

describe("claimedCheckpoint", () => {
  it("is one lease over every position, owned by the claimer, epoch 1, reserving `lookahead` positions", () => {
    const cp = fresh();
    expect(Checkpoint.parse(cp)).toEqual(cp);
    expect(cp.leases).toHaveLength(1);
    expect(lease(cp, 1)).toMatchObject({ start: 0, end: 10, owner: owner(), horizon: 4, inflight: [], suspects: [] });
    expect(cp).toMatchObject({ epoch: 1, epochSeq: 1, owner: owner(), state: "open", done: [], failed: [], parts: [] });
  });

  it("is done at once for a shard of no items, with no lease", () => {
    const cp = fresh(0);
    expect(cp.state).toBe("done");
    expect(cp.leases).toEqual([]);
  });
});

describe("leaseDecision", () => {
  const l = (over: Partial<Lease> = {}): Lease => ({ ...lease(fresh(), 1), ...over });

  it("takes a released lease", () => {
    expect(leaseDecision(l({ owner: null }), owner({ taskIndex: 3 }), T0)).toEqual({ ok: true, reason: "released" });
  });
  it("takes over at once from a predecessor: same execution and task index, lower attempt", () => {
    expect(leaseDecision(l(), owner({ attempt: 1 }), T0 + 1)).toEqual({ ok: true, reason: "predecessor" });
  });
  it("knows its own lease and does not take it again", () => {
    expect(leaseDecision(l(), owner(), T0 + 1)).toEqual({ ok: false, reason: "mine" });
  });
  it("does not let a lower attempt take a lease from its successor", () => {
    expect(leaseDecision(l({ owner: owner({ attempt: 2 }) }), owner({ attempt: 1 }), T0 + 1)).toEqual({ ok: false, reason: "held" });
  });
  it("takes a lease held by a task of an earlier launch, even with a live heartbeat", () => {
    expect(leaseDecision(l(), owner({ execution: "exec-b", launch: 1 }), T0 + 1)).toEqual({ ok: true, reason: "earlier-launch" });
  });
  it("refuses a lease held by another task of the same launch with a live heartbeat", () => {
    expect(leaseDecision(l(), owner({ taskIndex: 1 }), T0 + TTL)).toEqual({ ok: false, reason: "held" });
  });
  it("takes a lease only once its heartbeat and every other sign of life are older than its TTL", () => {
    expect(leaseDecision(l(), owner({ taskIndex: 1 }), T0 + TTL + 1)).toEqual({ ok: true, reason: "expired" });
    // An output part written recently is a sign of life (a store where parts carry progress).
    expect(leaseDecision(l(), owner({ taskIndex: 1 }), T0 + TTL + 1, T0 + 10)).toEqual({ ok: false, reason: "held" });
  });
});

describe("commit", () => {
  const me = owner();

  it("adds done positions, failures, the part and the executions, and moves the horizon on", () => {
    const cp = fresh();
    const part = { name: "000001-000001.jsonl", count: 2, failed: 1, bytes: 40, crc32c: "00000000", positions: [[0, 2]] as [number, number][] };
    const next = commit(cp, 1, me, { part, done: [0, 1], failed: [failure(2)], executions: 3, inflight: [3], horizon: 8 }, T0 + 500);
    expect(Checkpoint.parse(next)).toEqual(next);
    expect(next.done).toEqual([[0, 2]]);
    expect(next.failed).toEqual([failure(2)]);
    expect(next.parts).toEqual([part]);
    expect(next.executions).toBe(3);
    expect(lease(next, 1)).toMatchObject({ horizon: 8, inflight: [3], heartbeatAt: T0 + 500 });
    expect(cp.done).toEqual([]); // the input is untouched
  });

  it("never moves a horizon back or past the lease's end", () => {
    const cp = commit(fresh(), 1, me, { done: [], failed: [], executions: 0, inflight: [], horizon: 2 }, T0);
    expect(lease(cp, 1).horizon).toBe(4);
    expect(lease(commit(cp, 1, me, { done: [], failed: [], executions: 0, inflight: [], horizon: 99 }, T0), 1).horizon).toBe(10);
  });

  it("drops a lease whose positions are all settled, and the shard is done when every position is", () => {
    const next = commit(fresh(3), 1, me, { done: [0, 2], failed: [failure(1)], executions: 3, inflight: [] }, T0);
    expect(next.state).toBe("done");
    expect(next.leases).toEqual([]);
    expect(next.owner).toBeNull();
    // The mirror keeps the epoch of the last owner.
    expect(next.epoch).toBe(1);
  });

  it("release leaves the range to anyone, with nothing in flight", () => {
    const next = commit(fresh(), 1, me, { done: [0], failed: [], executions: 1, inflight: [1, 2], release: true }, T0);
    expect(lease(next, 1)).toMatchObject({ owner: null, inflight: [] });
    expect(next.state).toBe("open");
  });

  it("throws LeaseLost when the lease was taken over, and refuses positions outside the lease", () => {
    const taken = takeOver(fresh(), 1, owner({ attempt: 1 }), T0 + 1, { ...TERMS, crashLimit: 2, describe: describeItem }).cp;
    expect(() => commit(taken, 1, me, { done: [0], failed: [], executions: 1, inflight: [] }, T0)).toThrow(LeaseLost);
    const split = splitOff(fresh(), owner({ taskIndex: 1 }), T0, { ...TERMS, minSize: 1 })!;
    expect(() => commit(split.cp, 1, me, { done: [9], failed: [], executions: 1, inflight: [] }, T0)).toThrow(LeaseLost);
  });

  it("keeps step results only for positions not settled", () => {
    const cp = commit(fresh(), 1, me, { done: [], failed: [], executions: 0, inflight: [0, 1], steps: { "0": { a: 1 }, "1": { b: 2 } } }, T0);
    const next = commit(cp, 1, me, { done: [0], failed: [], executions: 0, inflight: [1] }, T0);
    expect(next.steps).toEqual({ "1": { b: 2 } });
  });
});

describe("takeOver", () => {
  const next = owner({ attempt: 1 });
  const opts = { ...TERMS, crashLimit: 2, describe: describeItem };

  it("gives the lease a new epoch and owner; a released lease leaves no suspects", () => {
    const released = commit(fresh(), 1, owner(), { done: [0], failed: [], executions: 1, inflight: [], release: true }, T0);
    const { cp, crashed } = takeOver(released, 1, owner({ taskIndex: 4 }), T0 + 1, opts);
    expect(crashed).toEqual([]);
    expect(cp.epochSeq).toBe(2);
    expect(cp.epoch).toBe(2);
    expect(cp.leases[0]).toMatchObject({ epoch: 2, owner: owner({ taskIndex: 4 }), suspects: [], start: 0, end: 10 });
  });

  it("counts a crash against what a crashed owner had in flight, and runs those and what it may have started since one at a time", () => {
    const held = commit(fresh(), 1, owner(), { done: [0], failed: [], executions: 3, inflight: [1, 3] }, T0);
    const { cp, crashed } = takeOver(held, 1, next, T0 + 1, { ...opts, previousEnd: "crashed" });
    expect(crashed).toEqual([]);
    expect(cp.crashes).toEqual({ "1": 1, "3": 1 });
    // 2 was below the horizon, unsettled and not in flight at the write: it may have started since.
    expect(lease(held, 1).horizon).toBe(4);
    expect(lease(cp, 2).suspects).toEqual([1, 2, 3]);
  });

  it("records in flight, rather than isolating, what an owner whose lease expired may have started since its write", () => {
    const held = commit(fresh(), 1, owner(), { done: [0], failed: [], executions: 3, inflight: [1, 3] }, T0);
    const { cp } = takeOver(held, 1, owner({ taskIndex: 7 }), T0 + 1, { ...opts, previousEnd: "unknown" });
    expect(cp.crashes).toEqual({ "1": 1, "3": 1 });
    expect(lease(cp, 2).suspects).toEqual([1, 3]);
    // 2 runs with the others, recorded in flight by the takeover, and stays reserved.
    expect(lease(cp, 2).inflight).toEqual([2]);
    expect(lease(cp, 2).horizon).toBeGreaterThanOrEqual(3);
    // The new owner dies before its first write: 2 counts a crash and joins the suspects (1 and 3
    // never started there, and count nothing more).
    const again = takeOver(cp, 2, owner({ taskIndex: 8 }), T0 + 2, opts);
    expect(again.cp.crashes).toEqual({ "1": 1, "2": 1, "3": 1 });
    expect(lease(again.cp, 3).suspects).toEqual([1, 2, 3]);
  });

  it("counts nothing against the items of an owner killed from outside (a SIGKILL, a timeout)", () => {
    const held = commit(fresh(), 1, owner(), { done: [0], failed: [], executions: 3, inflight: [1, 3] }, T0);
    const { cp } = takeOver(held, 1, next, T0 + 1, { ...opts, previousEnd: "killed" });
    expect(cp.crashes).toEqual({});
    expect(lease(cp, 2).suspects).toEqual([]);
  });

  it("records every unsettled position below the horizon in flight when the crashed owner recorded nothing in flight", () => {
    const { cp } = takeOver(fresh(), 1, next, T0 + 1, opts);
    expect(lease(cp, 2).suspects).toEqual([]);
    expect(lease(cp, 2).inflight).toEqual([0, 1, 2, 3]);
    // The new owner dies before its first write: each counts one crash and runs alone.
    const again = takeOver(cp, 2, owner({ attempt: 2 }), T0 + 2, opts);
    expect(again.cp.crashes).toEqual({ "0": 1, "1": 1, "2": 1, "3": 1 });
    expect(lease(again.cp, 3).suspects).toEqual([0, 1, 2, 3]);
  });

  it("fails a suspect `crashed` once it reaches the limit, running alone; the rest goes on", () => {
    const held = commit(fresh(), 1, owner(), { done: [], failed: [], executions: 2, inflight: [0, 1] }, T0);
    let cp = takeOver(held, 1, next, T0 + 1, opts).cp; // 0 and 1: one crash each, suspects
    cp = commit(cp, 2, next, { done: [], failed: [], executions: 1, inflight: [0], suspects: [0, 1] }, T0 + 2); // 0 runs alone
    const second = takeOver(cp, 2, owner({ attempt: 2 }), T0 + 3, opts);
    expect(second.crashed).toEqual([expect.objectContaining({ pos: 0, i: 100, key: "k0", reason: "crashed", attempts: 2 })]);
    expect(second.cp.failed.map((f) => f.pos)).toEqual([0]);
    // 1 is still a suspect; 2 and 3 (reserved, never recorded in flight by an owner) are recorded
    // in flight by the takeover again.
    expect(lease(second.cp, 3).suspects).toEqual([1]);
    expect(lease(second.cp, 3).inflight).toEqual([2, 3]);
    expect(second.cp.crashes["1"]).toBe(1);
    expect(second.cp.crashes["2"]).toBeUndefined();
    expect(second.cp.state).toBe("open");
  });

  it("adopts output parts the dead owner wrote after its last checkpoint", () => {
    const held = { ...fresh(), leases: [{ ...lease(fresh(), 1), mode: "parts" as const }] };
    const ref = { name: "000001-000001.jsonl", count: 2, failed: 0, positions: [[0, 2]] as [number, number][] };
    const { cp } = takeOver(held, 1, next, T0 + 1, { ...opts, adopt: [{ ref, done: [0, 1], failed: [], executions: 2, usage: { tokens: 5, usd: 0 }, seq: 1 }] });
    expect(cp.parts).toEqual([ref]);
    expect(cp.done).toEqual([[0, 2]]);
    expect(cp.executions).toBe(2);
    expect(cp.usage.tokens).toBe(5);
    expect(lease(cp, 2).horizon).toBeGreaterThanOrEqual(2);
  });
});

describe("splitOff", () => {
  const thief = owner({ taskIndex: 1 });

  it("takes the back half of the largest unreserved tail, with the next epoch", () => {
    const cp = fresh(10); // horizon 4: positions 4..9 unreserved
    const s = splitOff(cp, thief, T0, { ...TERMS, lookahead: 2, minSize: 1 })!;
    expect(s.epoch).toBe(2);
    expect(s.cp.epochSeq).toBe(2);
    expect(lease(s.cp, 1)).toMatchObject({ start: 0, end: 7 });
    expect(lease(s.cp, 2)).toMatchObject({ start: 7, end: 10, owner: thief, horizon: 9 });
    expect(Checkpoint.parse(s.cp)).toEqual(s.cp);
  });

  it("never takes positions below an owner's horizon", () => {
    const cp = commit(fresh(10), 1, owner(), { done: [], failed: [], executions: 0, inflight: [], horizon: 9 }, T0);
    const s = splitOff(cp, thief, T0, { ...TERMS, minSize: 1 })!;
    expect(lease(s.cp, 2).start).toBe(9);
    expect(splitOff(commit(cp, 1, owner(), { done: [], failed: [], executions: 0, inflight: [], horizon: 10 }, T0), thief, T0, { ...TERMS, minSize: 1 })).toBeNull();
  });

  it("takes nothing smaller than minSize", () => {
    expect(stealable(lease(fresh(10), 1))).toBe(6);
    expect(splitOff(fresh(10), thief, T0, { ...TERMS, minSize: 7 })).toBeNull();
  });
});

describe("horizonFor and settledRanges", () => {
  it("reserves `lookahead` unsettled positions past the first one", () => {
    expect(horizonFor([[0, 3]], { start: 0, end: 10, horizon: 0 }, 2)).toBe(5);
    expect(horizonFor([], { start: 5, end: 7, horizon: 5 }, 10)).toBe(7);
  });
  it("settledRanges merges done and failed positions", () => {
    expect(settledRanges({ done: [[0, 2]], failed: [failure(2), failure(5)] })).toEqual([
      [0, 3],
      [5, 6],
    ]);
  });
});

describe("checkpointProblems", () => {
  it("is empty for a sound checkpoint", () => {
    const part = { name: "000001-000001.jsonl", count: 2, failed: 0 };
    expect(checkpointProblems(commit(fresh(3), 1, owner(), { part, done: [0, 1], failed: [], executions: 2, inflight: [] }, T0), 3)).toEqual([]);
  });
  it("refuses done ranges beyond the shard, counts that do not add up and a done state with positions left", () => {
    const bad = { ...fresh(5), done: [[0, 500]] as [number, number][], state: "done" as const, leases: [] };
    const problems = checkpointProblems(bad, 5);
    expect(problems.join("\n")).toContain("outside the shard's 5 items");
    expect(problems.join("\n")).toContain("parts hold 0 outputs, but 500 positions are done");
    expect(checkpointProblems({ ...fresh(5), failed: [failure(1), failure(1)] }, 5).join("\n")).toContain("failed twice");
    expect(checkpointProblems({ ...fresh(5), state: "done", leases: [] }, 5).join("\n")).toContain("neither done nor failed");
    expect(checkpointProblems(fresh(5), 6).join("\n")).toContain("itemCount is 5");
  });
});

describe("checkpointMetadata", () => {
  it("carries the counts a listing needs, and which parts of each epoch are named", () => {
    const part = { name: "000001-000001.jsonl", count: 2, failed: 0 };
    const cp = commit(fresh(5), 1, owner(), { part, done: [0, 1], failed: [failure(2)], executions: 4, inflight: [3], usage: { tokens: 7, usd: 0.5 } }, T0);
    expect(checkpointMetadata(cp)).toMatchObject({ st: "open", n: "5", d: "2", f: "1", x: "4", tk: "7", usd: "0.5", own: "1", ps: "1:1" });
    const partsMode = { ...cp, leases: cp.leases.map((l) => ({ ...l, mode: "parts" as const, namedSeq: 1 })) };
    expect(checkpointMetadata(partsMode).live).toBe("1:1");
  });
});
