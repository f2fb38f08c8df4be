/**
 * The first pass of a plan: reads the job's source once, checks every item (its schema, its key,
 * the run's limits) and spools its final line (`{"i":…,"key":…,"item":…}\n`) to a local file,
 * keeping only numbers per item in typed arrays (line length, weight, cost). Nothing is written to
 * the store in this pass, so a plan that goes over a limit or meets a duplicate key stops having
 * written nothing; the second pass packs the spooled bytes into items objects without parsing
 * them again.
 */
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage, InvalidInputError } from "../core/errors.js";
import type { Job, PlanOrder, ShardPolicy } from "../core/job.js";
import { createShardCutter, hashCollisions, hashKey, PlanLimitExceeded, type PlanLimits } from "../core/plan.js";
import { F64Column, LineIndex, U32Column, WeightColumn } from "./plan-columns.js";

/** Items the first pass may hand to the event loop between: a sync source would otherwise hold it. */
const YIELD_EVERY = 4096;
const BUFFER_BYTES = 1 << 20;

const NOT_PARSED = { success: false } as const;

export type ItemSource = AsyncIterable<unknown> | Iterable<unknown>;

export interface SpoolOptions {
  job: Job;
  /** The job's parsed arguments, for its source. */
  args: unknown;
  /** Items from elsewhere than the job's source (`itemsFromJsonl`). @default the job's source */
  source?: ItemSource;
  /** A folder of the caller's, removed by the caller. */
  dir: string;
  signal: AbortSignal;
  limits: PlanLimits;
  policy: ShardPolicy;
  order: PlanOrder;
  onProgress?: (items: number) => void;
}

/** What the first pass leaves: the spool file and, per item in source order, numbers only. */
export interface Spool {
  file: FileHandle;
  path: string;
  count: number;
  lines: LineIndex;
  weights: WeightColumn;
  /** Only for "heaviest-first". */
  costs?: F64Column;
  totalWeight: number;
}

export async function spoolItems(o: SpoolOptions): Promise<Spool> {
  const path = join(o.dir, "items.jsonl");
  const file = await open(path, "w+");
  try {
    return await new Spooler(o, file, path).run();
  } catch (e) {
    await file.close();
    throw e;
  }
}

class Spooler {
  readonly #o: SpoolOptions;
  readonly #file: FileHandle;
  readonly #path: string;
  readonly #lines = new LineIndex();
  readonly #weights = new WeightColumn();
  readonly #costs: F64Column | undefined;
  /** Each item's key hash, for finding duplicate keys at the end of the pass. */
  #hashes: U32Column | undefined;
  readonly #needsParse: boolean;
  readonly #cutter: ReturnType<typeof createShardCutter> | undefined;
  readonly #perShard: number | undefined;
  /**
   * Lines are encoded into this buffer one by one as they come, rather than gathered as strings
   * and encoded in batches: strings kept alive across a young-generation GC make V8 grow the
   * young generation (measured: +67 MB at a million items).
   */
  #buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  /** The other buffer, written to the file while `#buffer` fills. */
  #spare = Buffer.allocUnsafe(BUFFER_BYTES);
  #writing: Promise<void> = Promise.resolve();
  #used = 0;
  /** Bytes of the spool already in the file; the buffer holds the ones after. */
  #flushed = 0;
  #count = 0;
  #shards = 0;
  /** The cutter's current shard has items. */
  #open = false;
  #totalWeight = 0;

  constructor(o: SpoolOptions, file: FileHandle, path: string) {
    this.#o = o;
    this.#file = file;
    this.#path = path;
    const job = o.job;
    this.#costs = o.order === "heaviest-first" ? new F64Column() : undefined;
    this.#needsParse = Boolean(job.key || job.weight || (this.#costs && job.cost));
    // Without key(), keys are "#<index>": unique by construction.
    this.#hashes = job.key ? new U32Column() : undefined;
    // Shards counted as the items go by, where the order does not change them, so that a plan
    // over the shard limit stops at once.
    if (o.order === "source" && !("count" in o.policy)) this.#cutter = createShardCutter(o.policy);
    if ("itemsPerShard" in o.policy) this.#perShard = o.policy.itemsPerShard;
  }

