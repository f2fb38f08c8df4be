/**
 * The second pass of a plan: packs the spooled item lines into items objects (core/items.ts) and
 * writes them with bounded parallelism, remembering every key it may have created so that a
 * failed plan can remove them. Shard bytes are copied from the spool as they are, never parsed.
 */
import type { FileHandle } from "node:fs/promises";
import { errorMessage, PreconditionFailed, ShardrunError } from "../core/errors.js";
import { encodeItemsHeader, fillHeaderCrcs, type ChunkLayoutEntry } from "../core/items.js";
import { keys } from "../core/keys.js";
import type { ChunkSpan, Cut } from "../core/plan.js";
import type { LineIndex } from "./plan-columns.js";
import type { ObjectStore } from "../store/port.js";

/** Writes in flight at once: enough to hide Cloud Storage's ~30 ms per write, few enough to be polite. */
export const PLAN_WRITE_CONCURRENCY = 16;
/**
 * Bytes in flight at once, so that 16 objects of 8 MiB do not sit in memory together. At
 * Cloud Storage's ~30 ms a write and ~50 MB/s a stream, 8 MiB in flight still moves well over
 * 100 MB/s.
 */
export const PLAN_WRITE_BYTES = 8 * 1024 * 1024;
/**
 * Bytes of reordered items assembled per pass over the spool ("heaviest-first"). Each pass reads
 * the whole spool (from the page cache, sequentially); a million items of ~90 bytes take six.
 */
const WINDOW_BYTES = 16 * 1024 * 1024;
/** Spool bytes read at once when scanning it. */
const READ_BYTES = 4 * 1024 * 1024;

/** A store write of the plan failed: which object, in which store. */
export class PlanWriteFailed extends ShardrunError {
  readonly key: string;
  constructor(store: ObjectStore, key: string, cause: unknown) {
    super("INTERNAL", `the store ${store.url} refused ${key}: ${errorMessage(cause)}`, { cause });
    this.key = key;
  }
}

export interface PlanWriterOptions {
  /** @default PLAN_WRITE_CONCURRENCY */
  concurrency?: number;
  /** @default PLAN_WRITE_BYTES */
  bytesInFlight?: number;
  signal?: AbortSignal;
}

/**
 * Create-only writes with at most `concurrency` writes and `bytesInFlight` bytes in flight. The
 * first failure stops it: later `put`s throw it. Keys of writes that succeeded, or whose outcome
 * is unknown (an error other than PreconditionFailed), are in `written`.
 */
export class PlanWriter {
  readonly written: string[] = [];
  readonly #store: ObjectStore;
  readonly #concurrency: number;
  readonly #budget: number;
  readonly #signal: AbortSignal | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  /** Buffers of finished writes, for the next objects: see `take`. */
  readonly #free: Buffer[] = [];
  /** Buffers handed out by `take`, by the view given out, to their whole buffer. */
  readonly #taken = new Map<Uint8Array, Buffer>();
  #bytes = 0;
  #failure: unknown;
  #objects = 0;

