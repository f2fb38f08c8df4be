/**
 * The embedded ObjectStore: a local folder with the guarantees of Cloud Storage (generations,
 * atomic replace, compare-and-swap) that hold across processes, even ones killed by SIGKILL.
 *
 * Layout: key `a/b/c.json` is the folder `<root>/a/b/c.json@/` ("@" is not allowed in keys, so an
 * object folder never collides with the folder of a longer key). It holds one file per generation,
 * named 1, 2, 3, …; a file is a 1-byte header ("D" data follows, "T" tombstone) and the bytes.
 *
 * Why it is correct without locks: a write puts its bytes in a temp file and then link(2)s it to
 * the next generation's name. link never replaces a name, so of two writers of generation g+1
 * exactly one wins and the other gets EEXIST; a killed writer leaves at most a stray temp file,
 * never a held lock or a half-written generation. Names are never removed (only old files are
 * truncated to save disk), so a writer that lost the race cannot later slip into a gap, and the
 * names always form 1..N: the latest generation is found with a few stat calls from a hint.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { PreconditionFailed, ShardrunError } from "../core/errors.js";
import { assertKey, CREATE_ONLY } from "./port.js";
import type { DeleteOptions, Generation, GetOptions, ListOptions, ListPage, ObjectStore, PutOptions, StoreLimits, StoredObject } from "./port.js";

const DATA = 0x44; // "D"
const TOMBSTONE = 0x54; // "T"
const DATA_HEADER = Uint8Array.of(DATA);
const TOMBSTONE_HEADER = Uint8Array.of(TOMBSTONE);
/** Holds temp files; "@" keeps it apart from every key. */
const TEMP_DIR = "@tmp";
/** A temp file this old belongs to a process that died between writing and linking it. */
const STALE_TEMP_MS = 60 * 60 * 1000;
/** Objects whose liveness `list` checks at once. */
const LIST_BATCH = 64;
/** Hints are only a speed-up; forgetting them all now and then bounds the memory. */
const MAX_HINTS = 100_000;
const SEGMENT = /^[A-Za-z0-9._\-=+]+$/;
const PARTIAL_SEGMENT = /^[A-Za-z0-9._\-=+]*$/;
const GENERATION = /^[1-9][0-9]*$/;

/** Points inside a write where tests can stop a process to prove a crash there is harmless. */
export type FsDebugPoint = "temp-written" | "linked";

export interface FsObjectStoreOptions {
  /**
   * fsync each write (the file, then its folder) before it returns, so that a power loss cannot
   * take back a returned write. A killed process never needs this; only a crashed machine does.
   * @default false
   */
  durable?: boolean;
  /**
   * @internal Called at named points of every write, so that race tests can SIGKILL a process
   * exactly there (see test/contract/race-child.mjs).
   * @default undefined
   */
  debugPoint?: (point: FsDebugPoint) => void | Promise<void>;
}

type Precondition = { kind: "none" } | { kind: "absent" } | { kind: "generation"; generation: number };
type Listed = { name: string; isPrefix: boolean };

/**
 * ObjectStore over a local folder, safe for many processes at once.
 * @example
 * const store = new FsObjectStore(".shardrun");
 * const generation = await store.put("runs/x/run.json", "{}", { ifGenerationMatch: 0 });
 */
export class FsObjectStore implements ObjectStore {
  readonly url: string;
  readonly #root: string;
  readonly #options: FsObjectStoreOptions;
  /** Per key, a generation known to exist: the search for the latest starts there. */
  readonly #hints = new Map<string, number>();
  #tempReady: Promise<void> | undefined;

  constructor(rootDir: string, options: FsObjectStoreOptions = {}) {
    if (typeof rootDir !== "string" || rootDir === "") {
      throw new TypeError(`Expected \`rootDir\` to be a non-empty path, got ${JSON.stringify(rootDir)}`);
    }
    this.#root = path.resolve(rootDir);
    this.#options = options;
    this.url = pathToFileURL(this.#root).href;
  }

  readonly limits: StoreLimits = { objectWriteGapMs: 0, writesPerSecond: Number.POSITIVE_INFINITY, readsPerSecond: Number.POSITIVE_INFINITY };

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    assertKey(key);
    const dir = this.#objectDir(key);
    let failed = 0;
    for (;;) {
      const generation = await this.#latest(key, dir);
      if (generation === 0) return null;
      const file = generationFile(dir, generation);
      const content = await readWhole(file);
      if (content === null) {
        failed = this.#superseded(file, generation, failed);
        continue;
      }
      if (checkHeader(content[0], file) === TOMBSTONE) return null;
      // A plain Uint8Array view, not a Buffer: callers compare and decode it like any other.
      const whole = new Uint8Array(content.buffer, content.byteOffset + 1, content.length - 1);
      const bytes = options.range ? whole.subarray(options.range.start, options.range.end ?? whole.length) : whole;
      return { bytes, generation: String(generation) };
    }
  }

