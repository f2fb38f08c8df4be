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
 *
 * Custom metadata lives in a sidecar beside its generation, `<generation>.<inode>.meta`, written
 * before the link: so the link stays the one commit point, a generation is never seen without
 * its metadata, and a writer killed in between leaves only an unread file (see fs-files.ts).
 * Generation files keep their format; a write without metadata writes no sidecar.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { PreconditionFailed, ShardrunError } from "../core/errors.js";
import {
  assertStoreFolder,
  DATA,
  exists,
  generationFile,
  hasCode,
  readGeneration,
  readHeader,
  removeFile,
  sidecarFile,
  TOMBSTONE,
  type Sidecar,
  unlessMissing,
  writeError,
} from "./fs-files.js";
import { globRegExp } from "./glob.js";
import { assertKey, assertListFilters, assertMetadata, assertRange, CREATE_ONLY, rangeBeyondEnd } from "./port.js";
import type {
  DeleteOptions,
  Generation,
  GetOptions,
  ListedObject,
  ListOptions,
  ListPage,
  ObjectMetadata,
  ObjectStore,
  PutOptions,
  StoredObject,
  StoreLimits,
} from "./port.js";

export { assertStoreFolder } from "./fs-files.js";

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
/** Cloud Storage's page size; the same here so that callers page the same way everywhere. */
const MAX_PAGE = 1000;
const SEGMENT = /^[A-Za-z0-9._\-=+]+$/;
const PARTIAL_SEGMENT = /^[A-Za-z0-9._\-=+]*$/;
const GENERATION = /^[1-9][0-9]*$/;
/** A local folder takes writes as fast as the disk does, and any name again at once. */
const FS_LIMITS: StoreLimits = Object.freeze({ objectWriteGapMs: 0, writesPerSecond: Infinity, readsPerSecond: Infinity });

/** Points inside a write where tests can stop a process to prove a crash there is harmless. */
export type FsDebugPoint = "temp-written" | "sidecar-written" | "linked";
/** File-system calls of a write, where tests inject failures such as a full disk. */
export type FsWriteCall = "mkdir" | "write" | "link";

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
  /**
   * @internal Called before each file-system call of a write (a folder made, a file written, a
   * generation linked); throwing from it fails that call, e.g. with an ENOSPC error to prove
   * that a full disk is reported as StoreFull and leaves nothing behind.
   * @default undefined
   */
  beforeWrite?: (call: FsWriteCall, file: string) => void | Promise<void>;
}

type Precondition = { kind: "none" } | { kind: "absent" } | { kind: "generation"; generation: number };
type Listed = { name: string; isPrefix: boolean };
type Probe<T> = (key: string) => Promise<T | null>;
/** A temp file ready to be linked; with a sidecar, its inode (which names it), size and mtime. */
type Temp = { file: string; ino: number; size: number; mtimeMs: number };

/**
 * ObjectStore over a local folder, safe for many processes at once.
 * @example
 * const store = new FsObjectStore(".shardrun");
 * const generation = await store.put("runs/x/run.json", "{}", { ifGenerationMatch: 0 });
 */
export class FsObjectStore implements ObjectStore {
  readonly url: string;
  readonly limits = FS_LIMITS;
  readonly #root: string;
  readonly #options: FsObjectStoreOptions;
  /** Per key, a generation known to exist: the search for the latest starts there. */
  readonly #hints = new Map<string, number>();
  #tempReady: Promise<void> | undefined;
  #rootChecked: Promise<void> | undefined;

