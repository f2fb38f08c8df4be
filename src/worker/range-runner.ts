/**
 * Works one leased range of a shard (DESIGN.md protocols 1-3 and 9). The task's slot pool takes
 * positions from it with `takeNext()`; finished outputs are committed as create-only output parts,
 * named by a checkpoint write conditioned on the generation this runner last saw. A conflicting
 * write by someone else is not a lost lease by itself: the runner reads the checkpoint again and
 * goes on if its lease is still there (a thief may have split off the range's unreserved tail);
 * only a lease taken over is lost, and then nothing more is committed.
 *
 * On a store with a per-object write gap (Cloud Storage) the checkpoint is written only when it
 * must be (horizon, isolation, heartbeat, end); between, output parts alone carry progress and
 * are adopted by whoever takes the lease over. On a folder store every part is named at once.
 */
import { addUsage, ZERO_USAGE, type Usage } from "../core/budget.js";
import { pacedWriteGapMs } from "../core/cadence.js";
import { checkpointMetadata, commit, firstUnsettled, myLease, settledRanges, type Batch } from "../core/checkpoint.js";
import { LeaseLost, PreconditionFailed } from "../core/errors.js";
import { partName } from "../core/ids.js";
import type { Job } from "../core/job.js";
import { keys } from "../core/keys.js";
import type { Logger } from "../core/log.js";
import { Checkpoint, type FailedItem, type Lease, type Owner, type PartRef, type RunRecord } from "../core/model.js";
import { rangeAdd } from "../core/ranges.js";
import type { Clock } from "../core/time.js";
import { getJson, putJson } from "../store/json.js";
import type { Generation, ObjectStore } from "../store/port.js";
import { crcHex, type ShardItems } from "./items.js";

export interface RangeTerms {
  progressMs: number;
  leaseTtlMs: number;
}

export interface RangeRunnerOptions {
  store: ObjectStore;
  job: Job;
  run: RunRecord;
  shard: string;
  shardNumber: number;
  me: Owner;
  items: ShardItems;
  cp: Checkpoint;
  generation: Generation;
  epoch: number;
  terms: RangeTerms;
  logger: Logger;
  clock: Clock;
  /** The task's current lookahead (positions reserved past the first unsettled one). */
  lookahead: () => number;
  /** Called when something the task loop waits for happened (a position can start, the range ended). */
  wake: () => void;
  /**
   * Before a suspect runs alone: every other range of the task writes what it has in flight (none,
   * now), so that a crash during the solo run counts against the suspect and nothing else.
   */
  beforeSolo?: () => Promise<void>;
}

/** Why a range stopped: done (every position settled), stopped (released), lost (taken over). */
export type RangeEnd = "done" | "released" | "lost";

interface Finished {
  pos: number;
  line: string;
}

interface Unnamed {
  ref: PartRef;
  seq: number;
  done: number[];
  failed: FailedItem[];
}

const UNSETTLED = 0;
const IN_FLIGHT = 1;
const SETTLED = 2;

export class RangeRunner {
  readonly shard: string;
  readonly shardNumber: number;
  readonly #o: RangeRunnerOptions;
  readonly #cpKey: string;
  #cp: Checkpoint;
  #gen: Generation;
  #epoch: number;
  #start: number;
  #end: number;
  #horizon: number;
  /** Per position: unsettled, in flight, or settled here or in the checkpoint. */
  readonly #state: Uint8Array;
  #cursor: number;
  readonly #inflightSet = new Set<number>();
  #left: number;
  #suspects: number[];
  /** The suspect whose solo run the checkpoint has recorded: it may start. */
  #armed: number | null = null;
  #arming = false;
  #extending = false;
  // What the next write commits.
  #done: Finished[] = [];
  #failed: FailedItem[] = [];
  #unnamed: Unnamed[] = [];
  #seq = 0;
  #executions = 0;
  #usage: Usage = ZERO_USAGE;
  #steps: Record<string, Record<string, unknown>>;
  #stepsDirty = false;
  #stop: { kind: "budget"; reason: string } | null = null;
  #lastCpWriteAt: number;
  #lastWriteAt: number;
  #flushing: Promise<void> = Promise.resolve();
  #ended: RangeEnd | null = null;
  #closing = false;
  readonly #lease = new AbortController();
  readonly #ticker = new AbortController();
  readonly #endedPromise: Promise<RangeEnd>;
  #resolveEnded!: (end: RangeEnd) => void;

