/**
 * Items from a JSONL file or a store object (`--items items.jsonl`, `--items gs://bucket/items.jsonl`),
 * as a plan's source. Streamed: a line at a time from a local file, a window of bytes at a time
 * (range reads) from a store object, so a file of millions of items is never held whole. Each
 * item is then checked by the job's schema like any other (a failing item is a failed item of
 * the run, not a plan error); a line that is not JSON at all is a plan error naming the line.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { errorMessage, InvalidInputError, UsageError } from "../core/errors.js";
import { openStore } from "../store/open.js";
import type { ObjectStore, StoredObject } from "../store/port.js";

/** Bytes read at once from a store object. */
export const JSONL_WINDOW_BYTES = 8 * 1024 * 1024;
/** A line longer than this is refused: one item of 64 MiB is not an item. */
export const MAX_ITEM_LINE_BYTES = 64 * 1024 * 1024;

export interface JsonlSourceOptions {
  /** Opens the store of a `gs://bucket/path` location. @default openStore */
  openStore?: (url: string) => Promise<ObjectStore>;
  /** Folder relative paths are resolved against. @default process.cwd() */
  cwd?: string;
  /** Bytes per range read of a store object. @default JSONL_WINDOW_BYTES */
  windowBytes?: number;
}

/** A store object to read items from: a key of an ObjectStore. */
export interface StoreObjectLocation {
  store: ObjectStore;
  key: string;
}

type RangedGet = (key: string, options?: { range?: { start: number; end?: number } }) => Promise<StoredObject | null>;

const NEWLINE = 0x0a;

/**
 * The items of a JSONL file (a path, `file://…`) or a store object (`gs://bucket/path/items.jsonl`,
 * or `{ store, key }`), one JSON value per line; blank lines are skipped.
 * @example planRun({ ...options, source: itemsFromJsonl("gs://acme-inputs/2026-11-22/items.jsonl") })
 */
export function itemsFromJsonl(location: string | StoreObjectLocation, o: JsonlSourceOptions = {}): AsyncIterable<unknown> {
  if (typeof location !== "string") return parseLines(storeChunks(location.store, location.key, o.windowBytes ?? JSONL_WINDOW_BYTES), `${location.store.url}/${location.key}`);
  if (location.startsWith("gs://")) {
    const slash = location.lastIndexOf("/");
    if (slash <= "gs://".length) throw new UsageError(`items "${location}": expected gs://bucket/path/to/items.jsonl`);
    const url = location.slice(0, slash);
    const key = location.slice(slash + 1);
    const open = o.openStore ?? ((u: string) => openStore(u));
    return parseLines(
      (async function* () {
        yield* storeChunks(await open(url), key, o.windowBytes ?? JSONL_WINDOW_BYTES);
      })(),
      location,
    );
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location) && !location.startsWith("file://")) {
    throw new UsageError(`items "${location}": expected a file path, file:///path or gs://bucket/path`);
  }
  const path = location.startsWith("file://") ? fileURLToPath(location) : resolve(o.cwd ?? process.cwd(), location);
  return parseLines(fileChunks(path, location), location);
}

async function* fileChunks(path: string, shown: string): AsyncGenerator<Uint8Array> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new InvalidInputError(`items file ${shown}: not a file`);
  } catch (e) {
    if (e instanceof InvalidInputError) throw e;
    throw new InvalidInputError(`items file ${shown}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : errorMessage(e)}`, { cause: e });
  }
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } finally {
    stream.destroy();
  }
}

/**
 * An object's bytes a window at a time. A store that ignores the range and returns the whole
 * object (before range reads reach every adapter) is read from that one answer.
 */
async function* storeChunks(store: ObjectStore, key: string, window: number): AsyncGenerator<Uint8Array> {
  if (!Number.isInteger(window) || window < 1) throw new TypeError(`Expected \`windowBytes\` to be an integer from 1 and up, got ${window}`);
  const get = store.get.bind(store) as RangedGet;
  const where = `${store.url}/${key}`;
  let start = 0;
  let generation: string | undefined;
  for (;;) {
    let got: StoredObject | null;
    try {
      got = await get(key, { range: { start, end: start + window } });
    } catch (e) {
      throw new InvalidInputError(`items ${where}: ${errorMessage(e)}`, { cause: e });
    }
    if (!got) {
      if (start === 0) throw new InvalidInputError(`items ${where}: no such object`);
      return;
    }
    if (generation !== undefined && got.generation !== generation) {
      throw new InvalidInputError(`items ${where}: the object was replaced while it was read (generation ${generation}, now ${got.generation})`);
    }
    generation = got.generation;
    if (start === 0 && got.bytes.byteLength > window) {
      // Not a range: the whole object.
      yield got.bytes;
      return;
    }
    if (got.bytes.byteLength) yield got.bytes;
    if (got.bytes.byteLength < window) return;
    start += window;
  }
}

/** JSON values of the lines of a byte stream. */
async function* parseLines(chunks: AsyncIterable<Uint8Array>, where: string): AsyncGenerator<unknown> {
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
  let carry: Uint8Array | undefined;
  let line = 0;
  const parse = (bytes: Uint8Array): unknown => {
    line++;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch (e) {
      throw new InvalidInputError(`items ${where} line ${line}: not UTF-8 text`, { cause: e });
    }
    if (text.endsWith("\r")) text = text.slice(0, -1);
    if (!text.trim()) return SKIP;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new InvalidInputError(`items ${where} line ${line}: not valid JSON (${errorMessage(e)})`, { cause: e });
    }
  };
  for await (const chunk of chunks) {
    let at = 0;
    let end = chunk.indexOf(NEWLINE);
    if (carry && end >= 0) {
      // The line that spans the previous chunk and this one.
      const whole = new Uint8Array(carry.byteLength + end);
      whole.set(carry, 0);
      whole.set(chunk.subarray(0, end), carry.byteLength);
      carry = undefined;
      const value = parse(whole);
      if (value !== SKIP) yield value;
      at = end + 1;
      end = chunk.indexOf(NEWLINE, at);
    }
    for (; end >= 0; end = chunk.indexOf(NEWLINE, at)) {
      const value = parse(chunk.subarray(at, end));
      if (value !== SKIP) yield value;
      at = end + 1;
    }
    if (at < chunk.byteLength) {
      const rest = chunk.subarray(at);
      if (carry) {
        const grown = new Uint8Array(carry.byteLength + rest.byteLength);
        grown.set(carry, 0);
        grown.set(rest, carry.byteLength);
        carry = grown;
      } else carry = rest.slice();
      if (carry.byteLength > MAX_ITEM_LINE_BYTES) throw new InvalidInputError(`items ${where} line ${line + 1}: longer than ${MAX_ITEM_LINE_BYTES} bytes`);
    }
  }
  if (carry?.byteLength) {
    const value = parse(carry);
    if (value !== SKIP) yield value;
  }
}

const SKIP = Symbol("blank line");
