/**
 * Packed items: the items of many shards in one object, so that a plan of 10,000 shards is about
 * a hundred writes and a task reads only its own shard's bytes (two range reads at most).
 *
 * An items object (`keys.items(runId, firstShard)`) is one header line, then each shard's lines
 * back to back:
 *
 *   {"v":1,"shards":[[7,0,5120,64,"1f2e3d4c"],[8,5120,4988,64,"0a0b0c0d"],…]}\n
 *   {"i":448,"key":"doc-448","item":{…}}\n        ← shard 7 starts at byte 0 after the header
 *   …
 *
 * Each header entry is [shard number, byte offset after the header line, byte length, item count,
 * CRC32C of the shard's bytes as 8 hex digits]. A shard's bytes are its item lines, each ending
 * with "\n". The CRC is Cloud Storage's checksum, so a truncated or damaged shard is caught by the
 * task that reads it, before any item runs.
 *
 * Reading shard s: run.json's `plan.itemChunks` → the last chunk ≤ s → a range read of the first
 * HEADER_PROBE_BYTES (the header, and often the shard itself) → a range read of the shard's bytes.
 * Pure: the reading helpers take the store's range read as a function.
 */
import { crc32c } from "@node-rs/crc32";
import { InvalidInputError } from "./errors.js";
import { keys } from "./keys.js";
import { ItemsHeader, type ItemLine } from "./model.js";
import { formatZodError } from "./zod-format.js";

/** At most this many shards share one items object. */
export const MAX_SHARDS_PER_CHUNK = 100;
/**
 * An items object grows to about this size; a shard larger than this gets an object of its own.
 * Big enough that a plan is few writes, small enough that a write is retried cheaply.
 */
export const CHUNK_TARGET_BYTES = 8 * 1024 * 1024;
/**
 * What a reader fetches first. A header entry is at most 57 bytes (six-digit shard numbers,
 * offsets and lengths below 10^10, a count below 10^9), so the header of a chunk of 100 shards
 * is at most ~5.7 KiB and fits; the rest of the probe often holds the shard itself.
 */
export const HEADER_PROBE_BYTES = 16 * 1024;
/** A header line longer than this was not written by shardrun. */
export const MAX_HEADER_BYTES = 4 * 1024 * 1024;

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The shard's items could not be read back intact; the object is named so that it can be found. */
export class CorruptItemsError extends InvalidInputError {
  readonly object: string;
  constructor(object: string, message: string, options?: { cause?: unknown }) {
    super(`${object}: ${message}`, options);
    this.object = object;
  }
}

/** CRC32C as Cloud Storage shows it, 8 lowercase hex digits. */
export function crc32cHex(bytes: Uint8Array | string, previous?: number): string {
  return (crc32c(bytes, previous) >>> 0).toString(16).padStart(8, "0");
}

export interface ShardBody {
  shard: number;
  /** Item lines, each ending with "\n". */
  bytes: Uint8Array;
  count: number;
}

export interface ChunkLayoutEntry {
  shard: number;
  length: number;
  count: number;
}

/**
 * The header line of a chunk whose shards have these lengths (with "\n"), CRCs left as zeros.
 * Its length does not depend on the CRCs (always 8 hex digits), so a writer can place the
 * shards' bytes after it before their CRCs are known and fill them in with `fillHeaderCrcs`.
 */
export function encodeItemsHeader(layout: readonly ChunkLayoutEntry[], crcs?: readonly string[]): Uint8Array {
  let offset = 0;
  const entries = layout.map((e, n) => {
    const entry = `[${e.shard},${offset},${e.length},${e.count},"${crcs?.[n] ?? "00000000"}"]`;
    offset += e.length;
    return entry;
  });
  return encoder.encode(`{"v":1,"shards":[${entries.join(",")}]}\n`);
}

/**
 * A whole items object: the header line, then the shards' bytes in the order given.
 * @example encodeItemsObject([{ shard: 0, count: 1, bytes: encode('{"i":0,"key":"a","item":1}\n') }])
 */
export function encodeItemsObject(shards: readonly ShardBody[]): Uint8Array {
  const layout = shards.map((s) => ({ shard: s.shard, length: s.bytes.byteLength, count: s.count }));
  const header = encodeItemsHeader(layout, shards.map((s) => crc32cHex(s.bytes)));
  const out = new Uint8Array(header.byteLength + layout.reduce((n, e) => n + e.length, 0));
  out.set(header, 0);
  let at = header.byteLength;
  for (const s of shards) {
    out.set(s.bytes, at);
    at += s.bytes.byteLength;
  }
  return out;
}

/**
 * Writes each shard's CRC into a header made by `encodeItemsHeader` at the start of `object`,
 * computed from the shard bytes that follow it. Returns the CRCs.
 */
