/**
 * One task of a launch (DESIGN.md protocol 7): one pool of slots across every range it holds. It
 * takes positions from its ranges; when none can give one and slots are free, it claims more work —
 * its own next shard of the launch, then, with its own shards gone, work from other tasks (an
 * unclaimed shard at the end of another task's list, or the back half of a range someone holds).
 * So no slot waits for a shard to settle, and stragglers are split up, not waited for.
 */
import { ZERO_USAGE } from "../core/budget.js";
import { landedBy, launchCadence, lookaheadFor, minSplit, pacedWriteGapMs, startSpreadMs } from "../core/cadence.js";
import { claimedCheckpoint, checkpointMetadata, checkpointProblems, corruptCheckpoint, leaseDecision, splitOff, takeOver, type AdoptedPart, type LeaseTerms, type PreviousEnd } from "../core/checkpoint.js";
import { ownPositions, ownPositionsFromEnd, shardAt, victims } from "../core/claims.js";
import { PreconditionFailed } from "../core/errors.js";
import { shardId } from "../core/ids.js";
import type { Job } from "../core/job.js";
import { keys, unnamedParts } from "../core/keys.js";
import { taskShare } from "../core/limits.js";
import type { Logger } from "../core/log.js";
import { Checkpoint, ShardEntry, TaskRecord, type FailedItem, type LaunchRecord, type Lease, type Owner, type RunRecord } from "../core/model.js";
import { rangeCount } from "../core/ranges.js";
import { realClock, type Clock } from "../core/time.js";
import { getJson, parseJsonl, putJson, type Versioned } from "../store/json.js";
import type { ObjectStore } from "../store/port.js";
import { adoptableParts } from "./adopt.js";
import { RunBudget } from "./budget.js";
import { runItem, shardBudgetSpent } from "./item.js";
import { readShardItems, ShardItemsError, type ShardItems } from "./items.js";
import { Limiter } from "./limiter.js";
import { RangeRunner } from "./range-runner.js";

/** "budget": the run budget ran out; retrying the task would not help. */
export type TaskOutcome = "complete" | "stopped" | "budget";

export interface TaskOptions {
  store: ObjectStore;
  job: Job;
  run: RunRecord;
  launch: LaunchRecord;
  me: Owner;
  logger: Logger;
  /** Aborted when the task must stop taking items. */
  stopping: AbortSignal;
  /** Aborted when items in flight must be abandoned. */
  abortItems: AbortSignal;
  clock?: Clock;
  random?: () => number;
  onExecution?: (key: string) => void;
  /** Receives a function that checkpoints every range the task holds (for SIGTSTP). */
  onActiveShard?: (checkpointNow: (() => Promise<void>) | null) => void;
  /** How this task's previous attempt ended, when the launcher says (SHARDRUN_PREVIOUS_EXIT). */
  previousExit?: string;
}

/** What SHARDRUN_PREVIOUS_EXIT says of the previous attempt: killed from outside, or its own crash. */
export function previousEndOf(exit: string | undefined): PreviousEnd {
  if (!exit) return "unknown";
  if (exit === "timeout" || /^signal:SIG(KILL|TERM|INT|HUP)$/.test(exit)) return "killed";
  return "crashed";
}

/** Other tasks a thief looks at, and shards of each, before it calls the launch done. */
const VICTIMS = 6;
const LOOKS_PER_VICTIM = 3;
/** Claim rounds a task with nothing left tries before it exits. */
const IDLE_ROUNDS = 2;

/**
 * Leases one shard may hold at once on a store with a per-object write gap: each writes the
 * shard's checkpoint (its horizon, heartbeats, its end), and the object takes one write a second.
 */
export const MAX_LEASES_PER_SHARD = 4;
/** A thief leaves alone a checkpoint written less than this ago (ms; stores with a write gap). */
const THIEF_YIELD_MS = 2500;

