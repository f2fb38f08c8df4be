/**
 * A shard's items as a task reads them: the header of the packed items object, then only the
 * shard's bytes (two range reads), checked against the CRC32C the plan recorded. Lines are parsed
 * when a slot takes them, so a shard of 250,000 items costs its bytes and an offset table, not
 * 250,000 parsed objects.
 */
import { crc32c } from "@node-rs/crc32";
import { InvalidInputError } from "../core/errors.js";
import { keys } from "../core/keys.js";
import { ItemLine, ItemsHeader, type RunRecord } from "../core/model.js";
import { formatZodError } from "../core/zod-format.js";
import type { ObjectStore } from "../store/port.js";

const decoder = new TextDecoder();
const NEWLINE = 0x0a;
/** Bytes fetched first for the header; a longer header is fetched whole on a second read. */
const HEADER_PROBE = 16 * 1024;

export class ShardItemsError extends InvalidInputError {}

export interface ShardItems {
  readonly count: number;
  /** The parsed line at `pos` (throws ShardItemsError when that line is damaged). */
  line(pos: number): ItemLine;
  /** Run-wide index of the item at `pos`, without parsing the whole line. */
  index(pos: number): number;
  /** Position of run-wide index `i`, or -1. */
  positionOf(i: number): number;
}

export function crcHex(bytes: Uint8Array): string {
  return crc32c(bytes).toString(16).padStart(8, "0");
}

/** The items object holding shard `n`: the last one whose first shard is ≤ n. */
export function chunkOf(run: RunRecord, n: number): number {
  let lo = 0;
  let hi = run.plan.itemChunks.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (run.plan.itemChunks[mid]! <= n) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (found < 0) throw new ShardItemsError(`run ${run.runId} has no items object for shard ${n}`);
  return run.plan.itemChunks[found]!;
}

/** Reads shard `n`'s items; a missing or damaged object is a ShardItemsError naming it. */
export async function readShardItems(store: ObjectStore, run: RunRecord, n: number): Promise<ShardItems> {
  const first = chunkOf(run, n);
  const key = keys.items(run.runId, first);
  let head = await store.get(key, { range: { start: 0, end: HEADER_PROBE } });
  if (!head) throw new ShardItemsError(`${key} is missing from ${store.url}`);
  let nl = head.bytes.indexOf(NEWLINE);
  if (nl < 0) {
    head = await store.get(key);
    if (!head) throw new ShardItemsError(`${key} is missing from ${store.url}`);
    nl = head.bytes.indexOf(NEWLINE);
    if (nl < 0) throw new ShardItemsError(`${key}: no header line`);
  }
  let header: ItemsHeader;
  try {
    const parsed = ItemsHeader.safeParse(JSON.parse(decoder.decode(head.bytes.subarray(0, nl))));
    if (!parsed.success) throw new Error(formatZodError(parsed.error));
    header = parsed.data;
  } catch (e) {
    throw new ShardItemsError(`${key}: its header is damaged (${e instanceof Error ? e.message : String(e)})`);
  }
  const entry = header.shards.find((s) => s[0] === n);
  if (!entry) throw new ShardItemsError(`${key}: shard ${n} is not in its header`);
  const [, offset, length, count, crc] = entry;
  const start = nl + 1 + offset;
  const body = length === 0 ? new Uint8Array(0) : (await store.get(key, { range: { start, end: start + length } }))?.bytes;
  if (!body) throw new ShardItemsError(`${key} is missing from ${store.url}`);
  if (body.length !== length || crcHex(body) !== crc) {
    throw new ShardItemsError(`${key}: shard ${n}'s items are damaged (${body.length} of ${length} bytes, CRC32C ${crcHex(body)} where the plan recorded ${crc})`);
  }
  return lazyItems(body, count, `${key} (shard ${n})`);
}

/** Items of one shard body (lines `{"i":…,"key":…,"item":…}`), parsed on demand. */
export function lazyItems(body: Uint8Array, count: number, where: string): ShardItems {
  const starts = new Uint32Array(count + 1);
  let n = 0;
  let at = 0;
  while (at < body.length && n < count) {
    starts[n++] = at;
    const nl = body.indexOf(NEWLINE, at);
    at = nl < 0 ? body.length : nl + 1;
  }
  if (n !== count) throw new ShardItemsError(`${where}: ${n} lines where the plan recorded ${count}`);
  starts[count] = body.length;
  const text = (pos: number) => {
    if (!(pos >= 0 && pos < count)) throw new RangeError(`Expected a position below ${count}, got ${pos}`);
    let end = starts[pos + 1]!;
    if (end > starts[pos]! && body[end - 1] === NEWLINE) end--;
    return decoder.decode(body.subarray(starts[pos]!, end));
  };
  let byIndex: Map<number, number> | undefined;
  const index = (pos: number) => {
    const m = /^\{"i":(\d+)/.exec(text(pos));
    return m ? Number(m[1]) : ItemLineOf(text(pos), pos, where).i;
  };
  return {
    count,
    line: (pos) => ItemLineOf(text(pos), pos, where),
    index,
    positionOf(i) {
      if (!byIndex) {
        byIndex = new Map();
        for (let p = 0; p < count; p++) byIndex.set(index(p), p);
      }
      return byIndex.get(i) ?? -1;
    },
  };
}

function ItemLineOf(text: string, pos: number, where: string): ItemLine {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ShardItemsError(`${where} line ${pos + 1}: not valid JSON`);
  }
  const parsed = ItemLine.safeParse(raw);
  if (!parsed.success) throw new ShardItemsError(`${where} line ${pos + 1}: ${formatZodError(parsed.error)}`);
  return parsed.data;
}
