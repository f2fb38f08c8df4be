/**
 * The offline corpus: every Markdown file under the repository's `node_modules` (found the way
 * summarize-docs finds it), cut into passages and indexed once per task process. A cold build
 * reads and indexes a few MB of text; the serialized index is cached in the OS temp folder under
 * a fingerprint of the corpus (paths, sizes, mtimes) and of the code that cuts and indexes it, so
 * the next task on the same machine loads it instead. A stale or unreadable cache is rebuilt,
 * never trusted.
 */
import { createHash } from "node:crypto";
import { readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import MiniSearch from "minisearch";
import { NonRetriableError } from "../../src/index.js";
import { markdownFiles } from "../summarize-docs/index.js";
import { chunkMarkdown, documentTitle, packageOf, type ChunkOptions, type Passage } from "./chunk.js";
import { INDEX_OPTIONS, createIndex, toIndexed, type Hit, type IndexedPassage, type PassageIndex } from "./search.js";

/**
 * Modules whose code decides what the index holds: chunking, Markdown cleaning, tokenizing,
 * stored fields. Their bytes are part of the fingerprint, so any change to them misses old caches
 * without anyone remembering to bump a version.
 */
const INDEXING_CODE = ["./chunk", "./search", "./corpus", "../summarize-docs/text"];
let codeDigest: Promise<string> | undefined;

function indexingCodeDigest(): Promise<string> {
  // .ts in a checkout (the run's bundle names its modules there), .js when compiled: hash whichever this module is.
  const ext = path.extname(fileURLToPath(import.meta.url));
  const files = Promise.all(INDEXING_CODE.map((m) => readFile(new URL(`${m}${ext}`, import.meta.url))));
  // A bundle built elsewhere runs where these files are not (a Cloud Run task): hash the indexing
  // code as it runs instead.
  const running = () => [chunkMarkdown, createIndex, toIndexed, markdownFiles].map((f) => Buffer.from(String(f))).concat(Buffer.from(JSON.stringify(INDEX_OPTIONS)));
  return (codeDigest ??= files.catch(running).then((parts) => {
    const h = createHash("sha256");
    for (const f of parts) h.update(f);
    return h.digest("hex");
  }));
}

/** Chunking of the corpus; the read step must cut documents the same way as the index did. */
export const CORPUS_CHUNKING = { maxWords: 160, minWords: 8 } as const satisfies ChunkOptions;

export interface CorpusFile {
  path: string;
  bytes: number;
  mtimeMs: number;
}

export interface CorpusIndex {
  root: string;
  index: PassageIndex;
  documents: number;
  passages: number;
  fingerprint: string;
  /** "cache": loaded from the temp folder; "built": indexed from the files now. */
  source: "cache" | "built";
  ms: number;
}

/** Markdown files under `root`, sorted, with what the fingerprint needs. */
export async function corpusFiles(root: string, signal?: AbortSignal): Promise<CorpusFile[]> {
  const info = await stat(root).catch(() => null);
  if (!info?.isDirectory()) throw new NonRetriableError(`research-sweep: corpus root ${root} is not a directory (pass --arg root=<folder of Markdown files>)`);
  const files: CorpusFile[] = [];
  for await (const doc of markdownFiles(root, signal)) {
    const s = await stat(path.join(root, doc.path));
    files.push({ path: doc.path, bytes: s.size, mtimeMs: Math.trunc(s.mtimeMs) });
  }
  return files;
}

/** Changes whenever a file is added, removed or rewritten, or the indexing code (`code`) changes. */
export function fingerprint(root: string, files: readonly CorpusFile[], code: string): string {
  const h = createHash("sha256").update(`${code}\n${root}\n`);
  for (const f of files) h.update(`${f.path}\u0000${f.bytes}\u0000${f.mtimeMs}\n`);
  return h.digest("hex");
}

function cacheFile(fp: string, cacheDir: string): string {
  return path.join(cacheDir, `shardrun-research-index-${fp.slice(0, 24)}.json`);
}

/** Reads one corpus document, refusing paths that would leave the root. */
export async function readDocument(root: string, relPath: string, signal?: AbortSignal): Promise<string> {
  const file = path.resolve(root, ...relPath.split("/"));
  const rel = path.relative(root, file);
  if (rel === "" || rel.startsWith("..") || path.isAbsolute(rel)) throw new NonRetriableError(`research-sweep: ${JSON.stringify(relPath)} is not inside ${root}`);
  return readFile(file, { encoding: "utf8", ...(signal ? { signal } : {}) });
}

/**
 * Indexes every file, one document at a time with a turn of the event loop between them. Other
 * items of the task are making model calls meanwhile: a second-long synchronous build would hold
 * their requests back after the rate limiter admitted them, and they would reach the provider
 * bunched together (more per second than the limit), besides stalling lease renewals.
 */
export async function indexFiles(root: string, files: readonly CorpusFile[], signal?: AbortSignal): Promise<{ index: PassageIndex; passages: number }> {
  const index = createIndex();
  let passages = 0;
  for (const f of files) {
    signal?.throwIfAborted();
    const md = await readDocument(root, f.path);
    const entries: IndexedPassage[] = toIndexed(f.path, documentTitle(md, f.path), packageOf(f.path), chunkMarkdown(md, CORPUS_CHUNKING), passages);
    index.addAll(entries);
    passages += entries.length;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { index, passages };
}

export interface LoadIndexOptions {
  signal?: AbortSignal;
  /** Where the serialized index is cached; `null` turns the cache off. @default os.tmpdir() */
  cacheDir?: string | null;
  /** Told when the cache cannot be read or written (the index is still returned). */
  onCacheError?: (message: string) => void;
}

/** Builds (or loads from the temp-folder cache) the index of the corpus under `root`. */
export async function loadCorpusIndex(root: string, options: LoadIndexOptions = {}): Promise<CorpusIndex> {
  const started = performance.now();
  const { signal, cacheDir = tmpdir(), onCacheError = () => {} } = options;
  const files = await corpusFiles(root, signal);
  const fp = fingerprint(root, files, await indexingCodeDigest());
  const done = (index: PassageIndex, passages: number, source: CorpusIndex["source"]): CorpusIndex => ({
    root,
    index,
    documents: files.length,
    passages,
    fingerprint: fp,
    source,
    ms: Math.round(performance.now() - started),
  });
  const cached = cacheDir === null ? null : cacheFile(fp, cacheDir);
  if (cached) {
    const json = await readFile(cached, "utf8").catch(() => null);
    if (json !== null) {
      try {
        // The async loader works in batches, for the same reason indexFiles yields.
        const index = await MiniSearch.loadJSONAsync<IndexedPassage>(json, INDEX_OPTIONS);
        return done(index, index.documentCount, "cache");
      } catch (e) {
        onCacheError(`index cache ${cached} is unreadable, rebuilding: ${String(e)}`);
      }
    }
  }
  const { index, passages } = await indexFiles(root, files, signal);
  if (cached) {
    // Write then rename: tasks starting side by side never read a half-written cache.
    const tmp = `${cached}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(index));
      await rename(tmp, cached);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      onCacheError(`could not write the index cache ${cached}: ${String(e)}`);
    }
  }
  return done(index, passages, "built");
}

/** A passage read back for the answer prompt. */
export interface Source {
  /** The citation number the model sees: `[n]`. */
  n: number;
  path: string;
  title: string;
  heading: string;
  text: string;
}

/**
 * Reads the hits' passages from their documents, numbered from 1 in hit order. A document that
 * changed since it was indexed (its passage is gone, or sits under another heading) is skipped:
 * quoting the wrong text under a citation is worse than one source fewer.
 */
export async function readPassages(root: string, hits: readonly Hit[], maxChars: number, signal?: AbortSignal): Promise<{ sources: Source[]; skipped: string[] }> {
  const docs = new Map<string, Passage[]>();
  const sources: Source[] = [];
  const skipped: string[] = [];
  for (const hit of hits) {
    let passages = docs.get(hit.path);
    if (!passages) {
      const md = await readDocument(root, hit.path, signal).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw e;
      });
      passages = md === null ? [] : chunkMarkdown(md, CORPUS_CHUNKING);
      docs.set(hit.path, passages);
    }
    const p = passages[hit.ordinal];
    if (!p || p.trail.join(" › ") !== hit.heading) {
      skipped.push(`${hit.path}#${hit.ordinal}`);
      continue;
    }
    sources.push({ n: sources.length + 1, path: hit.path, title: hit.title, heading: hit.heading, text: clip(p.text, maxChars) });
  }
  return { sources, skipped };
}

/** Cuts text to `max` characters at a line or word end. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max);
  const at = Math.max(cut.lastIndexOf("\n"), cut.lastIndexOf(" "));
  return `${(at > max / 2 ? cut.slice(0, at) : cut).trimEnd()} …`;
}
