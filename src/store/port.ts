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
}

export interface ListPage {
  /** Keys of objects, in lexicographic order. */
  keys: string[];
  /** With a delimiter: the rolled-up prefixes (each ending with the delimiter), in order. */
  prefixes: string[];
  nextPageToken?: string;
}

export interface ObjectStore {
  /** A URL that another process can open the same store with (`file:///…`, `gs://…`). */
  readonly url: string;
  get(key: string): Promise<StoredObject | null>;
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
