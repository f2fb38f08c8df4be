/**
 * The ObjectStore port: the only way orchestrator and worker touch state. It is shaped after
 * Cloud Storage: objects are immutable byte strings with a generation that changes on every
 * write, and every mutating call can be conditioned on the generation the caller last saw.
 *
 * Generations are decimal strings: Cloud Storage's are larger than 2^53, so a `number` would
 * lose digits. "0" in `ifGenerationMatch` means "only if the object does not exist".
 */

export type Generation = string;

/** `ifGenerationMatch: 0` (or "0") makes a write create-only. */
export const CREATE_ONLY = "0" as const;

/**
 * Custom metadata of one generation of an object (Cloud Storage's custom metadata): small string
 * pairs that a list returns with each object, so that many objects' state can be read in a few
 * list pages instead of one read each. See `assertMetadata` for what is allowed.
 */
export type ObjectMetadata = Record<string, string>;

export interface StoredObject {
  /** The object's bytes, or with `range` only those of the range. */
  bytes: Uint8Array;
  generation: Generation;
  /** Custom metadata written with this generation; `{}` when none. */
  metadata: ObjectMetadata;
}

/** Bytes [start, end) of an object. */
export interface ByteRange {
  /** First byte, from 0. */
  start: number;
  /** One past the last byte; past the end of the object or left out = to the end. @default undefined */
  end?: number;
}

export interface GetOptions {
  /**
   * Read only these bytes; `generation` and `metadata` are still the whole object's. Many small
   * records packed into one object are read this way, each by the one reader that needs it.
   * A `start` past the end of the object throws a RangeError; `start` equal to its size gives
   * no bytes.
   * @default undefined (the whole object)
   * @example { start: 4096, end: 8192 }
   */
  range?: ByteRange;
}

export interface PutOptions {
  /**
   * Write only if the object's current generation is this one; "0"/0 = only if it does not exist.
   * A mismatch throws `PreconditionFailed` and changes nothing.
   * @default undefined (unconditional)
   */
  ifGenerationMatch?: Generation | 0;
  /** @default "application/octet-stream" */
  contentType?: string;
  /**
   * Custom metadata stored with this generation and returned by `get` and by `list` with
   * `withMetadata`. A later put replaces it (it is not merged). Checked by `assertMetadata`; a
   * refused map throws a TypeError naming the key and writes nothing.
   * @default {} (none)
   * @example { state: "running", done: "120" }
   */
  metadata?: ObjectMetadata;
}

export interface DeleteOptions {
  /** Delete only if the object's current generation is this one; mismatch throws `PreconditionFailed`. */
  ifGenerationMatch?: Generation;
}

export interface ListOptions {
  /** With "/", keys below the next "/" after the prefix are rolled up into `prefixes`. */
  delimiter?: string;
  /** From a previous page's `nextPageToken`. */
  pageToken?: string;
  /** Keys plus prefixes per page; at most 1000 (Cloud Storage's page size). @default 1000 */
  maxResults?: number;
  /**
   * Also return each listed object's generation, size, update time and custom metadata in
   * `objects`. Cloud Storage's objects.list carries them anyway, so on every adapter this costs
   * no request per object (the fs store reads one small file per object).
   * @default false
   */
  withMetadata?: boolean;
  /**
   * Only keys that match this glob (Cloud Storage's `matchGlob`: `*`, `**`, `?`, `[…]`, `{a,b}`;
   * see store/glob.ts), matched against the whole key. The store filters before it pages, so a
   * page holds up to `maxResults` matches: listing one kind of object among many costs pages of
   * that kind only. Not with `delimiter`.
   * @default undefined (every key under the prefix)
   * @example "runs/r1/shards/**checkpoint.json"
   */
  matchGlob?: string;
  /**
   * Only keys that sort at or after this one (Cloud Storage's `startOffset`). Not with `delimiter`.
   * @default undefined
   */
  startOffset?: string;
}

/** Checks the filters of a list call (shared by the adapters); throws a TypeError. */
export function assertListFilters(options: ListOptions): void {
  const { matchGlob, startOffset, delimiter } = options;
  if ((matchGlob !== undefined || startOffset !== undefined) && delimiter !== undefined) {
    throw new TypeError("Expected `matchGlob` and `startOffset` without `delimiter`");
  }
  if (startOffset !== undefined && (typeof startOffset !== "string" || startOffset === "")) {
    throw new TypeError(`Expected \`startOffset\` to be a non-empty key, got ${JSON.stringify(startOffset)}`);
  }
}

/** One object of a list page with `withMetadata`. */
export interface ListedObject {
  key: string;
  generation: Generation;
  /** Size in bytes. */
  size: number;
  metadata: ObjectMetadata;
  /** When this generation was written, in ms since the epoch on the store's clock. */
  updated: number;
}

export interface ListPage {
  /** Keys of objects, in lexicographic order. */
  keys: string[];
  /** With a delimiter: the rolled-up prefixes (each ending with the delimiter), in order. */
  prefixes: string[];
  /** With `withMetadata`: one entry per key, in the same order. */
  objects?: ListedObject[];
  nextPageToken?: string;
}

/**
 * What a store takes before it refuses or slows down: callers plan write cadences with these
 * rather than with knowledge of which adapter they run on.
 */