  constructor(o: RangeRunnerOptions) {
    this.#o = o;
    this.shard = o.shard;
    this.shardNumber = o.shardNumber;
    this.#cpKey = keys.checkpoint(o.run.runId, o.shard);
    this.#cp = o.cp;
    this.#gen = o.generation;
    this.#epoch = o.epoch;
    const lease = myLease(o.cp, o.epoch, o.me);
    this.#start = lease.start;
    this.#end = lease.end;
    this.#horizon = lease.horizon;
    this.#suspects = [...lease.suspects];
    this.#steps = structuredClone(o.cp.steps);
    this.#stepsUsed = Object.keys(this.#steps).length > 0;
    this.#state = new Uint8Array(o.items.count);
    for (const [a, b] of settledRanges(o.cp)) this.#state.fill(SETTLED, a, Math.min(b, o.items.count));
    this.#cursor = this.#start;
    this.#left = 0;
    for (let p = this.#start; p < this.#end; p++) if (this.#state[p] !== SETTLED) this.#left++;
    const now = o.clock.now();
    this.#lastCpWriteAt = now;
    this.#lastWriteAt = now;
    this.#endedPromise = new Promise((r) => (this.#resolveEnded = r));
    void this.#tick();
  }

  /** Aborted when the lease is lost: items in flight here stop. */
  get leaseSignal(): AbortSignal {
    return this.#lease.signal;
  }

  #itemSignal: AbortSignal | undefined;
  /** What the items of this range listen to: the task's abort of items in flight, or the lease lost. */
  itemSignal(abortItems: AbortSignal): AbortSignal {
    return (this.#itemSignal ??= AbortSignal.any([abortItems, this.#lease.signal]));
  }

  /** The range's logger (tagged with its shard). */
  get logger(): Logger {
    return this.#o.logger;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get start(): number {
    return this.#start;
  }

  get mode(): Lease["mode"] {
    return this.#o.store.limits.objectWriteGapMs > 0 ? "parts" : "checkpoint";
  }

  /** True once the range's last write is done (or its lease was lost). */
  get hasEnded(): boolean {
    return this.#ended !== null;
  }

  /** Ends with the range's last write. */
  get ended(): Promise<RangeEnd> {
    return this.#endedPromise;
  }

  get inflight(): number {
    return this.#inflightSet.size;
  }

  /** True while suspects of a crashed owner run one at a time (and until the last one's end is written). */
  get isolating(): boolean {
    return this.#suspects.length > 0 || this.#soloSettling;
  }

  /** When this range last read a checkpoint another writer had written (ms): that write landed by then. */
  #otherWriteAt = 0;

  /** A suspect that ran alone settled, and the checkpoint does not say so yet. */
  #soloSettling = false;

  /** True when no position is left to start here, now or after a write (more work must come from elsewhere). */
  get exhausted(): boolean {
    if (this.#ended || this.#closing || this.#stop) return true;
    if (this.isolating) return false;
    return this.#nextCandidate(this.#end) >= this.#end;
  }

  get budgetStop(): { kind: "budget"; reason: string } | null {
    return this.#stop;
  }

  /** The checkpoint as this runner last wrote or read it (for step results and item budgets). */
  get checkpoint(): Checkpoint {
    return this.#cp;
  }

  /** Step results recorded for `pos` (the recorder adds to the object in place). */
  stepsFor(pos: number): Record<string, unknown> {
    this.#stepsUsed = true;
    return (this.#steps[String(pos)] ??= {});
  }

  #stepsUsed = false;

  stepRecorded(): void {
    this.#stepsDirty = true;
  }

  /** The next position this range may start now, marked in flight; null when none may. */
  takeNext(): number | null {
    if (this.#ended || this.#closing || this.#stop) return null;
    if (this.isolating) return this.#takeSuspect();
    const limit = Math.min(this.#horizon, this.#end);
    const p = this.#nextCandidate(limit);
    // Reserve more before the owner runs out, so that it never waits for its own horizon.
    if (this.#horizon < this.#end && !this.#extending && this.#horizon - p <= Math.ceil(this.#o.lookahead() / 2)) this.#extend();
    if (p >= limit) return null;
    this.#state[p] = IN_FLIGHT;
    this.#inflightSet.add(p);
    this.#cursor = p + 1;
    return p;
  }

  #takeSuspect(): number | null {
    if (this.#inflightSet.size > 0 || this.#soloSettling || !this.#suspects.length) return null;
    const p = this.#suspects[0]!;
    if (this.#armed === p) {
      this.#state[p] = IN_FLIGHT;
      this.#inflightSet.add(p);
      return p;
    }
    if (!this.#arming) {
      // Recorded in flight alone before it starts: if the process dies now, this one did it.
      this.#arming = true;
      (this.#o.beforeSolo?.() ?? Promise.resolve())
        .then(() => this.#flush("isolation", p))
        .then(() => (this.#armed = p))
        .catch(() => undefined)
        .finally(() => {
          this.#arming = false;
          this.#o.wake();
        });
    }
    return null;
  }

  #nextCandidate(limit: number): number {
    let p = Math.max(this.#cursor, this.#start);
    while (p < limit && this.#state[p] !== UNSETTLED) p++;
    this.#cursor = p;
    return p;
  }

  #extend(): void {
    this.#extending = true;
    this.#flush("horizon")
      .catch(() => undefined)
      .finally(() => {
        this.#extending = false;
        this.#o.wake();
      });
  }

  /** A position finished with an output (the line of the output part). */
  done(pos: number, line: string): void {
    this.#done.push({ pos, line });
    this.#settle(pos);
  }

  /** A position failed for good. */
  failed(f: FailedItem): void {
    this.#failed.push(f);
    this.#settle(f.pos);
  }

  /** A position started and was given back unsettled (the task is stopping). */
  abandoned(pos: number): void {
    if (this.#state[pos] !== IN_FLIGHT) return;
    this.#state[pos] = UNSETTLED;
    this.#inflightSet.delete(pos);
    if (pos < this.#cursor) this.#cursor = pos;
    this.#o.wake();
    this.#maybeEnd();
  }

  executionStarted(): void {
    this.#executions++;
  }

  spent(usage: Usage): void {
    this.#usage = addUsage(this.#usage, usage);
  }

  /** The shard's budget stopped it: no more items start here; the release records why. */
  stopForBudget(reason: string): void {
    this.#stop ??= { kind: "budget", reason };
    this.#maybeEnd();
  }

  #settle(pos: number): void {
    this.#inflightSet.delete(pos);
    if (this.#state[pos] !== SETTLED && pos >= this.#start && pos < this.#end) this.#left--;
    this.#state[pos] = SETTLED;
    if (this.#stepsUsed) delete this.#steps[String(pos)];
    if (this.#suspects[0] === pos) {
      this.#suspects.shift();
      this.#armed = null;
      // Its end is written before anything else starts: a crash after it must not count against it.
      this.#soloSettling = true;
      void this.#flush("isolation")
        .catch(() => undefined)
        .finally(() => {
          this.#soloSettling = false;
          this.#o.wake();
        });
    } else if (this.#suspects.includes(pos)) this.#suspects = this.#suspects.filter((s) => s !== pos);
    this.#o.wake();
    if (this.mode === "checkpoint" && this.#done.length + this.#failed.length >= this.#o.job.checkpoint.everyItems) void this.#flush("tick").catch(() => undefined);
    this.#maybeEnd();
  }

  /** Stop taking positions; once those in flight settle (or are given back), release the lease. */
  close(): void {
    this.#closing = true;
    this.#maybeEnd();
  }

  /** Writes what is buffered now (SIGTSTP), within the store's write limits. */
  checkpointNow(): Promise<void> {
    return this.#flush("now").catch(() => undefined);
  }

  #maybeEnd(): void {
    if (this.#ended || this.#inflightSet.size > 0) return;
    if (this.#left <= 0) void this.#finish("done");
    else if (this.#closing || this.#stop) void this.#finish("released");
  }

  #finishing = false;
  async #finish(how: "done" | "released"): Promise<void> {
    if (this.#finishing) return;
    this.#finishing = true;
    try {
      await this.#flush(how === "done" ? "final" : "release");
      this.#end_(how);
    } catch (e) {
      this.#end_(e instanceof LeaseLost ? "lost" : "released");
      if (!(e instanceof LeaseLost)) this.#o.logger.error("last checkpoint of a range failed", { shard: this.shard, error: String(e) });
    }
  }

  #end_(how: RangeEnd): void {
    if (this.#ended) return;
    this.#ended = how;
    this.#ticker.abort();
    if (how === "lost") this.#lease.abort(new LeaseLost(`lease on ${this.shard} lost`));
    this.#resolveEnded(how);
    this.#o.wake();
  }

  /** Progress at the launch's cadence: outputs durable within one interval, a heartbeat well within the TTL. */
  async #tick(): Promise<void> {
    const signal = this.#ticker.signal;
    while (!signal.aborted) {
      try {
        await this.#o.clock.sleep(this.#o.terms.progressMs, signal);
      } catch {
        return;
      }
      if (this.#ended) return;
      const now = this.#o.clock.now();
      const pending = this.#done.length + this.#failed.length > 0 || this.#stepsDirty;
      const heartbeat = now - this.#lastWriteAt >= this.#o.terms.leaseTtlMs / 3;
      if (pending || heartbeat) await this.#flush(heartbeat && !pending ? "heartbeat" : "tick").catch(() => undefined);
    }
  }

  /** Serialized: one write of this range at a time. */
  #flush(reason: WriteReason, solo?: number): Promise<void> {
    const next = this.#flushing.then(() => this.#write(reason, solo));
    this.#flushing = next.catch(() => undefined);
    return next;
  }

  async #write(reason: WriteReason, solo?: number): Promise<void> {
    if (this.#ended === "lost") throw new LeaseLost(`lease on ${this.shard} lost`);
    if (this.#ended) return;
    const { store, clock } = this.#o;
    if (this.#done.length || this.#failed.length) await this.#writePart();
    const now = clock.now();
    const gap = store.limits.objectWriteGapMs;
    const must = reason === "final" || reason === "release" || reason === "horizon" || reason === "isolation" || reason === "now";
    const heartbeatDue = now - this.#lastWriteAt >= this.#o.terms.leaseTtlMs / 3;
    const wanted =
      must ||
      heartbeatDue ||
      reason === "heartbeat" ||
      (this.mode === "checkpoint" && (this.#unnamed.length > 0 || this.#stepsDirty)) ||
      (this.mode === "parts" && this.#stepsDirty && now - this.#lastCpWriteAt >= this.#o.job.checkpoint.everyMs);
    if (!wanted) return;
    if (gap > 0) {
      const since = now - Math.max(this.#lastCpWriteAt, this.#otherWriteAt);
      if (since < gap) {
        if (!must && !heartbeatDue) return; // the parts written are durable; the checkpoint can wait
        await clock.sleep(gap - since);
      }
    }
    await this.#writeCheckpoint(reason, solo);
  }

  async #writePart(): Promise<void> {
    const { store, run, clock } = this.#o;
    const done = this.#done.splice(0);
    const failed = this.#failed.splice(0);
    const seq = ++this.#seq;
    const name = partName(this.#epoch, seq);
    const body = done.map((d) => d.line).join("\n") + (done.length ? "\n" : "") + failed.map((f) => failureLine(f) + "\n").join("");
    const bytes = Buffer.from(body, "utf8");
    const ref: PartRef = {
      name,
      count: done.length,
      failed: failed.length,
      bytes: bytes.length,
      crc32c: crcHex(bytes),
      positions: rangeAdd([], done.map((d) => d.pos)).map(([a, b]) => [a, b] as [number, number]),
    };
    // Protocol 2: the part first, create-only; the checkpoint that names it commits it.
    await store.put(keys.part(run.runId, this.shard, name), bytes, {
      ifGenerationMatch: 0,
      contentType: "application/x-ndjson",
      metadata: { ep: String(this.#epoch), seq: String(seq), n: String(done.length), f: String(failed.length), x: String(this.#executions), tk: String(this.#usage.tokens), usd: String(this.#usage.usd) },
    });
    this.#unnamed.push({ ref, seq, done: done.map((d) => d.pos), failed });
    this.#lastWriteAt = clock.now();
  }

  async #writeCheckpoint(reason: WriteReason, solo?: number): Promise<void> {
    const { store, clock, me } = this.#o;
    const naming = this.#unnamed.splice(0);
    const executions = this.#executions;
    const usage = this.#usage;
    const stepsDirty = this.#stepsDirty;
    this.#executions = 0;
    this.#usage = ZERO_USAGE;
    this.#stepsDirty = false;
    const elapsedMs = Math.max(0, clock.now() - this.#lastCpWriteAt);
    const inflight = solo !== undefined ? [solo] : this.#inflightPositions();
    let restore = true;
    try {
      for (let tries = 0; ; tries++) {
        const lease = myLease(this.#cp, this.#epoch, me);
        // Reserve `lookahead` positions past the next one to start (never past the lease's end).
        const horizon = reason === "release" || reason === "isolation" ? lease.horizon : Math.min(lease.end, Math.max(lease.horizon, this.#cursor + this.#o.lookahead()));
        const batch: Batch = {
          earlierParts: naming.map((u) => u.ref),
          namedSeq: naming.length ? naming[naming.length - 1]!.seq : 0,
          done: naming.flatMap((u) => u.done),
          failed: naming.flatMap((u) => u.failed),
          executions,
          ...(stepsDirty || naming.length ? { steps: this.#steps } : {}),
          usage,
          elapsedMs,
          inflight,
          horizon,
          suspects: this.#suspects,
          ...(this.#stop && (reason === "release" || reason === "final") ? { stop: this.#stop } : {}),
          release: reason === "release",
        };
        const next = commit(this.#cp, this.#epoch, me, batch, clock.now());
        try {
          this.#gen = await putJson(store, this.#cpKey, next, { ifGenerationMatch: this.#gen, metadata: checkpointMetadata(next) });
          this.#cp = next;
          restore = false;
          const now = clock.now();
          this.#lastCpWriteAt = now;
          this.#lastWriteAt = now;
          const mine = next.leases.find((l) => l.epoch === this.#epoch);
          if (mine) this.#horizon = mine.horizon;
          // Every position of the lease settled and committed: the checkpoint dropped the lease.
          else if (this.#inflightSet.size === 0 && !this.#done.length && !this.#failed.length) this.#end_("done");
          return;
        } catch (e) {
          if (!(e instanceof PreconditionFailed)) throw e;
          if (tries >= 20) throw new Error(`checkpoint of ${this.shard} keeps changing under this task (${tries} tries)`);
          await this.#reread();
          // The winner's write has landed (the read saw it), perhaps a moment ago: a paced gap from
          // now, and a random part of another so that two losers do not come back together.
          const paced = pacedWriteGapMs(store.limits);
          if (paced > 0) await clock.sleep(paced * (1 + 0.5 * Math.random()));
        }
      }
    } catch (e) {
      if (restore) {
        // Not written: what it would have committed is committed by the next write (or lost with the lease).
        this.#unnamed.unshift(...naming);
        this.#executions += executions;
        this.#usage = addUsage(this.#usage, usage);
        this.#stepsDirty ||= stepsDirty;
      }
      if (e instanceof LeaseLost) this.#lost();
      throw e;
    }
  }

  /** Someone else wrote the checkpoint: read it again; throws LeaseLost when the lease is gone. */
  async #reread(): Promise<void> {
    const fresh = await getJson(this.#o.store, this.#cpKey, Checkpoint);
    if (!fresh) throw new LeaseLost(`checkpoint of ${this.shard} vanished`);
    this.#cp = fresh.value;
    this.#gen = fresh.generation;
    // Another writer's write landed before this read (its stamp may be far older on a busy
    // process, so the read, not the stamp, is what the next write paces from).
    this.#otherWriteAt = this.#o.clock.now();
    const lease = myLease(fresh.value, this.#epoch, this.#o.me);
    if (lease.end < this.#end) {
      // A thief split off our unreserved tail: those positions were never started here.
      for (let p = lease.end; p < this.#end; p++) if (this.#state[p] === UNSETTLED) this.#left--;
      this.#end = lease.end;
      this.#o.wake();
      this.#maybeEnd();
    }
  }

  #lost(): void {
    if (this.#ended) return;
    this.#o.logger.warn("lease lost: another attempt owns the range; committing nothing more", { shard: this.shard, epoch: this.#epoch });
    this.#done = [];
    this.#failed = [];
    this.#unnamed = [];
    this.#end_("lost");
  }

  #inflightPositions(): number[] {
    return [...this.#inflightSet].sort((a, b) => a - b);
  }

  /** First position not settled (for logs and tests). */
  firstUnsettled(): number {
    return firstUnsettled(settledRanges(this.#cp), this.#start, this.#end);
  }
}

type WriteReason = "tick" | "heartbeat" | "horizon" | "isolation" | "final" | "release" | "now";

function failureLine(f: FailedItem): string {
  const { pos: _pos, i, key, ...failed } = f;
  return JSON.stringify({ i, key, failed });
}