export function fillHeaderCrcs(object: Uint8Array, layout: readonly ChunkLayoutEntry[], headerLength: number): string[] {
  const crcs = layout.map(() => "");
  let at = headerLength;
  for (const [n, e] of layout.entries()) {
    crcs[n] = crc32cHex(object.subarray(at, at + e.length));
    at += e.length;
  }
  const header = encodeItemsHeader(layout, crcs);
  if (header.byteLength !== headerLength) throw new RangeError(`items header changed length (${headerLength} → ${header.byteLength})`);
  object.set(header, 0);
  return crcs;
}

export type ParsedHeader =
  | { complete: true; header: ItemsHeader; /** Byte offset of the first shard's bytes (after the header's "\n"). */ bodyStart: number }
  | { complete: false; /** Fetch at least this many bytes from the start of the object and parse again. */ needBytes: number };

/**
 * Parses the header line from the first bytes of an items object. When the bytes end before the
 * header line does, says how many to fetch (`needBytes`); `objectEnded` says that `prefix` is
 * the whole object, so a missing end of line means the object is truncated.
 */
export function parseItemsHeader(prefix: Uint8Array, object: string, objectEnded = false): ParsedHeader {
  const end = prefix.indexOf(NEWLINE);
  if (end < 0) {
    if (objectEnded) throw new CorruptItemsError(object, `the header line has no end (${prefix.byteLength} bytes): the object is truncated`);
    if (prefix.byteLength >= MAX_HEADER_BYTES) throw new CorruptItemsError(object, `no header line in the first ${MAX_HEADER_BYTES} bytes`);
    return { complete: false, needBytes: Math.min(MAX_HEADER_BYTES, Math.max(HEADER_PROBE_BYTES, prefix.byteLength * 4)) };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(prefix.subarray(0, end)));
  } catch (e) {
    throw new CorruptItemsError(object, "the header line is not valid JSON", { cause: e });
  }
  const parsed = ItemsHeader.safeParse(raw);
  if (!parsed.success) throw new CorruptItemsError(object, `header: ${formatZodError(parsed.error)}`);
  let next = 0;
  for (const [shard, offset, length] of parsed.data.shards) {
    if (offset !== next) throw new CorruptItemsError(object, `header: shard ${shard} starts at byte ${offset}, expected ${next}`);
    next = offset + length;
  }
  return { complete: true, header: parsed.data, bodyStart: end + 1 };
}

export interface ShardLocation {
  shard: number;
  /** Byte range of the shard's lines in the object, [start, end). */
  start: number;
  end: number;
  count: number;
  crc32c: string;
}

/** Where shard `shard` lies in the object, or null when the header does not list it. */
export function locateShard(header: ItemsHeader, bodyStart: number, shard: number): ShardLocation | null {
  for (const [s, offset, length, count, crc] of header.shards) {
    if (s === shard) return { shard, start: bodyStart + offset, end: bodyStart + offset + length, count, crc32c: crc };
  }
  return null;
}

/** The first shard number of the items object that holds `shard` (the last chunk ≤ it). */
export function chunkOf(itemChunks: readonly number[], shard: number): number {
  let lo = 0;
  let hi = itemChunks.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (itemChunks[mid]! <= shard) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (found < 0) throw new RangeError(`shard ${shard} is in no items object (itemChunks start at ${itemChunks[0] ?? "none"})`);
  return itemChunks[found]!;
}

/** Throws CorruptItemsError when the shard's bytes do not match their header entry. */
export function verifyShardBytes(bytes: Uint8Array, location: ShardLocation, object: string): void {
  const expected = location.end - location.start;
  if (bytes.byteLength !== expected) {
    throw new CorruptItemsError(object, `shard ${location.shard} has ${bytes.byteLength} bytes, its header says ${expected}: the object is truncated`);
  }
  const crc = crc32cHex(bytes);
  if (crc !== location.crc32c) {
    throw new CorruptItemsError(object, `shard ${location.shard} fails its CRC32C check (header ${location.crc32c}, bytes ${crc}): the object is damaged`);
  }
}

/**
 * A byte range read of one object: `range` is [start, end) (`end` omitted = to the end); null
 * when the object does not exist. A reader may return the whole object instead of the range
 * (a store without range reads); the helpers here notice and slice it themselves.
 */
export type ReadBytes = (key: string, range?: { start: number; end?: number }) => Promise<Uint8Array | null>;

export interface ShardItems {
  /** The items object's key. */
  object: string;
  location: ShardLocation;
  /** The shard's item lines, verified against their CRC32C. */
  bytes: Uint8Array;
}

