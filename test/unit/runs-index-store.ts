/**
 * An ObjectStore in memory with the port's coming custom metadata (branch `store`): `put` takes
 * `metadata`, `list` with `withMetadata` returns `objects`. For tests that need many objects
 * fast and count requests. It refuses what Cloud Storage refuses of metadata (key names, 8 KiB),
 * keeps generations and preconditions, and pages lists by 1,000.
 */
import { PreconditionFailed } from "../../src/core/errors.js";
import { assertKey, type DeleteOptions, type Generation, type ListOptions, type ListPage, type ObjectStore, type PutOptions, type StoredObject } from "../../src/store/port.js";

interface Entry {
  bytes: Uint8Array;
  generation: number;
  metadata: Record<string, string>;
}

const META_KEY = /^[a-z0-9_-]{1,64}$/;

export class MemoryStore implements ObjectStore {
  readonly url = "mem://test";
  readonly limits = { objectWriteGapMs: 0, writesPerSecond: Number.POSITIVE_INFINITY, readsPerSecond: Number.POSITIVE_INFINITY };
  readonly #objects = new Map<string, Entry>();
  #generation = 0;
  readonly calls = { get: 0, put: 0, list: 0, delete: 0 };
  /** false: behave like a store without listed metadata (put ignores it, list returns none). */
  readonly #metadata: boolean;

  constructor(o: { metadata?: boolean } = {}) {
    this.#metadata = o.metadata ?? true;
  }

  async get(key: string): Promise<(StoredObject & { metadata: Record<string, string> }) | null> {
    this.calls.get++;
    assertKey(key);
    const e = this.#objects.get(key);
    return e ? { bytes: e.bytes, generation: String(e.generation), metadata: { ...e.metadata } } : null;
  }

  async put(key: string, bytes: Uint8Array | string, options: PutOptions & { metadata?: Record<string, string> } = {}): Promise<Generation> {
    this.calls.put++;
    assertKey(key);
    const metadata = options.metadata ?? {};
    let size = 0;
    for (const [k, v] of Object.entries(metadata)) {
      if (!META_KEY.test(k)) throw new TypeError(`Expected metadata keys of a-z 0-9 _ -, got ${JSON.stringify(k)}`);
      if (typeof v !== "string") throw new TypeError(`Expected metadata value of ${k} to be a string`);
      size += k.length + Buffer.byteLength(v);
    }
    if (size > 8192) throw new TypeError(`Expected metadata of at most 8 KiB, got ${size} bytes`);
    const current = this.#objects.get(key);
    const match = options.ifGenerationMatch;
    if (match !== undefined) {
      const expected = String(match);
      if (expected === "0" ? current !== undefined : String(current?.generation) !== expected) throw new PreconditionFailed(key, expected);
    }
    const generation = ++this.#generation;
    this.#objects.set(key, { bytes: typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes.slice(), generation, metadata: this.#metadata ? { ...metadata } : {} });
    return String(generation);
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<boolean> {
    this.calls.delete++;
    const current = this.#objects.get(key);
    if (options.ifGenerationMatch !== undefined && String(current?.generation) !== options.ifGenerationMatch) throw new PreconditionFailed(key, options.ifGenerationMatch);
    return this.#objects.delete(key);
  }

  async list(prefix: string, options: ListOptions & { withMetadata?: boolean } = {}): Promise<ListPage & { objects?: { key: string; generation: string; size: number; metadata: Record<string, string> }[] }> {
    this.calls.list++;
    const max = options.maxResults ?? 1000;
    const names = new Set<string>();
    for (const key of this.#objects.keys()) {
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      const cut = options.delimiter ? rest.indexOf(options.delimiter) : -1;
      names.add(cut >= 0 ? prefix + rest.slice(0, cut + 1) : key);
    }
    const sorted = [...names].sort().filter((n) => !options.pageToken || n > options.pageToken);
    const page = sorted.slice(0, max);
    const keys = page.filter((n) => this.#objects.has(n) && !(options.delimiter && n.endsWith(options.delimiter)));
    const prefixes = page.filter((n) => options.delimiter && n.endsWith(options.delimiter));
    const out: ListPage = { keys, prefixes };
    if (sorted.length > max) out.nextPageToken = page[page.length - 1]!;
    if (options.withMetadata && this.#metadata) {
      out.objects = keys.map((k) => {
        const e = this.#objects.get(k)!;
        return { key: k, generation: String(e.generation), size: e.bytes.byteLength, metadata: { ...e.metadata }, updated: 0 };
      });
    }
    return out;
  }

  resetCalls(): void {
    this.calls.get = this.calls.put = this.calls.list = this.calls.delete = 0;
  }
}
