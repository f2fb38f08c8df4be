/**
 * The full-text index over passages (minisearch, BM25+) and the retrieval of a question's
 * passages from its planned sub-queries. Pure: no files here (corpus.ts reads and caches).
 */
import { createHash } from "node:crypto";
import MiniSearch, { type Options } from "minisearch";
import { STOPWORDS, tokenize } from "../summarize-docs/text.js";
import type { Passage } from "./chunk.js";

/** One indexed passage. Numeric ids keep the serialized index small. */
export interface IndexedPassage {
  id: number;
  /** Document path relative to the corpus root, `/` separators. */
  path: string;
  /** The document's title. */
  title: string;
  /** Section trail joined with " › ". */
  heading: string;
  /** Package the document belongs to (a strong signal: questions name packages). */
  pkg: string;
  ordinal: number;
  /** Hash of the text: the same passage in two installed copies of a package is returned once. */
  digest: string;
  text: string;
}

export interface Hit {
  path: string;
  title: string;
  heading: string;
  ordinal: number;
  /** Fused score over the sub-queries (each query's best passage counts 1). */
  score: number;
}

/** Light plural folding, the same for documents and queries, so "limits" finds "limit". */
export function normalizeTerm(term: string): string | null {
  const t = term.toLowerCase().replace(/'s$/, "");
  if (t.length < 2 || STOPWORDS.has(t) || /^\d$/.test(t)) return null;
  if (t.length > 4 && t.endsWith("ies")) return `${t.slice(0, -3)}y`;
  if (t.length > 3 && t.endsWith("s") && !/(?:ss|us|is)$/.test(t)) return t.slice(0, -1);
  return t;
}

/**
 * Words of a text; compounds (`p-limit`, `index.js`, `safe_parse`) also give their parts, so a
 * question about "p-limit" matches the token itself and a text about "limit" still counts.
 */
export function terms(text: string): string[] {
  const out: string[] = [];
  for (const token of tokenize(text)) {
    out.push(token);
    if (/[._-]/.test(token)) for (const part of token.split(/[._-]+/)) if (part.length > 1) out.push(part);
  }
  return out;
}

/** Field weights: a passage of the package the question names, or under a matching heading, wins. */
export const BOOST = { pkg: 3, title: 2, heading: 2, text: 1 } as const;

/**
 * Weight of a whole document: change logs and licences match many words (every release "adds",
 * "fixes", "returns") but rarely explain how a thing works.
 */
export function documentWeight(path: string): number {
  const file = path.slice(path.lastIndexOf("/") + 1);
  if (/^(?:licen[cs]e|copying)/i.test(file)) return 0.2;
  if (/^(?:changelog|changes|history|releases?|upgrad|migrat)/i.test(file)) return 0.5;
  return 1;
}

/** The options the index is built and loaded with (loadJSON needs the very same). */
export const INDEX_OPTIONS: Options<IndexedPassage> = {
  fields: ["text", "heading", "title", "pkg"],
  storeFields: ["path", "title", "heading", "ordinal", "digest"],
  tokenize: (text) => terms(text),
  processTerm: (term) => normalizeTerm(term),
  searchOptions: {
    boost: { ...BOOST },
    combineWith: "OR",
    boostDocument: (_id, _term, stored) => documentWeight(String(stored?.["path"] ?? "")),
  },
};

export type PassageIndex = MiniSearch<IndexedPassage>;

/** An empty index with the job's options. */
export function createIndex(): PassageIndex {
  return new MiniSearch<IndexedPassage>(INDEX_OPTIONS);
}

/** Flattens a document's passages into index entries, ids from `firstId` on. */
export function toIndexed(path: string, title: string, pkg: string, passages: readonly Passage[], firstId: number): IndexedPassage[] {
  return passages.map((p, k) => ({
    id: firstId + k,
    path,
    title,
    heading: p.trail.join(" › "),
    pkg,
    ordinal: p.ordinal,
    digest: createHash("sha1").update(p.text.replace(/\s+/g, " ").trim().toLowerCase()).digest("hex").slice(0, 16),
    text: p.text,
  }));
}

/** An index over `passages`, added in the order given (ids must be unique). */
export function buildIndex(passages: readonly IndexedPassage[]): PassageIndex {
  const index = createIndex();
  index.addAll(passages);
  return index;
}

export interface SearchOptions {
  /**
   * Passages returned.
   * @default 5
   */
  k?: number;
  /**
   * At most this many passages of one document, so one long README does not crowd out the rest.
   * @default 2
   */
  perDocument?: number;
  /**
   * Results read per sub-query before fusion.
   * @default 25
   */
  depth?: number;
}

/**
 * The top passages for a set of sub-queries: each query is searched on its own (BM25, any term
 * may match), its scores are divided by its best score, and a passage's fused score is the sum
 * over queries (CombSUM, Fox & Shaw 1994). Normalizing keeps a vague query from outvoting a
 * precise one, and summing rewards passages that several queries agree on. Ties are broken by
 * id, so the result is the same on every machine. Exact copies of a passage (two installed
 * versions of one package) are returned once.
 */
export function searchPassages(index: PassageIndex, queries: readonly string[], options: SearchOptions = {}): Hit[] {
  const { k = 5, perDocument = 2, depth = 25 } = options;
  const fused = new Map<number, { score: number; digest: string; hit: Omit<Hit, "score"> }>();
  for (const query of queries) {
    if (query.trim() === "") continue;
    const results = index.search(query).slice(0, depth);
    const top = results[0]?.score ?? 0;
    if (!(top > 0)) continue;
    for (const r of results) {
      const id = r.id as number;
      const entry = fused.get(id) ?? {
        score: 0,
        digest: r["digest"] as string,
        hit: { path: r["path"] as string, title: r["title"] as string, heading: r["heading"] as string, ordinal: r["ordinal"] as number },
      };
      entry.score += r.score / top;
      fused.set(id, entry);
    }
  }
  const ranked = [...fused.entries()].sort(([ia, a], [ib, b]) => b.score - a.score || ia - ib);
  const perDoc = new Map<string, number>();
  const digests = new Set<string>();
  const hits: Hit[] = [];
  for (const [, { score, digest, hit }] of ranked) {
    if (hits.length >= k) break;
    const used = perDoc.get(hit.path) ?? 0;
    if (used >= perDocument || digests.has(digest)) continue;
    perDoc.set(hit.path, used + 1);
    digests.add(digest);
    hits.push({ ...hit, score: Math.round(score * 1e4) / 1e4 });
  }
  return hits;
}