  constructor(store: ObjectStore, o: PlanWriterOptions = {}) {
    this.#store = store;
    this.#concurrency = o.concurrency ?? PLAN_WRITE_CONCURRENCY;
    this.#budget = o.bytesInFlight ?? PLAN_WRITE_BYTES;
    this.#signal = o.signal;
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) throw new TypeError(`Expected \`concurrency\` to be an integer from 1 and up, got ${this.#concurrency}`);
  }

  /**
   * A buffer of `size` bytes for an object to `put`, reused once its write is done. Objects of a
   * plan are of similar sizes (up to 8 MiB): allocating each anew leaves the process's memory
   * fragmented and its RSS growing with the number of objects; a few reused buffers do not.
   */
  take(size: number): Buffer {
    const at = this.#free.findIndex((b) => b.length >= size);
    const whole = at >= 0 ? this.#free.splice(at, 1)[0]! : Buffer.allocUnsafeSlow(Math.ceil(size / (1 << 20)) * (1 << 20) || 1 << 20);
    const view = whole.subarray(0, size);
    this.#taken.set(view, whole);
    return view;
  }

  /** Objects this writer has written (or started to). */
  get objects(): number {
    return this.#objects;
  }

  /** Starts a create-only write once there is room; resolves when it has started, not finished. */
  async put(key: string, bytes: Uint8Array | string, contentType: string): Promise<void> {
    const size = typeof bytes === "string" ? Buffer.byteLength(bytes) : bytes.byteLength;
    while (this.#inFlight.size >= this.#concurrency || (this.#inFlight.size > 0 && this.#bytes + size > this.#budget)) {
      await Promise.race(this.#inFlight);
    }
    this.#check();
    this.#bytes += size;
    this.#objects++;
    this.written.push(key);
    const write: Promise<void> = this.#store
      .put(key, bytes, { ifGenerationMatch: 0, contentType })
      .then(
        () => undefined,
        (e: unknown) => {
          // Refused as already there: not ours, so not ours to remove.
          if (e instanceof PreconditionFailed) this.written.splice(this.written.lastIndexOf(key), 1);
          this.#failure ??= new PlanWriteFailed(this.#store, key, e);
        },
      )
      .finally(() => {
        this.#bytes -= size;
        this.#inFlight.delete(write);
        const whole = typeof bytes === "string" ? undefined : this.#taken.get(bytes);
        if (whole) {
          this.#taken.delete(bytes as Uint8Array);
          if (this.#free.length <= this.#concurrency) this.#free.push(whole);
        }
      });
    this.#inFlight.add(write);
  }

  /** Waits for every write; throws the first failure. */
  async drain(): Promise<void> {
    while (this.#inFlight.size) await Promise.race(this.#inFlight);
    this.#check();
  }

  /** Waits for every write, whatever their outcome (before removing what was written). */
  async settle(): Promise<void> {
    while (this.#inFlight.size) await Promise.race(this.#inFlight);
  }

  #check(): void {
    if (this.#failure) throw this.#failure;
    this.#signal?.throwIfAborted();
  }
}

/**
 * Deletes `keys` with bounded parallelism; returns the ones it could not delete. A key already
 * gone counts as deleted.
 */
export async function removeKeys(store: ObjectStore, keyList: readonly string[], concurrency = PLAN_WRITE_CONCURRENCY): Promise<string[]> {
  const left: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < keyList.length) {
      const key = keyList[next++]!;
      try {
        await store.delete(key);
      } catch {
        left.push(key);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, keyList.length) }, worker));
  return left;
}

/** Where the spooled lines are, as `spoolItems` left them. */
export interface SpooledLines {
  file: FileHandle;
  /** Each item's line, in source order. */
  lines: LineIndex;
  count: number;
}

/**
 * Builds and writes the items objects of `spans`. `order` (positions → source indices) is the
 * plan's order when it is not the source order; `firstShard` is the number of the cut's shard 0.
 */
export async function writeItemChunks(
  runId: string,
  lines: SpooledLines,
  cut: Cut,
  spans: readonly ChunkSpan[],
  firstShard: number,
  writer: PlanWriter,
  order?: Uint32Array,
  onChunk?: (span: ChunkSpan) => void,
): Promise<void> {
  if (!order) {
    for (const span of spans) {
      const { layout, start } = chunkLayout(cut, span, firstShard, (p) => lines.lines.offsetOf(p));
      const header = encodeItemsHeader(layout);
      const from = lines.lines.offsetOf(start);
      const body = lines.lines.offsetOf(cut.ends[span.end - 1 - firstShard]!) - from;
      const object = writer.take(header.byteLength + body);
      object.set(header, 0);
      await readFully(lines.file, object, header.byteLength, body, from);
      fillHeaderCrcs(object, layout, header.byteLength);
      await writer.put(keys.items(runId, span.first), object, "application/x-ndjson");
      onChunk?.(span);
    }
    return;
  }
  // Reordered: assemble a window of objects at a time by one sequential scan of the spool each.
  const rankOf = new Uint32Array(lines.count);
  for (let p = 0; p < order.length; p++) rankOf[order[p]!] = p;
  for (let w = 0; w < spans.length; ) {
    const window: ChunkSpan[] = [];
    let bytes = 0;
    // Uint16 object numbers below: a window never holds more than 65,535 objects.
    while (w < spans.length && window.length < 65_535 && (window.length === 0 || bytes + spans[w]!.bytes <= WINDOW_BYTES)) {
      bytes += spans[w]!.bytes;
      window.push(spans[w++]!);
    }
    await assembleWindow(runId, lines, cut, window, firstShard, order, rankOf, writer, onChunk);
  }
}

