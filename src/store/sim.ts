/**
 * The simulated Cloud Storage, client side: an ObjectStore over a SimBucket (sim-bucket.ts) that
 * behaves as the gcs adapter does over Cloud Storage, so that code above it meets what it would
 * meet there: the same requests per call (one per get, put or list page; a metadata read where
 * gcs.ts makes one), the same retries (retry.ts: 408/429/5xx and lost answers retried with
 * exponential backoff and jitter, only for reads, lists and conditioned writes), the same write
 * id in the metadata to settle a conditioned write whose answer was lost.
 *
 * For tests and the scale bench only: openStore never opens it. Its clock is the bucket's, so a
 * bucket on scaledClock(k) runs latencies, limits and backoff k times faster than real time.
 */
import { randomUUID } from "node:crypto";
import { PreconditionFailed, ShardrunError } from "../core/errors.js";
import { globRegExp } from "./glob.js";
import {
  assertListFilters,
  assertKey,
  assertMetadata,
  assertRange,
  CREATE_ONLY,
  KEY_PATTERN,
  RESERVED_METADATA_PREFIX,
  rangeBeyondEnd,
  type ByteRange,
  type DeleteOptions,
  type Generation,
  type GetOptions,
  type ListedObject,
  type ListOptions,
  type ListPage,
  type ObjectMetadata,
  type ObjectStore,
  type PutOptions,
  type StoredObject,
  type StoreLimits,
} from "./port.js";
import { DEFAULT_STORE_RETRY, RetryPolicy, retrying, retryNote, statusOf, type RetryLoop, type RetryMode } from "./retry.js";
import { SimBucket, SimHttpError, type SimObject } from "./sim-bucket.js";

export { SimBucket, SimHttpError, SIM_DEFAULTS, SIM_PAGE_SIZE } from "./sim-bucket.js";
export type { PricingClass, SimBucketOptions, SimRequestKind, SimStats } from "./sim-bucket.js";

/** The write id the gcs adapter keeps in custom metadata; the same here. */
const WRITE_ID = `${RESERVED_METADATA_PREFIX}write`;
const GENERATION = /^[1-9][0-9]*$/;

export interface SimObjectStoreOptions {
  /** The bucket; several stores over one bucket behave like several processes. */
  bucket: SimBucket;
  /** Folder inside the bucket that holds this store. @default "" */
  prefix?: string;
  /** Backoff of retried requests, as the gcs adapter's. @default { attempts: 8, minDelayMs: 200, maxDelayMs: 10000, factor: 2, jitter: true } */
  retry?: Partial<RetryPolicy>;
  /** An attempt without an answer after this long (on the bucket's clock) is abandoned. @default 30000 */
  requestTimeoutMs?: number;
  /** Jitter of the backoff. @default Math.random */
  random?: () => number;
}

/**
 * ObjectStore over a simulated Cloud Storage bucket.
 * @example
 * const bucket = new SimBucket({ clock: scaledClock(100) });
 * const store = new SimObjectStore({ bucket });
 * await store.put("runs/x/run.json", "{}", { ifGenerationMatch: 0 });
 * console.log(bucket.stats().costUsd);
 */
export class SimObjectStore implements ObjectStore {
  readonly url: string;
  readonly limits: StoreLimits;
  readonly bucket: SimBucket;
  /** "" or the prefix with a trailing "/". */
  readonly #root: string;
  readonly #retry: RetryLoop;