  async put(key: string, bytes: Uint8Array | string, options: PutOptions = {}): Promise<Generation> {
    assertKey(key);
    const precondition = parsePrecondition(key, options.ifGenerationMatch);
    const body = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
    const generation = await this.#mutate(key, [DATA_HEADER, body], precondition, "put");
    return String(generation);
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<boolean> {
    assertKey(key);
    const precondition = parsePrecondition(key, options.ifGenerationMatch);
    return (await this.#mutate(key, [TOMBSTONE_HEADER], precondition, "delete")) !== null;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const { delimiter, pageToken, maxResults = 1000 } = options;
    if (!Number.isInteger(maxResults) || maxResults < 1) {
      throw new TypeError(`Expected \`maxResults\` to be an integer from 1 and up, got ${maxResults}`);
    }
    if (delimiter !== undefined && delimiter !== "/") {
      // Folders are the index, so "/" is the one delimiter that costs nothing; shardrun needs no other.
      throw new TypeError(`Expected \`delimiter\` to be "/" or undefined, got ${JSON.stringify(delimiter)}`);
    }
    const after = pageToken ? decodePageToken(pageToken) : undefined;
    const page: ListPage = { keys: [], prefixes: [] };
    // Only the folder of the prefix's last complete segment is walked; the rest filters names.
    const cut = prefix.lastIndexOf("/") + 1;
    const dirPart = prefix.slice(0, cut);
    const rest = prefix.slice(cut);
    const validDir = dirPart === "" || dirPart.slice(0, -1).split("/").every(isSegment);
    if (!validDir || !PARTIAL_SEGMENT.test(rest)) return page; // no key can start with it
    let last = "";
    for await (const item of this.#walk(dirPart, rest, after, delimiter === "/")) {
      if (page.keys.length + page.prefixes.length === maxResults) {
        page.nextPageToken = Buffer.from(last, "utf8").toString("base64url");
        break;
      }
      (item.isPrefix ? page.prefixes : page.keys).push(item.name);
      last = item.name;
    }
    return page;
  }

  /** The shared write path of put and delete; null when a delete found nothing to delete. */
  async #mutate(key: string, body: Uint8Array[], precondition: Precondition, op: "put" | "delete"): Promise<number | null> {
    const dir = this.#objectDir(key);
    let temp: string | undefined;
    try {
      for (;;) {
        const next = await this.#nextGeneration(key, dir, precondition, op);
        if (next === null) return null;
        temp ??= await this.#writeTemp(body);
        await this.#options.debugPoint?.("temp-written");
        if (await this.#link(temp, dir, next)) {
          this.#remember(key, next);
          await this.#options.debugPoint?.("linked");
          await this.#afterLink(dir, next);
          return next;
        }
        if (precondition.kind === "generation") throw new PreconditionFailed(key, String(precondition.generation));
        // Another writer took `next` first; look again (create-only may now find a live object).
      }
    } finally {
      if (temp !== undefined) await fs.rm(temp, { force: true });
    }
  }

  /** Which generation this write would create, or null for a delete with nothing to delete. */
  async #nextGeneration(key: string, dir: string, precondition: Precondition, op: "put" | "delete"): Promise<number | null> {
    switch (precondition.kind) {
      case "generation": {
        // Only the expected generation's own file matters: if it is live data and the link of the
        // next number succeeds, it was the latest at that instant.
        const header = await readHeader(generationFile(dir, precondition.generation));
        if (header !== DATA) throw new PreconditionFailed(key, String(precondition.generation));
        return precondition.generation + 1;
      }
      case "absent": {
        const state = await this.#state(key, dir);
        if (state.live) throw new PreconditionFailed(key, CREATE_ONLY);
        return op === "put" ? state.generation + 1 : null;
      }
      case "none": {
        if (op === "put") return (await this.#latest(key, dir)) + 1;
        const state = await this.#state(key, dir);
        return state.live ? state.generation + 1 : null;
      }
    }
  }

  /** The latest generation and whether it holds data (not a tombstone). */
  async #state(key: string, dir: string): Promise<{ generation: number; live: boolean }> {
    let failed = 0;
    for (;;) {
      const generation = await this.#latest(key, dir);
      if (generation === 0) return { generation, live: false };
      const file = generationFile(dir, generation);
      const header = await readHeader(file);
      if (header !== null) return { generation, live: header === DATA };
      failed = this.#superseded(file, generation, failed);
    }
  }