  async run(): Promise<Spool> {
    const { job, signal } = this.#o;
    let iterable: ItemSource;
    try {
      iterable = this.#o.source ?? job.source(this.#o.args as never, { signal });
    } catch (e) {
      throw new InvalidInputError(`job "${job.name}" source failed: ${errorMessage(e)}`, { cause: e });
    }
    if (Symbol.asyncIterator in iterable) await this.#readAsync(iterable as AsyncIterable<unknown>);
    else await this.#readSync(iterable as Iterable<unknown>);
    await this.#flush();
    await this.#writing;
    await this.#refuseDuplicates();
    if (this.#open) this.#countShard();
    return {
      file: this.#file,
      path: this.#path,
      count: this.#count,
      lines: this.#lines,
      weights: this.#weights,
      ...(this.#costs ? { costs: this.#costs } : {}),
      totalWeight: this.#totalWeight,
    };
  }

  async #readSync(iterable: Iterable<unknown>): Promise<void> {
    const it = iterable[Symbol.iterator]();
    let finished = false;
    try {
      for (;;) {
        let next: IteratorResult<unknown>;
        try {
          next = it.next();
        } catch (e) {
          throw this.#sourceFailed(e);
        }
        if (next.done) break;
        const pending = this.#add(next.value);
        if (pending) await pending;
        else if (this.#count % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
      }
      finished = true;
    } finally {
      // Stopped early (a limit, a duplicate, an abort): let the source close what it opened.
      if (!finished) it.return?.();
    }
  }

  async #readAsync(iterable: AsyncIterable<unknown>): Promise<void> {
    const it = iterable[Symbol.asyncIterator]();
    let finished = false;
    try {
      for (;;) {
        let next: IteratorResult<unknown>;
        try {
          next = await it.next();
        } catch (e) {
          throw this.#sourceFailed(e);
        }
        if (next.done) break;
        const pending = this.#add(next.value);
        if (pending) await pending;
      }
      finished = true;
    } finally {
      if (!finished) await it.return?.();
    }
  }

  #sourceFailed(e: unknown): Error {
    if (this.#o.signal.aborted) return this.#o.signal.reason instanceof Error ? this.#o.signal.reason : new Error(String(this.#o.signal.reason));
    // An error that already names the input (a bad line of an items file) is passed on as it is.
    if (e instanceof InvalidInputError) return e;
    return new InvalidInputError(`job "${this.#o.job.name}" source failed after ${this.#count} items: ${errorMessage(e)}`, { cause: e });
  }

  /**
   * The per-item path: kept free of awaits and allocations beyond the line itself, since it runs
   * a million times in a large plan. Returns a promise only when it must wait (a full buffer, or
   * a key to compare with an earlier one).
   */
  #add(raw: unknown): Promise<void> | undefined {
    const o = this.#o;
    if (o.signal.aborted) throw o.signal.reason;
    const index = this.#count;
    if (index >= o.limits.maxItems) throw new PlanLimitExceeded("maxItems", o.limits.maxItems, `has more than ${o.limits.maxItems} items`);
    const job = o.job;
    // Parsed only for what needs the item's parsed form; the task checks the schema again anyway.
    const parsed = this.#needsParse ? job.item.safeParse(raw) : NOT_PARSED;
    let key = "";
    let weight = 1;
    let cost = 0;
    try {
      if (job.key) {
        const k = job.key((parsed.success ? parsed.data : raw) as never);
        if (typeof k === "string" && k) key = k;
        else if (parsed.success) key = String(k);
      }
      if (parsed.success) {
        if (job.weight) {
          const w = Number(job.weight(parsed.data));
          weight = Number.isFinite(w) && w >= 0 ? w : 1;
        }
        if (this.#costs) {
          const c = job.cost ? Number(job.cost(parsed.data)) : job.weight ? weight : 1;
          cost = Number.isFinite(c) && c > 0 ? c : 0;
        }
      }
    } catch {
      // key(), weight() or cost() threw on an odd item: keep the defaults; run() will judge the item.
    }
    if (!key) key = `#${index}`;
    const item = JSON.stringify(raw);
    if (item === undefined) throw new InvalidInputError(`item ${index} of job "${job.name}" is not JSON data (got ${typeof raw})`);
    const line = `{"i":${index},"key":${JSON.stringify(key)},"item":${item}}\n`;

    this.#count++;
    this.#weights.push(weight);
    this.#totalWeight += weight;
    this.#costs?.push(cost);
    if (this.#cutter) {
      this.#open = !this.#cutter.add(weight);
      if (!this.#open) this.#countShard();
    } else if (this.#perShard !== undefined && index % this.#perShard === 0) this.#countShard();
    if (index % YIELD_EVERY === 0) o.onProgress?.(index);

    let pending: Promise<void> | undefined;
    if (this.#used + line.length * 3 <= this.#buffer.length) {
      const bytes = this.#buffer.write(line, this.#used, "utf8");
      this.#used += bytes;
      this.#lines.push(bytes);
    } else {
      const bytes = Buffer.from(line, "utf8");
      this.#lines.push(bytes.length);
      pending = this.#writeLine(bytes);
    }

    this.#hashes?.push(hashKey(key));
    return pending;
  }

  #countShard(): void {
    this.#shards++;
    const max = this.#o.limits.maxShards;
    if (this.#shards > max) throw new PlanLimitExceeded("maxShards", max, `needs more than ${max} shards`);
  }

  /** A line that does not fit in what is left of the buffer (or in any buffer). */
  async #writeLine(line: Buffer): Promise<void> {
    await this.#flush();
    if (line.length <= this.#buffer.length) {
      this.#used += line.copy(this.#buffer, 0);
      return;
    }
    await this.#writing;
    await writeFully(this.#file, line, line.length, this.#flushed);
    this.#flushed += line.length;
  }

  /** Starts writing the buffer and swaps in the spare (once its own write is done). */
  async #flush(): Promise<void> {
    if (!this.#used) return;
    await this.#writing;
    const buffer = this.#buffer;
    const length = this.#used;
    const at = this.#flushed;
    this.#buffer = this.#spare;
    this.#spare = buffer;
    this.#flushed += length;
    this.#used = 0;
    this.#writing = writeFully(this.#file, buffer, length, at);
    // Failures surface at the next flush or at the end; never as an unhandled rejection.
    this.#writing.catch(() => undefined);
  }

  /**
   * Finds duplicate keys among the items: candidates by hash, confirmed by reading the keys back
   * from the spool. Reports the first duplicate in source order (the smallest later position).
   */
  async #refuseDuplicates(): Promise<void> {
    const hashes = this.#hashes;
    if (!hashes) return;
    this.#hashes = undefined;
    let found: [number, number] | undefined;
    for (const group of hashCollisions(this.#count, (p) => hashes.at(p))) {
      // Groups come by their second position: none later can hold an earlier duplicate.
      if (found && group[1]! >= found[1]) break;
      const seen = new Map<string, number>();
      for (const position of group) {
        if (found && position >= found[1]) break;
        const key = await this.#keyAt(position);
        const first = seen.get(key);
        if (first !== undefined) {
          found = [first, position];
          break;
        }
        seen.set(key, position);
      }
    }
    if (found) {
      const key = await this.#keyAt(found[0]);
      throw new InvalidInputError(
        `item key ${JSON.stringify(key)} appears twice, at items ${found[0]} and ${found[1]} of job "${this.#o.job.name}": keys must be unique in a run (see the job's key())`,
      );
    }
  }

  async #keyAt(position: number): Promise<string> {
    const bytes = Buffer.allocUnsafe(this.#lines.lengthOf(position));
    await this.#file.read(bytes, 0, bytes.length, this.#lines.offsetOf(position));
    return (JSON.parse(bytes.toString("utf8")) as { key: string }).key;
  }
}

async function writeFully(file: FileHandle, bytes: Uint8Array, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await file.write(bytes, done, length - done, position + done);
    done += bytesWritten;
  }
}