/** The header layout of one object, and its first position in the plan's order. */
function chunkLayout(cut: Cut, span: ChunkSpan, firstShard: number, lineStart: (position: number) => number): { layout: ChunkLayoutEntry[]; start: number } {
  const layout: ChunkLayoutEntry[] = [];
  const start = span.first === firstShard ? 0 : cut.ends[span.first - firstShard - 1]!;
  let from = start;
  for (let s = span.first; s < span.end; s++) {
    const end = cut.ends[s - firstShard]!;
    layout.push({ shard: s, length: lineStart(end) - lineStart(from), count: end - from });
    from = end;
  }
  return { layout, start };
}

async function assembleWindow(
  runId: string,
  lines: SpooledLines,
  cut: Cut,
  window: readonly ChunkSpan[],
  firstShard: number,
  order: Uint32Array,
  rankOf: Uint32Array,
  writer: PlanWriter,
  onChunk?: (span: ChunkSpan) => void,
): Promise<void> {
  const lengthAt = (p: number) => lines.lines.lengthOf(order[p]!);
  const first = window[0]!;
  const last = window[window.length - 1]!;
  const p0 = first.first === firstShard ? 0 : cut.ends[first.first - firstShard - 1]!;
  const p1 = cut.ends[last.end - 1 - firstShard]!;
  // Where each position of the window goes: which object, at which byte.
  const destObject = new Uint16Array(p1 - p0);
  const destOffset = new Uint32Array(p1 - p0);
  const objects: { object: Buffer; layout: ChunkLayoutEntry[]; headerLength: number; span: ChunkSpan }[] = [];
  for (const [n, span] of window.entries()) {
    // Lengths in the plan's order: a shard's bytes are the sum of its items' line lengths.
    const { layout, start } = chunkLayout(cut, span, firstShard, prefixOf(lengthAt, span, cut, firstShard));
    const header = encodeItemsHeader(layout);
    const body = layout.reduce((sum, e) => sum + e.length, 0);
    const object = writer.take(header.byteLength + body);
    object.set(header, 0);
    let at = header.byteLength;
    const end = start + layout.reduce((sum, e) => sum + e.count, 0);
    for (let p = start; p < end; p++) {
      destObject[p - p0] = n;
      destOffset[p - p0] = at;
      at += lengthAt(p);
    }
    objects.push({ object, layout, headerLength: header.byteLength, span });
  }
  // One sequential scan: copy each line of the window to its place.
  const block = Buffer.allocUnsafe(READ_BYTES);
  let from = 0;
  for (let j = 0; j < lines.count; ) {
    // Lines [j, k) fit in one read (or line j alone, when it is larger than a read).
    let size = lines.lines.lengthOf(j);
    let k = j + 1;
    while (k < lines.count && size + lines.lines.lengthOf(k) <= READ_BYTES) size += lines.lines.lengthOf(k++);
    const buf = size <= READ_BYTES ? block : Buffer.allocUnsafe(size);
    await readFully(lines.file, buf, 0, size, from);
    let at = 0;
    for (let i = j; i < k; i++) {
      const length = lines.lines.lengthOf(i);
      const r = rankOf[i]!;
      if (r >= p0 && r < p1) buf.copy(objects[destObject[r - p0]!]!.object, destOffset[r - p0]!, at, at + length);
      at += length;
    }
    from += size;
    j = k;
  }
  for (const o of objects) {
    fillHeaderCrcs(o.object, o.layout, o.headerLength);
    await writer.put(keys.items(runId, o.span.first), o.object, "application/x-ndjson");
    onChunk?.(o.span);
  }
}

/**
 * A `lineStart` for chunkLayout over reordered positions: byte offsets measured from the span's
 * first position, summing line lengths in the plan's order.
 */
function prefixOf(lengthAt: (p: number) => number, span: ChunkSpan, cut: Cut, firstShard: number): (position: number) => number {
  const start = span.first === firstShard ? 0 : cut.ends[span.first - firstShard - 1]!;
  const end = cut.ends[span.end - 1 - firstShard]!;
  const sums = new Float64Array(end - start + 1);
  for (let p = start; p < end; p++) sums[p - start + 1] = sums[p - start]! + lengthAt(p);
  return (position) => sums[position - start]!;
}

async function readFully(file: FileHandle, into: Uint8Array, at: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(into, at + done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`the plan's spool ended early (wanted ${length} bytes at ${position})`);
    done += bytesRead;
  }
}