/**
 * Reads one shard's items: the header (one probe, more only for a header longer than the
 * probe), then the shard's bytes when the probe did not already hold them, verified.
 * @param headers caches parsed headers by object key, for a reader of several shards of one chunk
 */
export async function readShardItems(
  read: ReadBytes,
  runId: string,
  itemChunks: readonly number[],
  shard: number,
  headers?: Map<string, { header: ItemsHeader; bodyStart: number }>,
): Promise<ShardItems> {
  const object = keys.items(runId, chunkOf(itemChunks, shard));
  let parsed = headers?.get(object);
  let prefix: Uint8Array | undefined;
  let whole = false;
  if (!parsed) {
    let want = HEADER_PROBE_BYTES;
    for (;;) {
      const got = await read(object, { start: 0, end: want });
      if (!got) throw new CorruptItemsError(object, "the items object is missing");
      // More than asked for: the reader gave the whole object. Less: the object ended.
      whole = got.byteLength !== want;
      prefix = got;
      const p = parseItemsHeader(got, object, whole);
      if (p.complete) {
        parsed = { header: p.header, bodyStart: p.bodyStart };
        break;
      }
      want = p.needBytes;
    }
    headers?.set(object, parsed);
  }
  const location = locateShard(parsed.header, parsed.bodyStart, shard);
  if (!location) throw new CorruptItemsError(object, `shard ${shard} is not in the header`);
  let bytes: Uint8Array;
  if (prefix && (whole || location.end <= prefix.byteLength)) {
    bytes = prefix.subarray(location.start, Math.min(location.end, prefix.byteLength));
  } else {
    const got = await read(object, { start: location.start, end: location.end });
    if (!got) throw new CorruptItemsError(object, "the items object is missing");
    // A reader that ignores ranges hands back the whole object: cut the shard out of it.
    bytes = got.byteLength > location.end - location.start ? got.subarray(location.start, location.end) : got;
  }
  verifyShardBytes(bytes, location, object);
  return { object, location, bytes };
}

/** A line of a shard's items, with its position in the shard. */
export interface PositionedItemLine extends ItemLine {
  pos: number;
}

/**
 * The shard's item lines one at a time, parsed as they are reached: a 250,000-item shard never
 * becomes 250,000 objects at once. `from`/`to` bound the positions yielded ([from, to)).
 */
export function* itemLines(bytes: Uint8Array, object: string, from = 0, to = Number.POSITIVE_INFINITY): Generator<PositionedItemLine> {
  let at = 0;
  let pos = 0;
  while (at < bytes.byteLength && pos < to) {
    const end = bytes.indexOf(NEWLINE, at);
    if (end < 0) throw new CorruptItemsError(object, `line ${pos + 1} of the shard has no end`);
    if (pos >= from) yield { ...parseItemLine(bytes.subarray(at, end), object, pos), pos };
    at = end + 1;
    pos++;
  }
}

/** Byte offsets of each line start in a shard's bytes, plus the end: line p is [starts[p], starts[p+1] - 1). */
export function lineStarts(bytes: Uint8Array): Uint32Array {
  let count = 0;
  for (let at = bytes.indexOf(NEWLINE); at >= 0; at = bytes.indexOf(NEWLINE, at + 1)) count++;
  const starts = new Uint32Array(count + 1);
  let n = 0;
  let at = 0;
  while (n < count) {
    starts[n++] = at;
    at = bytes.indexOf(NEWLINE, at) + 1;
  }
  starts[count] = at;
  return starts;
}

/** The item line at position `pos`, with offsets from `lineStarts`. */
export function itemLineAt(bytes: Uint8Array, starts: Uint32Array, pos: number, object: string): ItemLine {
  if (pos < 0 || pos >= starts.length - 1) throw new RangeError(`Expected a position from 0 to ${starts.length - 2}, got ${pos}`);
  return parseItemLine(bytes.subarray(starts[pos]!, starts[pos + 1]! - 1), object, pos);
}

/**
 * One `{"i":…,"key":…,"item":…}` line. Checked by hand rather than by zod: this runs once per
 * item on the task's hot path, and three fields need no schema machinery.
 */
export function parseItemLine(line: Uint8Array, object: string, pos: number): ItemLine {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(line));
  } catch (e) {
    throw new CorruptItemsError(object, `item line ${pos + 1} is not valid JSON`, { cause: e });
  }
  const o = raw as { i?: unknown; key?: unknown; item?: unknown } | null;
  if (typeof o !== "object" || o === null || !Number.isSafeInteger(o.i) || (o.i as number) < 0 || typeof o.key !== "string" || !("item" in o)) {
    throw new CorruptItemsError(object, `item line ${pos + 1} is not {"i": index, "key": string, "item": …}`);
  }
  return { i: o.i as number, key: o.key, item: o.item };
}