/** When the newest output part of a "parts" lease above those its checkpoint names was written (0: none). */
async function newestPartAt(store: ObjectStore, runId: string, shard: string, lease: Lease): Promise<number> {
  const { prefix, startOffset } = unnamedParts(runId, shard, lease.epoch, lease.namedSeq);
  let newest = 0;
  let pageToken: string | undefined;
  do {
    const page = await store.list(prefix, { startOffset, withMetadata: true, ...(pageToken ? { pageToken } : {}) });
    for (const o of page.objects ?? []) newest = Math.max(newest, o.updated);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return newest;
}

export async function runTask(o: TaskOptions): Promise<TaskOutcome> {
  const clock = o.clock ?? realClock;
  const random = o.random ?? Math.random;
  const { store, run, launch, me, job } = o;
  const slots = run.settings.concurrency;
  const total = rangeCount(launch.shards);
  const tasks = launch.taskCount;
  const running = Math.min(launch.parallelism, launch.taskCount);
  const budget = new RunBudget({ store, run, launch, taskIndex: me.taskIndex, clock, random });
  const limiters = new Map(Object.entries(job.limits).map(([name, spec]) => [name, new Limiter(taskShare(spec, running), () => clock.now())]));
  const stats = new TaskStats(clock);
  const cadence = { progressMs: launch.progressMs, leaseTtlMs: launch.leaseTtlMs };
  const mode: Lease["mode"] = store.limits.objectWriteGapMs > 0 ? "parts" : "checkpoint";
  const lookahead = () => lookaheadFor({ slots, startsPerSecond: stats.startsPerSecond(), writeGapMs: store.limits.objectWriteGapMs, progressMs: cadence.progressMs });
  const terms = (): LeaseTerms => ({ leaseTtlMs: cadence.leaseTtlMs, lookahead: lookahead(), mode });
  const itemsCache = new Map<number, ShardItems>();
  let ranges: RangeRunner[] = [];
  let wakeUp: (() => void) | null = null;
  let woken = false;
  const wake = () => {
    woken = true;
    wakeUp?.();
  };
  const record = new HoldingsRecord(store, run.runId, launch.n, me, clock, o.logger);

  const startRange = (shardN: number, items: ShardItems, cp: Versioned<Checkpoint>, epoch: number): RangeRunner => {
    const r: RangeRunner = new RangeRunner({
      store,
      job,
      run,
      shard: shardId(shardN),
      shardNumber: shardN,
      me,
      items,
      cp: cp.value,
      generation: cp.generation,
      epoch,
      terms: cadence,
      logger: o.logger.child({ shard: shardId(shardN) }),
      clock,
      lookahead,
      wake,
      beforeSolo: (): Promise<void> => Promise.all(ranges.filter((x) => x !== r && !x.hasEnded).map((x) => x.checkpointNow())).then(() => undefined),
    });
    ranges.push(r);
    record.set(ranges);
    o.logger.info("lease taken", { shard: shardId(shardN), epoch, start: r.start });
    void r.ended.then(() => {
      record.set(ranges.filter((x) => x !== r));
      wake();
    });
    return r;
  };

  const itemsOf = async (shardN: number): Promise<ShardItems> => {
    const cached = itemsCache.get(shardN);
    if (cached) return cached;
    const items = await stats.timed(() => readShardItems(store, run, shardN));
    itemsCache.set(shardN, items);
    return items;
  };

  /**
   * Takes something of shard `shardN`: the whole shard when nobody claimed it, a lease it may take
   * over, or (`steal`) the back half of a range someone holds. "done": nothing is left there.
   */
  const acquire = async (shardN: number, steal: boolean): Promise<"taken" | "done" | "held"> => {
    const shard = shardId(shardN);
    const cpKey = keys.checkpoint(run.runId, shard);
    const mine = () => new Set(ranges.filter((r) => r.shardNumber === shardN).map((r) => r.epoch));
    const splitTerms = () => ({
      ...terms(),
      minSize: minSplit(stats.meanItemMs(), stats.roundTripMs()),
      ...(store.limits.objectWriteGapMs > 0 ? { maxLeases: MAX_LEASES_PER_SHARD } : {}),
    });
    /** Whether this checkpoint gives this task something to write: a lease to take over or a range to split. */
    const wouldWrite = (cp: Checkpoint, now: number): boolean => {
      const held = mine();
      try {
        return cp.leases.some((l) => !held.has(l.epoch) && leaseDecision(l, me, now).ok) || ((steal || ranges.length === 0) && splitOff(cp, me, now, splitTerms()) !== null);
      } catch {
        return true; // a checkpoint that does not add up: the checks below name it
      }
    };
    for (let tries = 0; tries < 4; tries++) {
      let cur = await stats.timed(() => getJson(store, cpKey, Checkpoint));
      let readAt = clock.now();
      // Nothing to take: the shard's items are not needed (a thief looks at many shards).
      if (cur?.value.state === "done") return "done";
      if (cur && !wouldWrite(cur.value, clock.now())) return "held";
      let items: ShardItems;
      try {
        items = await itemsOf(shardN);
      } catch (e) {
        if (!(e instanceof ShardItemsError)) throw e;
        await failCorruptShard(shardN, cur, e.message);
        return "done";
      }
      if (!cur) {
        const fresh = claimedCheckpoint(run.runId, shard, items.count, me, clock.now(), terms());
        try {
          const generation = await stats.timed(() => putJson(store, cpKey, fresh, { ifGenerationMatch: 0, metadata: checkpointMetadata(fresh) }));
          if (fresh.state === "done") return "done";
          startRange(shardN, items, { value: fresh, generation }, 1);
          return "taken";
        } catch (e) {
          if (!(e instanceof PreconditionFailed)) throw e;
          cur = await getJson(store, cpKey, Checkpoint);
          readAt = clock.now();
          if (!cur) continue;
        }
      }
      if (cur.value.state === "done") return "done";
      // A checkpoint that does not add up is never worked on: `shardrun verify` names it and
      // `rerun --repair` rebuilds it from the parts it names.
      const problems = checkpointProblems(cur.value, items.count);
      if (problems.length) {
        o.logger.error("checkpoint damaged: leaving the shard alone", { shard, object: cpKey, problems });
        return "done";
      }
      const current = cur.value;
      let now = clock.now();
      const held = mine();
      // A lease whose heartbeat has expired may still be alive: an owner writing parts commits
      // without touching the checkpoint, and may have failed to write it for a while (another
      // writer kept changing it). Its newest part is its sign of life (one listing, only then).
      const signs = new Map<number, number>();
      const decide = async (l: Lease) => {
        let d = leaseDecision(l, me, now, signs.get(l.epoch) ?? 0);
        if (d.ok && d.reason === "expired" && l.mode === "parts" && !signs.has(l.epoch)) {
          signs.set(l.epoch, await newestPartAt(store, run.runId, shard, l));
          d = leaseDecision(l, me, now, signs.get(l.epoch));
        }
        return d;
      };
      const findTakeable = async () => {
        for (const l of current.leases) if (!held.has(l.epoch) && (await decide(l)).ok) return l;
        return undefined;
      };
      let takeable = await findTakeable();
      if (store.limits.objectWriteGapMs > 0) {
        const writtenAt = Date.parse(current.updatedAt);
        // A thief yields to owners: one that lost a race comes back 1.1-1.65 s after it saw the
        // winner's write, and a thief that wrote sooner every time would starve it until its lease
        // expired. A checkpoint written this recently is left alone; others are not.
        if (!takeable && now - writtenAt < THIEF_YIELD_MS) return "held";
        // Another writer's checkpoint a moment ago (a retried attempt takes over at once): wait out
        // a paced gap from when it may have landed. `updatedAt` is stamped before that write was
        // sent, and a busy process may send it long after (see landedBy). The wait comes before this
        // write's own stamp, so that the next writer paces from when this one was really sent.
        const gap = landedBy(readAt, writtenAt) + pacedWriteGapMs(store.limits) - now;
        if (gap > 0) {
          await clock.sleep(gap);
          now = clock.now();
          takeable = await findTakeable();
        }
      }
      let next: Checkpoint | null = null;
      let epoch = 0;
      if (takeable) {
        const adopt: AdoptedPart[] = takeable.owner && takeable.mode === "parts" ? await adoptableParts(store, run.runId, shard, takeable, items) : [];
        const ownPredecessor = takeable.owner && takeable.owner.execution === me.execution && takeable.owner.taskIndex === me.taskIndex && takeable.owner.attempt === me.attempt - 1;
        const taken = takeOver(cur.value, takeable.epoch, me, now, {
          ...terms(),
          crashLimit: run.settings.crashLimit,
          previousEnd: ownPredecessor ? previousEndOf(o.previousExit) : "unknown",
          describe: (pos) => ({ i: items.index(pos), key: items.line(pos).key }),
          adopt,
        });
        next = taken.cp;
        epoch = taken.cp.epochSeq;
        for (const c of taken.crashed) o.logger.warn("item failed", { shard, item: c.key, reason: "crashed", attempts: c.attempts, error: c.error });
        const why = await decide(takeable);
        o.logger.info("taking over a lease", { shard, from: takeable.epoch, reason: why.ok ? why.reason : "", suspects: leaseSuspects(next, epoch) });
      } else if (steal || ranges.length === 0) {
        const split = splitOff(cur.value, me, now, splitTerms());
        if (split) {
          next = split.cp;
          epoch = split.epoch;
        }
      }
      if (!next) return "held";
      try {
        const generation = await stats.timed(() => putJson(store, cpKey, next, { ifGenerationMatch: cur.generation, metadata: checkpointMetadata(next) }));
        if (next.state === "done" || !next.leases.some((l) => l.epoch === epoch)) return "done";
        startRange(shardN, items, { value: next, generation }, epoch);
        return "taken";
      } catch (e) {
        if (!(e instanceof PreconditionFailed)) throw e;
      }
    }
    return "held";
  };

  /** A shard whose items cannot be read back intact fails at once, every unsettled item `corrupt`. */
  const failCorruptShard = async (shardN: number, cur: Versioned<Checkpoint> | null, reason: string): Promise<void> => {
    const shard = shardId(shardN);
    o.logger.error("shard items damaged: failing the shard", { shard, error: reason });
    const entry = await shardEntry(store, run, shardN);
    const indices = entry ? entry.indices.flatMap(([a, b]) => Array.from({ length: b - a }, (_, k) => a + k)) : [];
    const base = cur?.value ?? claimedCheckpoint(run.runId, shard, indices.length, me, clock.now(), terms());
    const settled = new Set<number>([...base.failed.map((f) => f.pos)]);
    for (const [a, b] of base.done) for (let p = a; p < b; p++) settled.add(p);
    const failed: FailedItem[] = indices.flatMap((i, pos) => (settled.has(pos) ? [] : [{ pos, i, key: `#${i}`, error: reason, attempts: 0, reason: "corrupt" as const }]));
    const next = corruptCheckpoint(base, failed, reason, clock.now());
    try {
      await putJson(store, keys.checkpoint(run.runId, shard), next, { ifGenerationMatch: cur?.generation ?? 0, metadata: checkpointMetadata(next) });
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
    }
  };

  const own = ownPositions(total, tasks, me.taskIndex);
  let ownLeft = true;
  /** One claim round: own shards first, then others'. True when something was taken. */
  const claim = async (): Promise<boolean> => {
    while (ownLeft) {
      const next = own.next();
      if (next.done) {
        ownLeft = false;
        break;
      }
      if ((await acquire(shardAt(launch.shards, next.value), false)) === "taken") return true;
    }
    let tried = 0;
    for (const v of victims(Math.min(tasks, total), me.taskIndex, random)) {
      if (tried++ >= VICTIMS || o.stopping.aborted) break;
      let looks = 0;
      for (const p of ownPositionsFromEnd(total, tasks, v)) {
        if (looks++ >= LOOKS_PER_VICTIM) break;
        const got = await acquire(shardAt(launch.shards, p), true);
        if (got === "taken") return true;
      }
    }
    return false;
  };

  // A launch's first attempts spread their first writes when all of them at once would be more
  // than the bucket takes (a retry takes over its predecessor's ranges at once, below).
  const spread = me.attempt === 0 ? startSpreadMs(store.limits, tasks) : 0;
  if (spread > 0) await clock.sleep(Math.floor(random() * spread), o.stopping).catch(() => undefined);

  // A new attempt takes over at once what its predecessor held (protocol 1).
  if (me.attempt > 0) {
    for (const [shardN] of await record.predecessorHoldings()) {
      if (o.stopping.aborted) break;
      await acquire(shardN, false).catch((e: unknown) => o.logger.warn("could not take over a predecessor's range", { shard: shardId(shardN), error: String(e) }));
    }
  }

  o.onActiveShard?.(() => Promise.all(ranges.map((r) => r.checkpointNow())).then(() => undefined));
  let inFlight = 0;
  let claiming: Promise<void> | null = null;
  let idleRounds = 0;
  let outOfBudget = false;
  let failure: unknown = null;
  let closed = false;
  try {
    for (;;) {
      if (o.stopping.aborted && !closed) {
        closed = true;
        for (const r of ranges) r.close();
      }
      // Fill free slots from the ranges held, oldest first; one at a time while a range isolates suspects.
      while (!o.stopping.aborted && !outOfBudget && inFlight < slots && !budget.gated) {
        const isolating = ranges.find((r) => r.isolating && !r.exhausted);
        let pick: { range: RangeRunner; pos: number } | null = null;
        if (isolating) {
          if (inFlight === 0) {
            const pos = isolating.takeNext();
            if (pos !== null) pick = { range: isolating, pos };
          }
        } else {
          for (const range of ranges) {
            const pos = range.takeNext();
            if (pos !== null) {
              pick = { range, pos };
              break;
            }
          }
        }
        if (!pick) break;
        const { range, pos } = pick;
        let stop: string | null;
        try {
          stop = shardBudgetSpent(range, run.settings.budgets) ?? (budget.limited ? await budget.admit() : null);
        } catch (e) {
          // Given back, so that the range can end and the task fail cleanly (a taken position held
          // forever would keep the range, and the task, from ever ending).
          range.abandoned(pos);
          throw e;
        }
        if (stop) {
          range.abandoned(pos);
          range.stopForBudget(stop);
          if (!run.settings.budgets.shard || (await budget.admit())) outOfBudget = true;
          o.logger.warn("budget exhausted: taking no more items", { shard: range.shard, reason: stop });
          continue;
        }
        inFlight++;
        stats.started();
        let line;
        try {
          line = (itemsCache.get(range.shardNumber) ?? (await itemsOf(range.shardNumber))).line(pos);
        } catch (e) {
          inFlight--;
          budget.settle(ZERO_USAGE, false);
          range.failed({ pos, i: -1, key: `#pos${pos}`, error: String(e), attempts: 0, reason: "corrupt" });
          continue;
        }
        void runItem(
          {
            store,
            job,
            runId: run.runId,
            args: run.args,
            logger: range.logger,
            clock,
            random,
            stopping: o.stopping,
            itemSignal: range.itemSignal(o.abortItems),
            ...(run.settings.itemTimeoutMs !== undefined ? { itemTimeoutMs: run.settings.itemTimeoutMs } : {}),
            limiters,
            budget,
            budgets: run.settings.budgets,
            stats,
            ...(o.onExecution ? { onExecution: o.onExecution } : {}),
          },
          range,
          pos,
          line,
        ).finally(() => {
          inFlight--;
          wake();
        });
      }
      ranges = ranges.filter((r) => !r.hasEnded);
      for (const n of [...itemsCache.keys()]) if (!ranges.some((r) => r.shardNumber === n)) itemsCache.delete(n);
      const canClaim = !o.stopping.aborted && !outOfBudget && failure === null && idleRounds < IDLE_ROUNDS;
      if (!claiming && canClaim && inFlight < slots && ranges.every((r) => r.exhausted)) {
        claiming = claim()
          .then((got) => {
            idleRounds = got ? 0 : idleRounds + 1;
          })
          .catch((e: unknown) => {
            failure = e;
          })
          .finally(() => {
            claiming = null;
            wake();
          });
      }
      if (inFlight === 0 && !claiming && ranges.length === 0 && (!canClaim || o.stopping.aborted)) break;
      if (!woken) await new Promise<void>((r) => (wakeUp = r));
      woken = false;
      wakeUp = null;
    }
  } finally {
    o.onActiveShard?.(null);
    for (const r of ranges) r.close();
    await Promise.all(ranges.map((r) => r.ended));
    await record.flush();
    await budget.release().catch((e: unknown) => o.logger.warn("could not give back the unspent budget reservation", { error: String(e) }));
  }
  if (failure) throw failure;
  if (o.stopping.aborted) return "stopped";
  return outOfBudget ? "budget" : "complete";
}

function leaseSuspects(cp: Checkpoint, epoch: number): number {
  return cp.leases.find((l) => l.epoch === epoch)?.suspects.length ?? 0;
}

/** The plan entry of shard `n` (only a damaged shard needs it: for the indices of its items). */
async function shardEntry(store: ObjectStore, run: RunRecord, n: number): Promise<ShardEntry | null> {
  const round = [...run.plan.rounds].reverse().find((r) => r.firstShard <= n);
  if (!round) return null;
  const obj = await store.get(keys.planRound(run.runId, round.round));
  if (!obj) return null;
  return parseJsonl(obj.bytes, ShardEntry, keys.planRound(run.runId, round.round)).find((e) => e.id === shardId(n)) ?? null;
}

/** Item starts remembered for the start rate: a second of them at 4,000 starts a second. */
const RATE_SAMPLES = 4096;
/** The start rate is measured over at least this long (ms). */
const RATE_WINDOW_MIN_MS = 1000;

/** Measures the task takes of its own work: item time, start rate, store round trips. */
class TaskStats {
  readonly #clock: Clock;
  #meanItemMs = 0;
  #items = 0;
  #roundTripMs = 20;
  #starts: number[] = [];

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  itemEnded(ms: number): void {
    this.#items++;
    this.#meanItemMs += (ms - this.#meanItemMs) / Math.min(this.#items, 50);
  }

  started(): void {
    const now = this.#clock.now();
    this.#starts.push(now);
    if (this.#starts.length > RATE_SAMPLES) this.#starts.splice(0, RATE_SAMPLES / 2);
  }

  /**
   * Starts a second, over the recent starts up to now, and over a second at least: the slots
   * filling at once when a task begins are a burst, not a rate (taken as one, it made the
   * lookahead reserve whole shards, so that no thief could split them, and a crash made every
   * position of them a suspect to run alone).
   */
  startsPerSecond(): number {
    const s = this.#starts;
    if (s.length < 2) return 0;
    const span = Math.max(RATE_WINDOW_MIN_MS, this.#clock.now() - s[0]!);
    return ((s.length - 1) * 1000) / span;
  }

  meanItemMs(): number {
    return this.#meanItemMs;
  }

  roundTripMs(): number {
    return this.#roundTripMs;
  }

  async timed<T>(fn: () => Promise<T>): Promise<T> {
    const t0 = this.#clock.now();
    try {
      return await fn();
    } finally {
      this.#roundTripMs += (this.#clock.now() - t0 - this.#roundTripMs) / 8;
    }
  }
}

/**
 * `launches/<n>/tasks/<t>.json`: the ranges this attempt holds, so that its next attempt takes them
 * over at once instead of waiting for their TTL. Written when holdings change, paced by the
 * store's write gap.
 */
class HoldingsRecord {
  readonly #store: ObjectStore;
  readonly #key: string;
  readonly #me: Owner;
  readonly #clock: Clock;
  readonly #logger: Logger;
  #wanted: [number, number][] = [];
  #written = "";
  #writing: Promise<void> | null = null;
  #lastAt = 0;

  constructor(store: ObjectStore, runId: string, launch: number, me: Owner, clock: Clock, logger: Logger) {
    this.#store = store;
    this.#key = keys.task(runId, launch, me.taskIndex);
    this.#me = me;
    this.#clock = clock;
    this.#logger = logger;
  }

  async predecessorHoldings(): Promise<[number, number][]> {
    const r = await getJson(this.#store, this.#key, TaskRecord).catch(() => null);
    return r && r.value.attempt < this.#me.attempt ? r.value.holdings : [];
  }

  set(ranges: readonly RangeRunner[]): void {
    this.#wanted = ranges.map((r) => [r.shardNumber, r.start]);
    this.#writing ??= this.#write().finally(() => (this.#writing = null));
  }

  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #write(): Promise<void> {
    for (;;) {
      const body = JSON.stringify(this.#wanted);
      if (body === this.#written) return;
      const wait = this.#lastAt + this.#store.limits.objectWriteGapMs - this.#clock.now();
      if (wait > 0) await this.#clock.sleep(wait);
      const wanted = this.#wanted;
      const record: TaskRecord = { v: 1, taskIndex: this.#me.taskIndex, attempt: this.#me.attempt, holdings: wanted, updatedAt: new Date(this.#clock.now()).toISOString() };
      try {
        await putJson(this.#store, this.#key, record);
        this.#written = JSON.stringify(wanted);
        this.#lastAt = this.#clock.now();
      } catch (e) {
        // Only a speed-up for the next attempt: a lease whose record is missing is taken at its TTL.
        this.#logger.warn("could not record the task's holdings", { error: String(e) });
        return;
      }
    }
  }
}

export { launchCadence };
