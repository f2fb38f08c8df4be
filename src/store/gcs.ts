/**
 * The ObjectStore on Cloud Storage, through @google-cloud/storage (the only file that imports it).
 *
 * Retries are ours, not the library's: its `retryOptions.autoRetry` is switched per call on the
 * shared client (a race between concurrent calls), and it cannot tell "my write was applied but
 * the answer was lost" from "someone else won". So the client runs with autoRetry off and
 * retry.ts retries reads, lists and conditioned writes on 408/429/5xx, resets and timeouts. An
 * unconditional put or delete is retried only when the request provably never left (connection
 * refused, DNS): a blind retry could undo another writer's work.
 *
 * A lost answer: every put stamps a random write id into the object's custom metadata. When a
 * conditioned put whose earlier attempt failed ambiguously then gets 412, the object is read
 * back: if it carries our write id, the first attempt won and its generation is returned. If the
 * object was replaced again since, our write cannot be told apart from a lost race and
 * PreconditionFailed is thrown: for shardrun's protocols that is the safe answer (the lease
 * moved on; create-only objects are never replaced). The write id is custom metadata of ours:
 * callers never see it.
 *
 * Custom metadata comes back from the same request as the bytes (`x-goog-meta-*` headers of the
 * download) and from the same objects.list page as the keys, so it costs no request of its own.
 */