  constructor(rootDir: string, options: FsObjectStoreOptions = {}) {
    if (typeof rootDir !== "string" || rootDir === "") {
      throw new TypeError(`Expected \`rootDir\` to be a non-empty path, got ${JSON.stringify(rootDir)}`);
    }
    this.#root = path.resolve(rootDir);
    this.#options = options;
    this.url = pathToFileURL(this.#root).href;
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    assertKey(key);
    const { range } = options;
    if (range) assertRange(range);
    await this.#enter();
    const dir = this.#objectDir(key);
    let failed = 0;
    for (;;) {
      const generation = this.#latest(key, dir);
      if (generation === 0) return null;
      const read = readGeneration(dir, generation, { withBytes: true, ...(range ? { range } : {}) });
      if (read === null) {
        failed = this.#superseded(generationFile(dir, generation), generation, failed);
        continue;
      }
      if (read.header === TOMBSTONE) return null;
      if (range && range.start > read.size) throw rangeBeyondEnd(key, range, read.size);
      return { bytes: read.bytes, generation: String(generation), metadata: read.metadata };
    }
  }

  async put(key: string, bytes: Uint8Array | string, options: PutOptions = {}): Promise<Generation> {
    assertKey(key);
    const precondition = parsePrecondition(key, options.ifGenerationMatch);
    const metadata = options.metadata === undefined ? {} : options.metadata;
    assertMetadata(metadata);
    const sidecar = Object.keys(metadata).length > 0 ? metadata : undefined;
    const body = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
    const generation = await this.#mutate(key, [DATA_HEADER, body], precondition, "put", sidecar);
    return String(generation);
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<boolean> {
    assertKey(key);
    const precondition = parsePrecondition(key, options.ifGenerationMatch);
    return (await this.#mutate(key, [TOMBSTONE_HEADER], precondition, "delete")) !== null;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const { delimiter, pageToken, maxResults = MAX_PAGE, withMetadata = false, matchGlob, startOffset } = options;
    if (!Number.isInteger(maxResults) || maxResults < 1) {
      throw new TypeError(`Expected \`maxResults\` to be an integer from 1 and up, got ${maxResults}`);
    }
    if (delimiter !== undefined && delimiter !== "/") {
      // Folders are the index, so "/" is the one delimiter that costs nothing; shardrun needs no other.
      throw new TypeError(`Expected \`delimiter\` to be "/" or undefined, got ${JSON.stringify(delimiter)}`);
    }
    assertListFilters(options);
    const glob = matchGlob === undefined ? undefined : globRegExp(matchGlob);
    const after = pageToken ? decodePageToken(pageToken) : undefined;
    await this.#enter();
    const page: ListPage = { keys: [], prefixes: [], ...(withMetadata ? { objects: [] } : {}) };
    // Only the folder of the prefix's last complete segment is walked; the rest filters names.
    const cut = prefix.lastIndexOf("/") + 1;
    const dirPart = prefix.slice(0, cut);
    const rest = prefix.slice(cut);
    const validDir = dirPart === "" || dirPart.slice(0, -1).split("/").every(isSegment);
    if (!validDir || !PARTIAL_SEGMENT.test(rest)) return page; // no key can start with it
    const described: Probe<ListedObject | true> = withMetadata ? (key) => this.#describe(key) : async (key) => ((await this.#isLive(key)) ? true : null);
    // The filters come before the probe: a name they drop costs no read of its own.
    const probe: Probe<ListedObject | true> =
      glob || startOffset !== undefined ? async (key) => ((glob && !glob.test(key)) || (startOffset !== undefined && key < startOffset) ? null : described(key)) : described;
    const limit = Math.min(maxResults, MAX_PAGE);
    let last = "";
    for await (const item of this.#walk(dirPart, rest, after, delimiter === "/", probe)) {
      if (page.keys.length + page.prefixes.length === limit) {
        page.nextPageToken = Buffer.from(last, "utf8").toString("base64url");
        break;
      }
      if (item.isPrefix) page.prefixes.push(item.name);
      else {
        page.keys.push(item.name);
        if (typeof item.found === "object") page.objects?.push(item.found);
      }
      last = item.name;
    }
    return page;
  }

  /** The shared write path of put and delete; null when a delete found nothing to delete. */
  async #mutate(key: string, body: Uint8Array[], precondition: Precondition, op: "put" | "delete", sidecar?: ObjectMetadata): Promise<number | null> {
    await this.#enter();
    const dir = this.#objectDir(key);
    let temp: Temp | undefined;
    /** A sidecar written for a generation this write has not (yet) linked. */
    let unlinked: string | undefined;
    try {
      for (;;) {
        const next = await this.#nextGeneration(key, dir, precondition, op);
        if (next === null) return null;
        temp ??= await this.#writeTemp(body, sidecar !== undefined);
        await this.#options.debugPoint?.("temp-written");
        if (sidecar) {
          unlinked = sidecarFile(dir, next, temp.ino);
          await this.#writeSidecar(dir, unlinked, { size: temp.size, mtimeMs: temp.mtimeMs, metadata: sidecar });
          await this.#options.debugPoint?.("sidecar-written");
        }
        if (await this.#link(temp.file, dir, next)) {
          unlinked = undefined;
          this.#remember(key, next);
          await this.#options.debugPoint?.("linked");
          await this.#afterLink(dir, next);
          return next;
        }
        if (unlinked !== undefined) removeFile(unlinked);
        unlinked = undefined;
        if (precondition.kind === "generation") throw new PreconditionFailed(key, String(precondition.generation));
        // Another writer took `next` first; look again (create-only may now find a live object).
      }
    } catch (error) {
      throw writeError(error, this.#root, this.url);
    } finally {
      // A sidecar of a generation that is another writer's (or none) is never read: remove it.
      if (unlinked !== undefined) removeFile(unlinked);
      if (temp !== undefined) removeFile(temp.file);
    }
  }

  /** Which generation this write would create, or null for a delete with nothing to delete. */
  async #nextGeneration(key: string, dir: string, precondition: Precondition, op: "put" | "delete"): Promise<number | null> {
    switch (precondition.kind) {
      case "generation": {
        // Only the expected generation's own file matters: if it is live data and the link of the
        // next number succeeds, it was the latest at that instant.
        const header = readHeader(generationFile(dir, precondition.generation));
        if (header !== DATA) throw new PreconditionFailed(key, String(precondition.generation));
        return precondition.generation + 1;
      }
      case "absent": {
        const state = this.#state(key, dir);
        if (state.live) throw new PreconditionFailed(key, CREATE_ONLY);
        return op === "put" ? state.generation + 1 : null;
      }
      case "none": {
        if (op === "put") return this.#latest(key, dir) + 1;
        const state = this.#state(key, dir);
        return state.live ? state.generation + 1 : null;
      }
    }
  }

  /** The latest generation and whether it holds data (not a tombstone). */
  #state(key: string, dir: string): { generation: number; live: boolean } {
    let failed = 0;
    for (;;) {
      const generation = this.#latest(key, dir);
      if (generation === 0) return { generation, live: false };
      const file = generationFile(dir, generation);
      const header = readHeader(file);
      if (header !== null) return { generation, live: header === DATA };
      failed = this.#superseded(file, generation, failed);
    }
  }

  /**
   * The highest generation number of a key, 0 if none. Names always form 1..N (every write links
   * the number after one that exists, and none is removed), so existence is a prefix: gallop up
   * from the hint, then bisect. With a current hint that is two stat calls.
   */
  #latest(key: string, dir: string): number {
    let low = this.#hints.get(key) ?? 0;
    // The folder may have been emptied and refilled since the hint was taken.
    if (low > 0 && !exists(generationFile(dir, low))) low = 0;
    let step = 1;
    let high = low + 1;
    while (exists(generationFile(dir, high))) {
      low = high;
      step *= 2;
      high = low + step;
    }
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2);
      if (exists(generationFile(dir, middle))) low = middle;
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

