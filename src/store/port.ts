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

export interface StoredObject {
  bytes: Uint8Array;
  generation: Generation;
  /** Custom metadata ({} when none). */
  metadata?: Record<string, string>;
}

export interface GetOptions {
  /** Only the bytes [start, end) (end: to the end of the object). */
  range?: { start: number; end?: number };
}

/** What a store takes before it refuses (Cloud Storage's documented limits; none for a folder). */
export interface StoreLimits {
  /** Shortest gap between two mutations of one object name, in ms (Cloud Storage: 1000; fs: 0). */
  objectWriteGapMs: number;
  /** Bucket writes per second before 429s (Cloud Storage: about 1,000 at first; fs: Infinity). */
  writesPerSecond: number;
  /** Reads per second likewise (Cloud Storage: about 5,000 at first; fs: Infinity). */
  readsPerSecond: number;
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
  /** Custom metadata stored with the object; `list` with `withMetadata` returns it. */
  metadata?: Record<string, string>;
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
  /** @default 1000 */
  maxResults?: number;
  /** Also return each object's generation, size, update time and custom metadata in `objects`. */
  withMetadata?: boolean;
}

export interface ListedObject {
  key: string;
  generation: Generation;
  size: number;
  metadata: Record<string, string>;
  /** ISO time of the object's last write. */
  updated: string;
}

export interface ListPage {
  /** Keys of objects, in lexicographic order. */
  keys: string[];
  /** With a delimiter: the rolled-up prefixes (each ending with the delimiter), in order. */
  prefixes: string[];
  /** With `withMetadata`: the objects of `keys`, in the same order. */
  objects?: ListedObject[];
  nextPageToken?: string;
}

export interface ObjectStore {
  /** A URL that another process can open the same store with (`file:///…`, `gs://…`). */
  readonly url: string;
  /** The limits this store declares: writers pace themselves by them. */
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