import { createHash, randomUUID } from "node:crypto";
import { Storage, type File, type StorageOptions } from "@google-cloud/storage";
import { ENV } from "../config/env.js";
import { PreconditionFailed, ShardrunError, UsageError } from "../core/errors.js";
import { realClock } from "../core/time.js";
import { globRegExp } from "./glob.js";
import {
  assertListFilters,
  assertKey,
  assertMetadata,
  assertRange,
  CREATE_ONLY,
  KEY_PATTERN,
  METADATA_KEY_PATTERN,
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

/** Custom metadata key that names the put call that wrote an object (reserved: see port.ts). */
const WRITE_ID = `${RESERVED_METADATA_PREFIX}write`;
const ROLE = "roles/storage.objectUser";
const GENERATION = /^[1-9][0-9]*$/;
const BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;
const META_HEADER = "x-goog-meta-";
/**
 * Cloud Storage's documented limits: about one write per second to one object name (quotas
 * page), and a bucket's initial IO capacity of about 1,000 object writes and 5,000 object reads
 * per second, which grows as load grows (request-rate guidelines: double at most every 20 min).
 */
export const GCS_LIMITS: StoreLimits = Object.freeze({ objectWriteGapMs: 1000, writesPerSecond: 1000, readsPerSecond: 5000 });

/** Client settings passed to `new Storage()`. */
export type GcsClientOptions = Pick<
  StorageOptions,
  "apiEndpoint" | "projectId" | "keyFilename" | "credentials" | "authClient" | "useAuthWithCustomEndpoint" | "universeDomain" | "userAgent"
>;

export interface GcsObjectStoreOptions {
  /** Bucket name, without `gs://`. @example "acme-shardrun" */
  bucket: string;
  /**
   * Folder inside the bucket that holds this store; keys are relative to it.
   * @default "" (the bucket root)
   * @example "prod"
   */
  prefix?: string;
  /**
   * Settings for the Cloud Storage client. `apiEndpoint` (or, without it, the standard
   * `STORAGE_EMULATOR_HOST`) points it at an emulator; a custom endpoint gets no credentials
   * unless `useAuthWithCustomEndpoint` is true (Private Service Connect endpoints need that).
   * @default {} (Application Default Credentials, storage.googleapis.com)
   * @example { apiEndpoint: "http://127.0.0.1:4443" }
   */
  storage?: GcsClientOptions;
  /**
   * Backoff of retried requests: reads, lists and conditioned writes on 408/429/5xx, resets and
   * timeouts. `attempts` counts the first try; the defaults wait up to about 20 s in all, enough
   * for a 429 burst on an object written more often than Cloud Storage's ~1 write/s.
   * @default { attempts: 8, minDelayMs: 200, maxDelayMs: 10000, factor: 2, jitter: true }
   * @example { attempts: 4, maxDelayMs: 2000 }
   */
  retry?: Partial<RetryPolicy>;
  /**
   * A request without an answer after this long is abandoned and counts as a transient failure.
   * @default 30000
   */
  requestTimeoutMs?: number;
  /** Where `STORAGE_EMULATOR_HOST` is read from. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * ObjectStore over a Cloud Storage bucket, with generation preconditions as compare-and-swap.
 * @example
 * const store = GcsObjectStore.fromUrl("gs://acme-shardrun/prod");
 * await store.put("runs/x/run.json", "{}", { ifGenerationMatch: 0 });
 */
export class GcsObjectStore implements ObjectStore {
  readonly url: string;
  readonly limits = GCS_LIMITS;
  readonly bucket: string;
  /** "" or the prefix with a trailing "/". */
  readonly #root: string;
  readonly #client: Storage;
  readonly #retry: RetryLoop;
  #bucketChecked: Promise<void> | undefined;

  /** Opens `gs://bucket` or `gs://bucket/prefix`. */
  static fromUrl(url: string, options: Omit<GcsObjectStoreOptions, "bucket" | "prefix"> = {}): GcsObjectStore {
    const match = /^gs:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
    if (!match?.[1]) throw new UsageError(`store "${url}": expected gs://bucket or gs://bucket/prefix`);
    return new GcsObjectStore({ ...options, bucket: match[1], prefix: (match[2] ?? "").replace(/\/+$/, "") });
  }

  constructor(options: GcsObjectStoreOptions) {
    dropLibraryStreamWarnings();
    const { bucket, prefix = "", storage = {}, retry = {}, requestTimeoutMs = 30_000, env = process.env } = options;
    if (typeof bucket !== "string" || !BUCKET.test(bucket)) {
      throw new TypeError(`Expected \`bucket\` to be a Cloud Storage bucket name (lowercase letters, digits, - _ .), got ${JSON.stringify(bucket)}`);
    }
    const trimmed = prefix.replace(/\/+$/, "");
    if (trimmed !== "" && !KEY_PATTERN.test(trimmed)) {
      throw new TypeError(`Expected \`prefix\` to be "" or a path of letters, digits and . _ - = + / segments, got ${JSON.stringify(prefix)}`);
    }
    if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs < 1) {
      throw new TypeError(`Expected \`requestTimeoutMs\` to be an integer from 1 and up, got ${requestTimeoutMs}`);
    }
    this.bucket = bucket;
    this.#root = trimmed === "" ? "" : `${trimmed}/`;
    this.url = `gs://${bucket}${trimmed === "" ? "" : `/${trimmed}`}`;
    this.#retry = { policy: RetryPolicy.parse({ ...DEFAULT_STORE_RETRY, ...retry }), clock: realClock, requestTimeoutMs };
    // Emulators speak plain http; the library would assume https for a bare host:port.
    const emulator = env[ENV.storageEmulator]?.trim();
    const apiEndpoint = storage.apiEndpoint ?? (emulator ? (/^https?:\/\//.test(emulator) ? emulator : `http://${emulator}`) : undefined);
    this.#client = new Storage({
      ...storage,
      ...(apiEndpoint ? { apiEndpoint } : {}),
      // Passed on, but not relied upon: see `#withRetries` for the deadline that holds.
      timeout: requestTimeoutMs,
      retryOptions: { autoRetry: false },
    });
    // With STORAGE_EMULATOR_HOST set in process.env the library sends JSON calls there even when
    // given another apiEndpoint (or an injected env says otherwise): one endpoint for all calls.
    if (apiEndpoint) this.#client.baseUrl = `${this.#client.apiEndpoint}/storage/v1`;
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    assertKey(key);
    const { range } = options;
    if (range) assertRange(range);
    return this.#withRetries("get", key, "idempotent", async (signal) => {
      try {
        // A Range header cannot ask for no bytes: an empty range is answered from the metadata.
        if (range && range.end === range.start) return await this.#emptyRange(key, range);
        return await download(this.#file(key), signal, range);
      } catch (error) {
        const status = statusOf(error);
        // 416: the range starts at or past the end. At the end is no bytes; past it, an error.
        if (status === 416 && range) return await this.#emptyRange(key, range);
        if (status !== 404) throw error;
        await this.#checkBucket();
        return null;
      }
    });
  }

  async put(key: string, bytes: Uint8Array | string, options: PutOptions = {}): Promise<Generation> {
    assertKey(key);
    const match = parseMatch(options.ifGenerationMatch);
    const metadata = options.metadata === undefined ? {} : options.metadata;
    assertMetadata(metadata);
    const body = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const md5Hash = createHash("md5").update(body).digest("base64");
    const writeId = randomUUID();
    return this.#withRetries("put", key, match === undefined ? "unconditional" : "idempotent", async (_signal, ambiguous) => {
      // A File per attempt: an abandoned attempt that answers late must not overwrite the
      // metadata this attempt reads back.
      const file = this.#file(key);
      try {
        // One request (multipart, not resumable). Validation is the server's, from the declared
        // md5Hash: the library's own check would delete the object on a mismatch, unconditionally,
        // possibly taking a newer writer's object with it.
        await file.save(body, {
          resumable: false,
          validation: false,
          metadata: {
            contentType: options.contentType ?? "application/octet-stream",
            cacheControl: "no-store",
            md5Hash,
            metadata: { ...metadata, [WRITE_ID]: writeId },
          },
          ...(match === undefined ? {} : { preconditionOpts: { ifGenerationMatch: match } }),
        });
      } catch (error) {
        if (statusOf(error) === 412) {
          // Only after an ambiguous failure can an attempt of ours have gone through unseen.
          const ours = ambiguous ? await this.#generationIfWrittenBy(file, key, writeId) : null;
          if (ours !== null) return ours;
          throw new PreconditionFailed(key, match ?? "(none)", { cause: error });
        }
        throw error;
      }
      const written = file.metadata;
      if (written.md5Hash !== undefined && written.md5Hash !== md5Hash) {
        throw new ShardrunError("INTERNAL", `${this.#objectUrl(key)}: stored MD5 ${written.md5Hash} differs from the uploaded ${md5Hash}`);
      }
      return parseGeneration(written.generation, key);
    });
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<boolean> {
    assertKey(key);
    const match = parseMatch(options.ifGenerationMatch);
    const file = this.#file(key);
    if (match === CREATE_ONLY) {
      // "Only if absent": nothing to delete either way.
      if ((await this.#metadata(file, key)) !== null) throw new PreconditionFailed(key, CREATE_ONLY);
      return false;
    }
    return this.#withRetries("delete", key, match === undefined ? "unconditional" : "idempotent", async (_signal, ambiguous) => {
      try {
        // `generation` pins the delete to the generation the caller saw. On Cloud Storage that
        // agrees with ifGenerationMatch; fake-gcs-server ignores ifGenerationMatch on delete, so
        // the pin is what makes the emulator conditional (a pinned, vanished generation is a 404).
        await file.delete(match === undefined ? {} : ({ ifGenerationMatch: match, generation: match } as object));
        return true;
      } catch (error) {
        const status = statusOf(error);
        if (status === 404) {
          await this.#checkBucket();
          if (match === undefined) return false;
          // The generation is gone. After an attempt that may have gone through, no object at
          // all means that attempt deleted it; a newer object means the condition was stale, or
          // that our delete was followed by a re-create: either way the caller must re-read.
          if (ambiguous && (await this.#metadata(file, key)) === null) return true;
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
    // Cloud Storage filters by the glob itself; the names are checked here as well, because an
    // emulator may ignore matchGlob (fake-gcs-server did until recently).
    const glob = matchGlob === undefined ? undefined : globRegExp(matchGlob);
    // Pages continue from the last name returned (startOffset), not from Cloud Storage's own
    // page token: that keeps keys plus prefixes within maxResults and each prefix on one page on
    // every server (fake-gcs-server repeats all prefixes on every page and counts only keys).
    const token = pageToken === undefined ? undefined : decodePageToken(pageToken);
    // startOffset is where the first page starts (inclusive); a page token resumes past it.
    const after = token ?? (startOffset === undefined ? undefined : { offset: startOffset, exclusive: false });
    const isFresh = (name: string) =>
      (after === undefined || byteCompare(name, after.offset) > 0 || (!after.exclusive && name === after.offset)) && (!glob || glob.test(name));
    const entries: Array<{ name: string; isPrefix: boolean; object?: ListedObject }> = [];
    const limit = Math.min(maxResults, 1000);
    let gcsToken: string | undefined;
    do {
      const [files, , response] = await this.#withRetries("list", prefix, "idempotent", () =>
        this.#client.bucket(this.bucket).getFiles({
          prefix: this.#root + prefix,
          autoPaginate: false,
          // One more than asked: startOffset is inclusive, and a key given back is dropped.
          maxResults: Math.min(limit + 1, 1000),
          ...(delimiter === undefined ? {} : { delimiter }),
          ...(matchGlob === undefined ? {} : { matchGlob: this.#root + matchGlob }),
          ...(after === undefined ? {} : { startOffset: this.#root + after.offset }),
          ...(gcsToken === undefined ? {} : { pageToken: gcsToken }),
        }),
      );
      for (const file of files) {
        const name = file.name.slice(this.#root.length);
        // Only names this store could have written (no folder placeholders ending in "/").
        if (file.name.startsWith(this.#root) && KEY_PATTERN.test(name) && !name.endsWith("/") && isFresh(name)) {
          // The page already holds each object's resource: metadata costs no request here.
          entries.push({ name, isPrefix: false, ...(withMetadata ? { object: listedObject(name, file.metadata) } : {}) });
        }
      }
      const { prefixes, nextPageToken } = (response ?? {}) as { prefixes?: unknown; nextPageToken?: unknown };
      for (const full of Array.isArray(prefixes) ? prefixes : []) {
        const name = String(full).slice(this.#root.length);
        if (String(full).startsWith(this.#root) && isFresh(name)) entries.push({ name, isPrefix: true });
      }
      gcsToken = typeof nextPageToken === "string" && nextPageToken !== "" ? nextPageToken : undefined;
      // A server may answer a page with nothing new and a token (deleted names scanned): go on.
    } while (gcsToken !== undefined && entries.length === 0);
    entries.sort((a, b) => byteCompare(a.name, b.name));
    const page: ListPage = { keys: [], prefixes: [], ...(withMetadata ? { objects: [] } : {}) };
    const taken = entries.slice(0, limit);
    for (const entry of taken) {
      if (entry.isPrefix) page.prefixes.push(entry.name);
      else {
        page.keys.push(entry.name);
        if (entry.object) page.objects?.push(entry.object);
      }
    }
    const last = taken.at(-1);
    if (last && (gcsToken !== undefined || entries.length > limit)) page.nextPageToken = encodePageToken(last);
    return page;
  }

  #file(key: string): File {
    return this.#client.bucket(this.bucket).file(this.#root + key);
  }

  /**
   * An answer without bytes, from the object's metadata (one JSON request): for a range that
   * starts at or past the end (416) or asks for no bytes. Null when the object does not exist.
   */
  async #emptyRange(key: string, range: ByteRange): Promise<StoredObject | null> {
    let resource: File["metadata"];
    try {
      [resource] = await this.#file(key).getMetadata();
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
      await this.#checkBucket();
      return null;
    }
    const size = Number(resource.size);
    if (range.start > size) throw rangeBeyondEnd(key, range, size);
    return { bytes: new Uint8Array(0), generation: parseGeneration(resource.generation, key), metadata: callerMetadata(resource.metadata) };
  }

  #objectUrl(key: string): string {
    return `gs://${this.bucket}/${this.#root}${key}`;
  }

  /** The object's current generation if the put with `writeId` wrote it, else null. */
  async #generationIfWrittenBy(file: File, key: string, writeId: string): Promise<Generation | null> {
    const metadata = await this.#metadata(file, key);
    if (metadata?.metadata?.[WRITE_ID] !== writeId) return null;
    return parseGeneration(metadata.generation, key);
  }

  async #metadata(file: File, key: string): Promise<File["metadata"] | null> {
    return this.#withRetries("get metadata", key, "idempotent", async () => {
      try {
        const [metadata] = await file.getMetadata();
        return metadata;
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
        await this.#checkBucket();
        return null;
      }
    });
  }

  /** A 404 from an object call may mean the bucket is missing: find out once per store. */
  #checkBucket(): Promise<void> {
    this.#bucketChecked ??= this.#withRetries("list", "", "idempotent", async () => {
      await this.#client.bucket(this.bucket).getFiles({ prefix: this.#root, maxResults: 1, autoPaginate: false });
    }).catch((error: unknown) => {
      this.#bucketChecked = undefined;
      throw error;
    });
    return this.#bucketChecked;
  }

  /**
   * `call` under retry.ts's loop. Each attempt has `requestTimeoutMs` to answer, enforced there:
   * since @google-cloud/storage 8 the client's own `timeout` reaches node-fetch 3, which dropped
   * that option, so a request without an answer would otherwise wait forever
   * (googleapis/google-cloud-node#7998). The client gives no way to abort a JSON-API request, so
   * a timed-out attempt is abandoned (a download is destroyed). `ambiguous`: an earlier attempt
   * may have been applied unseen.
   */
  #withRetries<T>(op: string, key: string, mode: RetryMode, call: (signal: AbortSignal, ambiguous: boolean) => Promise<T>): Promise<T> {
    return retrying(this.#retry, mode, call, (error, attempts) => this.#explain(error, op, key, attempts, mode));
  }

  /** A final error as callers should see it: typed, naming the object and how to fix it. */
  #explain(error: unknown, op: string, key: string, attempts: number, mode: RetryMode): unknown {
    if (error instanceof ShardrunError || error instanceof TypeError || error instanceof RangeError) return error;
    const where = op === "list" ? `gs://${this.bucket}/${this.#root}${key}*` : this.#objectUrl(key);
    const status = statusOf(error);
    const detail = describe(error);
    if (status === 401 || status === 403) {
      return new UsageError(
        `${op} ${where}: permission denied (${detail}). The account needs ${ROLE} on bucket "${this.bucket}": ` +
          `gcloud storage buckets add-iam-policy-binding gs://${this.bucket} --member=serviceAccount:ACCOUNT --role=${ROLE}`,
        { cause: error },
      );
    }
    if (status === 404) {
      return new UsageError(
        `bucket "${this.bucket}" does not exist or this account cannot see it: create it with ` +
          `\`gcloud storage buckets create gs://${this.bucket}\` and grant the job's service account ${ROLE} on it`,
        { cause: error },
      );
    }
    const why = retryNote(error, mode, attempts);
    return new ShardrunError("INTERNAL", `${op} ${where} failed${why}: ${detail}`, { cause: error });
  }
}