  constructor(options: SimObjectStoreOptions) {
    const { bucket, prefix = "", retry = {}, requestTimeoutMs = 30_000, random } = options;
    if (!(bucket instanceof SimBucket)) throw new TypeError("Expected `bucket` to be a SimBucket");
    const trimmed = prefix.replace(/\/+$/, "");
    if (trimmed !== "" && !KEY_PATTERN.test(trimmed)) {
      throw new TypeError(`Expected \`prefix\` to be "" or a path of letters, digits and . _ - = + / segments, got ${JSON.stringify(prefix)}`);
    }
    if (!(requestTimeoutMs > 0)) throw new TypeError(`Expected \`requestTimeoutMs\` to be a number above 0, got ${requestTimeoutMs}`);
    this.bucket = bucket;
    this.limits = bucket.limits;
    this.#root = trimmed === "" ? "" : `${trimmed}/`;
    this.url = `sim://${bucket.name}${trimmed === "" ? "" : `/${trimmed}`}`;
    this.#retry = {
      policy: RetryPolicy.parse({ ...DEFAULT_STORE_RETRY, ...retry }),
      clock: bucket.clock,
      requestTimeoutMs,
      ...(random ? { random } : {}),
    };
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    assertKey(key);
    const { range } = options;
    if (range) assertRange(range);
    const name = this.#root + key;
    return this.#withRetries("get", key, "idempotent", async (signal) => {
      try {
        // As the gcs adapter: an empty range is answered from the metadata, as is a 416.
        if (range && range.end === range.start) return await this.#emptyRange(key, range, signal);
        return await this.bucket.request("get", name, () => media(this.#live(name), range), signal);
      } catch (error) {
        const status = statusOf(error);
        if (status === 416 && range) return await this.#emptyRange(key, range, signal);
        if (status === 404) return null;
        throw error;
      }
    });
  }

  async put(key: string, bytes: Uint8Array | string, options: PutOptions = {}): Promise<Generation> {
    assertKey(key);
    const match = parseMatch(options.ifGenerationMatch);
    const metadata = options.metadata === undefined ? {} : options.metadata;
    assertMetadata(metadata);
    const body = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    const writeId = randomUUID();
    const name = this.#root + key;
    return this.#withRetries("put", key, match === undefined ? "unconditional" : "idempotent", async (signal, ambiguous) => {
      try {
        const written = await this.bucket.request("insert", name, (now) => this.bucket.insert(name, body, { ...metadata, [WRITE_ID]: writeId }, match, now), signal);
        return written.generation;
      } catch (error) {
        if (statusOf(error) !== 412) throw error;
        // After an ambiguous failure, the 412 may be our own earlier attempt's doing: the write id tells.
        if (ambiguous) {
          const current = await this.bucket.request("getMetadata", name, () => this.bucket.read(name), signal);
          if (current?.metadata[WRITE_ID] === writeId) return current.generation;
        }
        throw new PreconditionFailed(key, match ?? "(none)", { cause: error });
      }
    });
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<boolean> {
    assertKey(key);
    const match = parseMatch(options.ifGenerationMatch);
    const name = this.#root + key;
    if (match === CREATE_ONLY) {
      const exists = await this.#withRetries("get metadata", key, "idempotent", (signal) => this.bucket.request("getMetadata", name, () => this.bucket.read(name) !== undefined, signal));
      if (exists) throw new PreconditionFailed(key, CREATE_ONLY);
      return false;
    }
    return this.#withRetries("delete", key, match === undefined ? "unconditional" : "idempotent", async (signal, ambiguous) => {
      try {
        await this.bucket.request("delete", name, (now) => this.bucket.remove(name, match, now), signal);
        return true;
      } catch (error) {
        const status = statusOf(error);
        if (status === 404) {
          if (match === undefined) return false;
          // As gcs.ts: after an ambiguous failure, no object at all means our earlier attempt deleted it.
          if (ambiguous && !(await this.bucket.request("getMetadata", name, () => this.bucket.read(name) !== undefined, signal))) return true;
          throw new PreconditionFailed(key, match, { cause: error });
        }
        if (status === 412) throw new PreconditionFailed(key, match ?? "(none)", { cause: error });
        throw error;
      }
    });
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const { delimiter, pageToken, maxResults = 1000, withMetadata = false, matchGlob, startOffset } = options;
    if (!Number.isInteger(maxResults) || maxResults < 1) {
      throw new TypeError(`Expected \`maxResults\` to be an integer from 1 and up, got ${maxResults}`);
    }
    if (delimiter === "") throw new TypeError("Expected `delimiter` to be a non-empty string");
    assertListFilters(options);
    const glob = matchGlob === undefined ? undefined : globRegExp(matchGlob);
    const root = this.#root;
    const after = pageToken === undefined ? undefined : decodePageToken(pageToken);
    const full = this.#root + prefix;
    const { entries, more } = await this.#withRetries("list", prefix, "idempotent", (signal) =>
      this.bucket.request(
        "list",
        full,
        () =>
          this.bucket.listEntries(full, {
            ...(delimiter === undefined ? {} : { delimiter }),
            ...(after ? { after: { name: this.#root + after.name, isPrefix: after.isPrefix } } : {}),
            ...(startOffset === undefined ? {} : { startOffset: root + startOffset }),
            ...(glob ? { match: (name: string) => glob.test(name.slice(root.length)) } : {}),
            maxResults,
          }),
        signal,
      ),
    );
    const page: ListPage = { keys: [], prefixes: [], ...(withMetadata ? { objects: [] } : {}) };
    for (const entry of entries) {
      const name = entry.name.slice(this.#root.length);
      if (entry.isPrefix) page.prefixes.push(name);
      else {
        page.keys.push(name);
        if (withMetadata && entry.object) page.objects?.push(listed(name, entry.object));
      }
    }
    const last = entries.at(-1);
    if (more && last) page.nextPageToken = encodePageToken(last.name.slice(this.#root.length), last.isPrefix);
    return page;
  }

  /** The live object, or a 404 as the bucket answers it. */
  #live(name: string): SimObject {
    const object = this.bucket.read(name);
    if (!object) throw new SimHttpError(404, "notFound", `${name}: no such object`);
    return object;
  }

  /** An answer without bytes, from the object's metadata; null when it does not exist. */
  async #emptyRange(key: string, range: ByteRange, signal: AbortSignal): Promise<StoredObject | null> {
    const object = await this.bucket.request("getMetadata", this.#root + key, () => this.bucket.read(this.#root + key), signal);
    if (!object) return null;
    if (range.start > object.bytes.length) throw rangeBeyondEnd(key, range, object.bytes.length);
    return { bytes: new Uint8Array(0), generation: object.generation, metadata: callerMetadata(object.metadata) };
  }

  #withRetries<T>(op: string, key: string, mode: RetryMode, call: (signal: AbortSignal, ambiguous: boolean) => Promise<T>): Promise<T> {
    return retrying(this.#retry, mode, call, (error, attempts) => this.#explain(error, op, key, attempts, mode));
  }

  /** The final error, worded as the gcs adapter words it. */
  #explain(error: unknown, op: string, key: string, attempts: number, mode: RetryMode): unknown {
    if (error instanceof ShardrunError || error instanceof TypeError || error instanceof RangeError) return error;
    const where = `${this.url}/${key}${op === "list" ? "*" : ""}`;
    const why = retryNote(error, mode, attempts);
    return new ShardrunError("INTERNAL", `${op} ${where} failed${why}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** The bytes a media download gives: the object, or a range of it (416 when it starts at or past the end). */
function media(object: SimObject, range: ByteRange | undefined): StoredObject {
  const size = object.bytes.length;
  if (range && range.start >= size) throw new SimHttpError(416, "requestedRangeNotSatisfiable", `${object.name}: range starts at or past the end`);
  const bytes = range ? object.bytes.slice(range.start, Math.min(range.end ?? size, size)) : object.bytes.slice();
  return { bytes, generation: object.generation, metadata: callerMetadata(object.metadata) };
}

function callerMetadata(metadata: Record<string, string>): ObjectMetadata {
  const out: ObjectMetadata = {};
  for (const [key, value] of Object.entries(metadata)) if (!key.startsWith(RESERVED_METADATA_PREFIX)) out[key] = value;
  return out;
}

function listed(key: string, object: SimObject): ListedObject {
  return { key, generation: object.generation, size: object.bytes.length, metadata: callerMetadata(object.metadata), updated: Math.floor(object.updated) };
}

function parseMatch(match: Generation | 0 | undefined): string | undefined {
  if (match === undefined) return undefined;
  const text = String(match);
  if (text === CREATE_ONLY || GENERATION.test(text)) return text;
  throw new TypeError(`Expected \`ifGenerationMatch\` to be a decimal generation string or 0, got ${JSON.stringify(match)}`);
}

function encodePageToken(name: string, isPrefix: boolean): string {
  return (isPrefix ? "p" : "k") + Buffer.from(name, "utf8").toString("base64url");
}

function decodePageToken(token: string): { name: string; isPrefix: boolean } {
  const name = Buffer.from(token.slice(1), "base64url").toString("utf8");
  if (!/^[kp]./.test(token) || Buffer.from(name, "utf8").toString("base64url") !== token.slice(1)) {
    throw new TypeError(`Expected \`pageToken\` from a previous page's nextPageToken, got ${JSON.stringify(token)}`);
  }
  return { name, isPrefix: token.startsWith("p") };
}