  async #writeTemp(body: Uint8Array[], needIdentity: boolean): Promise<Temp> {
    for (let tries = 0; ; tries++) {
      await this.#ensureTempDir();
      const file = path.join(this.#root, TEMP_DIR, `${process.pid}-${randomBytes(8).toString("hex")}`);
      let fd: number;
      try {
        fd = fs.openSync(file, "wx");
      } catch (error) {
        // Someone removed the temp folder under us: make it again, once.
        if (tries > 0 || !hasCode(error, "ENOENT")) throw error;
        this.#tempReady = undefined;
        continue;
      }
      try {
        await this.#options.beforeWrite?.("write", file);
        fs.writeFileSync(fd, body.length === 1 ? body[0]! : Buffer.concat(body));
        if (this.#options.durable) fs.fsyncSync(fd);
        // Only a write with a sidecar needs the file's identity; the others skip the call.
        const { ino, size, mtimeMs } = needIdentity ? fs.fstatSync(fd) : { ino: 0, size: 0, mtimeMs: 0 };
        return { file, ino, size, mtimeMs };
      } catch (error) {
        // A half-written temp file (a full disk) must not stay until the hourly sweep.
        removeFile(file);
        throw error;
      } finally {
        fs.closeSync(fd);
      }
    }
  }

  /** Writes a sidecar for the temp file whose inode its name carries, before that file is linked. */
  async #writeSidecar(dir: string, file: string, content: Sidecar): Promise<void> {
    const sidecar = Buffer.from(JSON.stringify(content), "utf8");
    // Plain "w": a file of this name can only be left by a writer that died, whose inode ours
    // reuses; no reader looks at it until our link makes the name's inode a generation's.
    await this.#inFolder(dir, async () => {
      await this.#options.beforeWrite?.("write", file);
      const fd = fs.openSync(file, "w");
      try {
        fs.writeFileSync(fd, sidecar);
        if (this.#options.durable) fs.fsyncSync(fd);
      } catch (error) {
        removeFile(file);
        throw error;
      } finally {
        fs.closeSync(fd);
      }
    });
  }

  /** True if this write created `generation`; false if another writer had created it first. */
  async #link(temp: string, dir: string, generation: number): Promise<boolean> {
    const target = generationFile(dir, generation);
    try {
      await this.#inFolder(dir, async () => {
        await this.#options.beforeWrite?.("link", target);
        fs.linkSync(temp, target);
      });
      return true;
    } catch (error) {
      if (hasCode(error, "EEXIST")) return false;
      throw error;
    }
  }

  /** Runs `call`, making the object's folder (and its parents) first if it is the key's first write. */
  async #inFolder(dir: string, call: () => Promise<void>): Promise<void> {
    try {
      await call();
    } catch (error) {
      if (!hasCode(error, "ENOENT")) throw error;
      await this.#options.beforeWrite?.("mkdir", dir);
      fs.mkdirSync(dir, { recursive: true });
      await call();
    }
  }

  async #afterLink(dir: string, generation: number): Promise<void> {
    if (this.#options.durable) {
      const fd = fs.openSync(dir, "r");
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    // Truncate, never unlink: a free name would let a slow writer that lost the race link into it.
    // Keep the previous generation whole for readers that found it latest a moment ago. Its
    // sidecar goes after the truncation, so that a reader who misses it can tell why.
    if (generation > 2) {
      const old = generationFile(dir, generation - 2);
      let ino: number | undefined;
      try {
        ino = fs.statSync(old).ino;
        fs.truncateSync(old, 0);
      } catch {
        // Gone or not ours to truncate: only disk space is at stake.
      }
      if (ino !== undefined) {
        try {
          removeFile(sidecarFile(dir, generation - 2, ino));
        } catch {
          // likewise
        }
      }
    }
  }

  #ensureTempDir(): Promise<void> {
    this.#tempReady ??= (async () => {
      const dir = path.join(this.#root, TEMP_DIR);
      await this.#options.beforeWrite?.("mkdir", dir);
      fs.mkdirSync(dir, { recursive: true });
      await sweepStaleTemps(dir);
    })().catch((error: unknown) => {
      this.#tempReady = undefined;
      throw error;
    });
    return this.#tempReady;
  }

  /**
   * The start of every operation: the folder check, then one turn of the event loop. The file
   * calls below are synchronous (fs-files.ts says why); without that turn, a caller that loops on
   * the store (a compare-and-swap retried until it wins, a reader polling a key) would run on
   * microtasks alone and starve timers and I/O, as promise-based calls never did.
   */
  async #enter(): Promise<void> {
    await this.#checkRoot();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** Refuses a store whose folder is a file, once per instance (a missing folder is fine). */
  #checkRoot(): Promise<void> {
    this.#rootChecked ??= assertStoreFolder(this.#root).catch((error: unknown) => {
      this.#rootChecked = undefined;
      throw error;
    });
    return this.#rootChecked;
  }

  #objectDir(key: string): string {
    return path.join(this.#root, `${key}@`);
  }

  async #isLive(key: string): Promise<boolean> {
    return this.#state(key, this.#objectDir(key)).live;
  }

  /** A live object's listing entry (one extra small read, its sidecar); null if it is deleted. */
  async #describe(key: string): Promise<ListedObject | null> {
    const dir = this.#objectDir(key);
    let failed = 0;
    for (;;) {
      const generation = this.#latest(key, dir);
      if (generation === 0) return null;
      const read = readGeneration(dir, generation, { withBytes: false });
      if (read === null) {
        failed = this.#superseded(generationFile(dir, generation), generation, failed);
        continue;
      }
      if (read.header === TOMBSTONE) return null;
      return { key, generation: String(generation), size: read.size, metadata: read.metadata, updated: Math.floor(read.mtimeMs) };
    }
  }

  async #hasLive(prefix: string): Promise<boolean> {
    for await (const _ of this.#walk(prefix, "", undefined, false, async (key) => ((await this.#isLive(key)) ? true : null))) return true;
    return false;
  }

  /**
   * Live keys (and, with `rollUpDirs`, rolled-up prefixes) under folder `rel` ("" or ending in
   * "/") whose first segment starts with `rest`, greater than `after`, in byte order. `probe`
   * says whether a key is live (null: deleted) and what to hand back with it.
   */
  async *#walk<T>(rel: string, rest: string, after: string | undefined, rollUpDirs: boolean, probe: Probe<T>): AsyncGenerator<Listed & { found?: T }> {
    const entries = await this.#readLevel(rel, rest, after, rollUpDirs);
    for (let start = 0; start < entries.length; start += LIST_BATCH) {
      const batch = entries.slice(start, start + LIST_BATCH);
      const found = await Promise.all(
        batch.map((entry): Promise<T | boolean | null> => (!entry.isPrefix ? probe(entry.name) : rollUpDirs ? this.#hasLive(entry.name) : Promise.resolve(true))),
      );
      for (const [index, entry] of batch.entries()) {
        const result = found[index];
        if (result === null || result === false || result === undefined) continue;
        if (!entry.isPrefix) yield { ...entry, found: result as T };
        else if (rollUpDirs) yield entry;
        else yield* this.#walk(entry.name, "", after, false, probe);
      }
    }
  }

  /** One folder's object keys and sub-prefixes, filtered and sorted the way `list` returns them. */
  async #readLevel(rel: string, rest: string, after: string | undefined, rollUpDirs: boolean): Promise<Listed[]> {
    const dirents = unlessMissing(() => fs.readdirSync(path.join(this.#root, rel), { withFileTypes: true }));
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

/** Removes temp files of processes that died between writing and linking them. Best effort. */
async function sweepStaleTemps(dir: string): Promise<void> {
  try {
    const cutoff = Date.now() - STALE_TEMP_MS;
    for (const name of await fsp.readdir(dir)) {
      const file = path.join(dir, name);
      const stat = await fsp.lstat(file).catch(() => undefined);
      if (stat && stat.mtimeMs < cutoff) await fsp.rm(file, { force: true });
    }
  } catch {
    // A leftover temp file costs only disk; never fail a write over it.
  }
}