let streamWarningsDropped = false;

/**
 * @google-cloud/storage 8 streams downloads through teeny-request 11, which adds a pipeline's
 * listeners to its response PassThrough as a download is read in many chunks; past ten, Node
 * prints a MaxListenersExceededWarning on stderr (googleapis/google-cloud-node#9185, open). It is
 * not ours to fix and tells a user nothing, so that one warning is dropped; every other warning
 * goes to the listeners that were there (Node's own printer among them).
 */
function dropLibraryStreamWarnings(): void {
  if (streamWarningsDropped) return;
  streamWarningsDropped = true;
  const listeners = process.listeners("warning");
  process.removeAllListeners("warning");
  process.on("warning", (warning) => {
    if (warning.name === "MaxListenersExceededWarning" && /\[PassThrough\]/.test(warning.message)) return;
    for (const listener of listeners) listener.call(process, warning);
  });
}

/** The server's own words: ApiError wraps several in "Multiple errors occurred…" and a list. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const lines = error.message.split("\n").map((line) => line.trim());
  if (!lines[0]?.startsWith("Multiple errors occurred")) return lines[0] ?? "";
  const parts = lines.flatMap((line) => /^\d+\. (.+)$/.exec(line)?.[1] ?? []).filter((p) => p !== "undefined");
  return [...new Set(parts)].join("; ") || lines[0];
}

/** The generation as the exact decimal string the server sent. */
function parseGeneration(value: unknown, key: string): Generation {
  const text = typeof value === "string" ? value : typeof value === "number" && Number.isSafeInteger(value) ? String(value) : "";
  if (!GENERATION.test(text)) throw new ShardrunError("INTERNAL", `${key}: Cloud Storage answered without a valid generation (${String(value)})`);
  return text;
}

