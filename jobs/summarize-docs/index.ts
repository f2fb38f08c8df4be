/**
 * summarize-docs: extractive summaries and keywords of every Markdown file shipped inside the
 * installed packages. The corpus is real, written by strangers, and present on every machine after
 * `npm ci`, so the job runs end to end with no network and no fixtures.
 */
import type { Dirent } from "node:fs";
import { readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { defineJob, NonRetriableError } from "../../src/index.js";
import { extractTitle, keywords, markdownToText, splitSentences, summarize, tokenize } from "./text.js";

const MARKDOWN = /\.(?:md|markdown)$/i;
// Executables' shims and tool caches: nobody's documentation, and `.bin` is all symlinks anyway.
const SKIPPED_DIRS = new Set([".bin", ".cache"]);

export const SummarizeDocsArgs = z.object({
  /** Folder to scan, absolute or relative to the current directory. @default the repository's node_modules */
  root: z.string().optional(),
  /** Stop after this many documents. @default no limit */
  limit: z.coerce.number().int().positive().optional(),
});
export type SummarizeDocsArgs = z.infer<typeof SummarizeDocsArgs>;

export const DocItem = z.object({
  /** Absolute root the path is relative to, fixed at plan time so every item stands alone. */
  root: z.string(),
  /** Path relative to `root`, with `/` separators. */
  path: z.string(),
  bytes: z.number().int().nonnegative(),
});
export type DocItem = z.infer<typeof DocItem>;

export interface DocSummary {
  path: string;
  title: string;
  summary: string[];
  keywords: string[];
  bytes: number;
  chars: number;
  words: number;
  sentences: number;
}

/**
 * The `node_modules` of the shardrun checkout this file belongs to. Found by walking up rather than
 * by a fixed `../..`, because the same code runs from `jobs/` (source) and `dist/jobs/` (compiled).
 */
export async function defaultRoot(from: string = fileURLToPath(import.meta.url)): Promise<string> {
  for (let dir = path.dirname(from); ; dir = path.dirname(dir)) {
    const name = await readFile(path.join(dir, "package.json"), "utf8").then(
      (text) => (JSON.parse(text) as { name?: unknown }).name,
      () => undefined,
    );
    if (name === "shardrun") return path.join(dir, "node_modules");
    if (path.dirname(dir) === dir) {
      throw new Error(`summarize-docs: no shardrun package.json above ${from}; pass --arg root=<folder> to choose the documents`);
    }
  }
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Markdown files under `root`, depth first. Siblings are sorted by name with a `/` appended to
 * directories, which makes depth-first order equal to the sorted order of the full relative paths
 * without collecting them all. Symlinks are never followed: they can lead outside `root`, and in
 * pnpm layouts they would list every package twice.
 */
export async function* markdownFiles(root: string, signal?: AbortSignal): AsyncGenerator<DocItem> {
  async function* walk(rel: string): AsyncGenerator<DocItem> {
    signal?.throwIfAborted();
    const entries: Dirent[] = await readdir(path.join(root, rel), { withFileTypes: true });
    const sorted = entries
      .filter((e) => (e.isDirectory() && !SKIPPED_DIRS.has(e.name)) || (e.isFile() && MARKDOWN.test(e.name)))
      .map((e) => ({ entry: e, sortKey: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => byCodeUnit(a.sortKey, b.sortKey));
    for (const { entry } of sorted) {
      const child = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) yield* walk(child);
      else yield { root, path: child, bytes: (await stat(path.join(root, child))).size };
    }
  }
  yield* walk("");
}

export default defineJob({
  name: "summarize-docs",
  description:
    "Extractive summary (TextRank) and keywords (RAKE) of every Markdown file inside the installed packages (node_modules)",
  args: SummarizeDocsArgs,
  item: DocItem,
  async *source(args, ctx) {
    const root = args.root === undefined ? await defaultRoot() : path.resolve(args.root);
    const info = await stat(root).catch(() => null);
    if (!info?.isDirectory()) throw new Error(`summarize-docs: root ${root} is not a directory`);
    let count = 0;
    for await (const item of markdownFiles(root, ctx.signal)) {
      if (args.limit !== undefined && count >= args.limit) return;
      count++;
      yield item;
    }
  },
  key: (item) => item.path,
  weight: (item) => Math.max(1, item.bytes),
  shard: { weightPerShard: 64 * 1024 },
  concurrency: 4,
  // Every night at 02:00 UTC: `shardrun serve` fires it, `shardrun schedules sync` puts it on Cloud Scheduler.
  schedules: [{ name: "summarize-docs-nightly", cron: "0 2 * * *", timeZone: "Etc/UTC", description: "every document, nightly" }],
  async run(item, ctx): Promise<DocSummary> {
    const file = path.resolve(item.root, ...item.path.split("/"));
    const rel = path.relative(item.root, file);
    if (rel === "" || rel === ".." || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
      throw new NonRetriableError(`summarize-docs: item path ${JSON.stringify(item.path)} is not inside ${item.root}`);
    }
    // A missing file throws ENOENT here on purpose: the runtime retries, then records the failure.
    const bytes = await readFile(file, { signal: ctx.signal });
    const md = bytes.toString("utf8");
    const text = markdownToText(md);
    return {
      path: item.path,
      title: extractTitle(md, item.path),
      summary: summarize(text, 3),
      keywords: keywords(text, 8),
      bytes: bytes.length,
      chars: text.length,
      words: tokenize(text).length,
      sentences: splitSentences(text).length,
    };
  },
});