export interface StoreLimits {
  /** Shortest gap between two mutations of one object name, in ms (Cloud Storage: 1000; fs: 0). */
  objectWriteGapMs: number;
  /**
   * Bucket writes (puts and deletes) per second the store takes before answering 429 (Cloud
   * Storage: about 1,000 at first, ramping up; fs: Infinity).
   */
  writesPerSecond: number;
  /** Reads (gets and lists) per second likewise (Cloud Storage: about 5,000 at first; fs: Infinity). */
  readsPerSecond: number;
}

export interface ObjectStore {
  /** A URL that another process can open the same store with (`file:///…`, `gs://…`). */
  readonly url: string;
  /** The store's limits, declared by the adapter. */
  readonly limits: StoreLimits;
  get(key: string, options?: GetOptions): Promise<StoredObject | null>;
  /** Returns the new generation. */
  put(key: string, bytes: Uint8Array | string, options?: PutOptions): Promise<Generation>;
  list(prefix: string, options?: ListOptions): Promise<ListPage>;
  /** Returns false when there was nothing to delete (and no precondition was given). */
  delete(key: string, options?: DeleteOptions): Promise<boolean>;
}

/** Every key under a prefix, across pages. */
export async function* listAll(store: ObjectStore, prefix: string, options: Omit<ListOptions, "pageToken"> = {}): AsyncGenerator<string> {
  let pageToken: string | undefined;
  do {
    const page = await store.list(prefix, { ...options, ...(pageToken ? { pageToken } : {}) });
    yield* page.keys;
    pageToken = page.nextPageToken;
  } while (pageToken);
}

/** Every rolled-up prefix directly below `prefix` (delimiter "/"), across pages. */
export async function listPrefixes(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let pageToken: string | undefined;
  do {
    const page = await store.list(prefix, { delimiter: "/", ...(pageToken ? { pageToken } : {}) });
    out.push(...page.prefixes);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return out;
}

/** Keys are the same on every adapter: printable ASCII path segments, no "..", no leading "/". */
export const KEY_PATTERN = /^(?!\/)(?!.*\/\/)(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._\-=+/]+$/;

export function assertKey(key: string): void {
  if (!KEY_PATTERN.test(key) || key.endsWith("/")) {
    throw new TypeError(`Expected an object key of letters, digits and . _ - = + / segments, got ${JSON.stringify(key)}`);
  }
}

/**
 * Custom metadata keys: 1 to 64 of a-z, 0-9, "_" and "-" (the same on every adapter, and safe as
 * the lowercase HTTP header names Cloud Storage sends them in).
 */
export const METADATA_KEY_PATTERN = /^[a-z0-9_-]{1,64}$/;
/** Keys the adapters keep for their own bookkeeping (the gcs store's write id). */
export const RESERVED_METADATA_PREFIX = "shardrun-";
/**
 * Bytes of keys and values together: Cloud Storage's 8 KiB per object, less 64 bytes that the
 * adapters keep for their own entries.
 */
export const METADATA_MAX_BYTES = 8 * 1024 - 64;
/** Bytes of one value: Cloud Storage's limit per field. */
export const METADATA_MAX_VALUE_BYTES = 4 * 1024;
/**
 * Printable ASCII without leading or trailing spaces: Cloud Storage hands metadata back in HTTP
 * headers on a download, where other bytes are not carried faithfully and spaces at either end
 * are trimmed.
 */
const METADATA_VALUE = /^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/;

/**
 * Checks custom metadata before anything is written; throws a TypeError naming the key.
 * @example assertMetadata({ state: "done", items: "250" })
 */
export function assertMetadata(metadata: unknown): asserts metadata is ObjectMetadata {
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    throw new TypeError(`Expected \`metadata\` to be an object of string values, got ${metadata === null ? "null" : Array.isArray(metadata) ? "an array" : typeof metadata}`);
  }
  let total = 0;
  for (const [key, value] of Object.entries(metadata)) {
    if (!METADATA_KEY_PATTERN.test(key) || key.startsWith(RESERVED_METADATA_PREFIX)) {
      throw new TypeError(
        `Expected metadata key ${JSON.stringify(key)} to be 1-64 of a-z 0-9 _ - (not starting with "${RESERVED_METADATA_PREFIX}", kept for the adapters)`,
      );
    }
    if (typeof value !== "string") throw new TypeError(`Expected metadata value of ${JSON.stringify(key)} to be a string, got ${typeof value}`);
    if (!METADATA_VALUE.test(value)) {
      throw new TypeError(`Expected metadata value of ${JSON.stringify(key)} to be printable ASCII without spaces at either end`);
    }
    if (value.length > METADATA_MAX_VALUE_BYTES) {
      throw new TypeError(`Expected metadata value of ${JSON.stringify(key)} to be at most ${METADATA_MAX_VALUE_BYTES} bytes, got ${value.length}`);
    }
    total += key.length + value.length;
    if (total > METADATA_MAX_BYTES) {
      throw new TypeError(`Expected metadata to be at most ${METADATA_MAX_BYTES} bytes of keys and values in all; it passes that at key ${JSON.stringify(key)}`);
    }
  }
}

/** Checks a byte range's shape (not yet against an object's size); throws a TypeError. */
export function assertRange(range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0) throw new TypeError(`Expected \`range.start\` to be an integer from 0 and up, got ${start}`);
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
    throw new TypeError(`Expected \`range.end\` to be undefined or an integer from range.start (${start}) and up, got ${end}`);
  }
}

/** The error for a range that starts past the end of its object. */
export function rangeBeyondEnd(key: string, range: ByteRange, size: number): RangeError {
  return new RangeError(`range [${range.start}, ${range.end ?? "end"}) of ${key} starts past its end (${size} bytes)`);
}