function parseMatch(match: Generation | 0 | undefined): string | undefined {
  if (match === undefined) return undefined;
  const text = String(match);
  if (text === CREATE_ONLY || GENERATION.test(text)) return text;
  throw new TypeError(`Expected \`ifGenerationMatch\` to be a decimal generation string or 0, got ${JSON.stringify(match)}`);
}

/**
 * One GET of the media, whole or a range; the generation and the metadata come from the same
 * response as the bytes. A whole download is checked by the library against the object's
 * hashes; a range cannot be, so its Content-Range and length are checked against what was asked.
 */
function download(file: File, signal: AbortSignal, range?: ByteRange): Promise<StoredObject> {
  return new Promise((resolve, reject) => {
    let headers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    const stream = file.createReadStream(range ? { start: range.start, ...(range.end === undefined ? {} : { end: range.end - 1 }) } : {});
    // Frees the connection of a download abandoned at its deadline.
    signal.addEventListener("abort", () => stream.destroy(signal.reason as Error), { once: true });
    stream
      .on("response", (response: { headers?: Record<string, unknown>; toJSON?: () => { headers?: Record<string, unknown> } }) => {
        headers = response.toJSON?.().headers ?? response.headers ?? {};
      })
      .on("data", (chunk: Buffer) => chunks.push(chunk))
      .on("error", reject)
      .on("end", () => {
        try {
          const generation = parseGeneration(headers["x-goog-generation"], file.name);
          const metadata: ObjectMetadata = {};
          for (const [name, value] of Object.entries(headers)) {
            if (name.startsWith(META_HEADER) && typeof value === "string") metadata[name.slice(META_HEADER.length)] = value;
          }
          const body = Buffer.concat(chunks);
          const bytes = range ? checkedRange(file.name, range, headers, body) : body;
          resolve({ bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), generation, metadata: callerMetadata(metadata) });
        } catch (error) {
          reject(error);
        }
      });
  });
}