  /**
   * The highest generation number of a key, 0 if none. Names always form 1..N (every write links
   * the number after one that exists, and none is removed), so existence is a prefix: gallop up
   * from the hint, then bisect. With a current hint that is two stat calls.
   */
  async #latest(key: string, dir: string): Promise<number> {
    let low = this.#hints.get(key) ?? 0;
    // The folder may have been emptied and refilled since the hint was taken.
    if (low > 0 && !(await exists(generationFile(dir, low)))) low = 0;
    let step = 1;
    let high = low + 1;
    while (await exists(generationFile(dir, high))) {
      low = high;
      step *= 2;
      high = low + step;
    }
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2);
      if (await exists(generationFile(dir, middle))) low = middle;
      else high = middle;
    }
    this.#remember(key, low);
    return low;
  }

  /**
   * A generation file read empty or missing. Writers truncate only files two behind the latest, so
   * a newer generation must exist now; if the next look does not find one, the folder is damaged.
   */
  #superseded(file: string, generation: number, failed: number): number {
    if (generation <= failed) {
      throw new ShardrunError(
        "INTERNAL",
        `${file} is the latest generation but is empty or missing: the store folder was changed outside ` +
          "shardrun, or a machine crash lost an unsynced write (see the `durable` option)",
      );
    }
    return generation;
  }

  #remember(key: string, generation: number): void {
    if (this.#hints.size >= MAX_HINTS) this.#hints.clear();
    if (generation > 0) this.#hints.set(key, generation);
    else this.#hints.delete(key);
  }

  async #writeTemp(body: Uint8Array[]): Promise<string> {
    for (let tries = 0; ; tries++) {
      await this.#ensureTempDir();
      const file = path.join(this.#root, TEMP_DIR, `${process.pid}-${randomBytes(8).toString("hex")}`);
      let handle: fs.FileHandle;
      try {
        handle = await fs.open(file, "wx");
      } catch (error) {
        // Someone removed the temp folder under us: make it again, once.
        if (tries > 0 || !hasCode(error, "ENOENT")) throw error;
        this.#tempReady = undefined;
        continue;
      }
      try {
        await handle.writeFile(Buffer.concat(body));
        if (this.#options.durable) await handle.sync();
      } finally {
        await handle.close();
      }
      return file;
    }
  }

  /** True if this write created `generation`; false if another writer had created it first. */
  async #link(temp: string, dir: string, generation: number): Promise<boolean> {
    for (let tries = 0; ; tries++) {
      try {
        await fs.link(temp, generationFile(dir, generation));
        return true;
      } catch (error) {
        if (hasCode(error, "EEXIST")) return false;
        // The first write of a key: its folder (and maybe its parents) does not exist yet.
        if (tries > 0 || !hasCode(error, "ENOENT")) throw error;
        await fs.mkdir(dir, { recursive: true });
      }
    }
  }

  async #afterLink(dir: string, generation: number): Promise<void> {
    if (this.#options.durable) {
      const handle = await fs.open(dir, "r");
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    // Truncate, never unlink: a free name would let a slow writer that lost the race link into it.
    // Keep the previous generation whole for readers that found it latest a moment ago.
    if (generation > 2) await fs.truncate(generationFile(dir, generation - 2), 0).catch(() => undefined);
  }

  #ensureTempDir(): Promise<void> {
    this.#tempReady ??= (async () => {
      const dir = path.join(this.#root, TEMP_DIR);
      await fs.mkdir(dir, { recursive: true });
      await sweepStaleTemps(dir);
    })().catch((error: unknown) => {
      this.#tempReady = undefined;
      throw error;
    });
    return this.#tempReady;
  }

  #objectDir(key: string): string {
    return path.join(this.#root, `${key}@`);
  }

  async #isLive(key: string): Promise<boolean> {
    return (await this.#state(key, this.#objectDir(key))).live;
  }

  async #hasLive(prefix: string): Promise<boolean> {
    for await (const _ of this.#walk(prefix, "", undefined, false)) return true;
    return false;
  }

  /**
   * Live keys (and, with `rollUpDirs`, rolled-up prefixes) under folder `rel` ("" or ending in
   * "/") whose first segment starts with `rest`, greater than `after`, in byte order.
   */
  async *#walk(rel: string, rest: string, after: string | undefined, rollUpDirs: boolean): AsyncGenerator<Listed> {
    const entries = await this.#readLevel(rel, rest, after, rollUpDirs);
    for (let start = 0; start < entries.length; start += LIST_BATCH) {
      const batch = entries.slice(start, start + LIST_BATCH);
      const live = await Promise.all(
        batch.map((entry) => (!entry.isPrefix ? this.#isLive(entry.name) : rollUpDirs ? this.#hasLive(entry.name) : true)),
      );
      for (const [index, entry] of batch.entries()) {
        if (!live[index]) continue;
        if (!entry.isPrefix || rollUpDirs) yield entry;
        else yield* this.#walk(entry.name, "", after, false);
      }
    }
  }

  /** One folder's object keys and sub-prefixes, filtered and sorted the way `list` returns them. */
  async #readLevel(rel: string, rest: string, after: string | undefined, rollUpDirs: boolean): Promise<Listed[]> {
    const dirents = await unlessMissing(fs.readdir(path.join(this.#root, rel), { withFileTypes: true }));
    const out: Listed[] = [];
    for (const dirent of dirents ?? []) {
      if (!dirent.isDirectory() || !dirent.name.startsWith(rest)) continue;
      const isObject = dirent.name.endsWith("@");
      const segment = isObject ? dirent.name.slice(0, -1) : dirent.name;
      if (!isSegment(segment)) continue; // the temp folder, or anything not made by this store
      // Sorting a sub-folder by "name/" puts its whole subtree where its keys sort among siblings.
      const name = isObject ? rel + segment : `${rel}${segment}/`;
      if (after !== undefined) {
        if (isObject || rollUpDirs ? name <= after : after >= name && !after.startsWith(name)) continue;
      }
      out.push({ name, isPrefix: !isObject });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

function parsePrecondition(key: string, match: Generation | 0 | undefined): Precondition {
  if (match === undefined) return { kind: "none" };
  const text = String(match);
  if (text === CREATE_ONLY) return { kind: "absent" };
  if (!GENERATION.test(text)) {
    throw new TypeError(`Expected \`ifGenerationMatch\` to be a decimal generation string or 0, got ${JSON.stringify(match)}`);
  }
  const generation = Number(text);
  // Larger than any generation this store makes (e.g. one read from a bucket): cannot match.
  if (!Number.isSafeInteger(generation)) throw new PreconditionFailed(key, text);
  return { kind: "generation", generation };
}

function decodePageToken(token: string): string {
  const name = Buffer.from(token, "base64url").toString("utf8");
  if (Buffer.from(name, "utf8").toString("base64url") !== token) {
    throw new TypeError(`Expected \`pageToken\` from a previous page's nextPageToken, got ${JSON.stringify(token)}`);
  }
  return name;
}

function isSegment(segment: string): boolean {
  return SEGMENT.test(segment) && segment !== "." && segment !== "..";
}

function generationFile(dir: string, generation: number): string {
  return path.join(dir, String(generation));
}

function checkHeader(byte: number | undefined, file: string): number {
  if (byte === DATA || byte === TOMBSTONE) return byte;
  throw new ShardrunError("INTERNAL", `${file} is not a generation file of this store (header ${byte})`);
}

function hasCode(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? "");
}

/** The result, or null where the path does not exist. */
function unlessMissing<T>(operation: Promise<T>): Promise<T | null> {
  return operation.catch((error: unknown) => {
    if (hasCode(error, "ENOENT", "ENOTDIR")) return null;
    throw error;
  });
}

async function exists(file: string): Promise<boolean> {
  return (await unlessMissing(fs.access(file).then(() => true))) ?? false;
}

/** DATA or TOMBSTONE; null if the file is missing or was truncated (superseded). */
async function readHeader(file: string): Promise<number | null> {
  const handle = await unlessMissing(fs.open(file, "r"));
  if (!handle) return null;
  try {
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(1), 0, 1, 0);
    return bytesRead === 0 ? null : checkHeader(buffer[0], file);
  } finally {
    await handle.close();
  }
}

/** The whole file; null if it is missing or was truncated (superseded) before or while reading. */
async function readWhole(file: string): Promise<Buffer | null> {
  const handle = await unlessMissing(fs.open(file, "r"));
  if (!handle) return null;
  try {
    const content = await handle.readFile();
    // A truncation during the read could hand us a partial file; files never grow back, so an
    // unchanged size afterwards proves the read was whole.
    if (content.length === 0 || (await handle.stat()).size !== content.length) return null;
    return content;
  } finally {
    await handle.close();
  }
}

/** Removes temp files of processes that died between writing and linking them. Best effort. */
async function sweepStaleTemps(dir: string): Promise<void> {
  try {
    const cutoff = Date.now() - STALE_TEMP_MS;
    for (const name of await fs.readdir(dir)) {
      const file = path.join(dir, name);
      const stat = await fs.lstat(file).catch(() => undefined);
      if (stat && stat.mtimeMs < cutoff) await fs.rm(file, { force: true });
    }
  } catch {
    // A leftover temp file costs only disk; never fail a write over it.
  }
}