/**
 * The bytes of a ranged download, checked: a 206 must say (Content-Range) that it holds exactly
 * the bytes asked for, clipped to the object's size; a server that ignored the Range and sent
 * the whole object (200) is cut here. Anything else is a download mismatch, retried.
 */
function checkedRange(name: string, range: ByteRange, headers: Record<string, unknown>, body: Buffer): Buffer {
  const mismatch = (why: string) => Object.assign(new Error(`${name}: ranged download ${why}`), { code: "CONTENT_DOWNLOAD_MISMATCH" });
  if (headers["x-goog-stored-content-encoding"] !== undefined && headers["x-goog-stored-content-encoding"] !== "identity") {
    throw new ShardrunError("INTERNAL", `${name} is stored with content encoding ${String(headers["x-goog-stored-content-encoding"])}: byte ranges of it are not its bytes`);
  }
  const contentRange = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(headers["content-range"] ?? ""));
  if (!contentRange) {
    const size = Number(headers["x-goog-stored-content-length"]);
    if (body.length !== size) throw mismatch(`answered ${body.length} bytes without a Content-Range for an object of ${size}`);
    return body.subarray(range.start, range.end ?? body.length);
  }
  const [first, last, size] = contentRange.slice(1).map(Number) as [number, number, number];
  const end = Math.min(range.end ?? size, size);
  if (first !== range.start || last !== end - 1 || body.length !== end - range.start) {
    throw mismatch(`answered ${contentRange[0]} with ${body.length} bytes for [${range.start}, ${range.end ?? "end"})`);
  }
  return body;
}

/** The callers' part of an object's custom metadata: our write id and foreign keys left out. */
function callerMetadata(raw: unknown): ObjectMetadata {
  const out: ObjectMetadata = {};
  if (typeof raw !== "object" || raw === null) return out;
  for (const [key, value] of Object.entries(raw)) {
    if (METADATA_KEY_PATTERN.test(key) && !key.startsWith(RESERVED_METADATA_PREFIX) && typeof value === "string") out[key] = value;
  }
  return out;
}

/** A list entry from the object resource that objects.list returned with it. */
function listedObject(key: string, resource: File["metadata"]): ListedObject {
  const updated = Date.parse(String(resource.updated ?? ""));
  return {
    key,
    generation: parseGeneration(resource.generation, key),
    size: Number(resource.size ?? 0),
    metadata: callerMetadata(resource.metadata),
    updated: Number.isFinite(updated) ? updated : 0,
  };
}

/**
 * Where the next page starts: past a key ("k": startOffset is inclusive, so the key itself is
 * dropped) or past everything below a prefix ("p": its last character bumped).
 */
function encodePageToken(last: { name: string; isPrefix: boolean }): string {
  const { name, isPrefix } = last;
  const offset = isPrefix ? name.slice(0, -1) + String.fromCharCode(name.charCodeAt(name.length - 1) + 1) : name;
  return (isPrefix ? "p" : "k") + Buffer.from(offset, "utf8").toString("base64url");
}

function decodePageToken(token: string): { offset: string; exclusive: boolean } {
  const offset = Buffer.from(token.slice(1), "base64url").toString("utf8");
  if (!/^[kp]./.test(token) || Buffer.from(offset, "utf8").toString("base64url") !== token.slice(1)) {
    throw new TypeError(`Expected \`pageToken\` from a previous page's nextPageToken, got ${JSON.stringify(token)}`);
  }
  return { offset, exclusive: token.startsWith("k") };
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
