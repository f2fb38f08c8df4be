/**
 * The two model calls of a question and the reading of their answers. Prompts follow the local
 * model's conventions (a `task:` line in the system message, documents as `[n]` blocks, a
 * `Question:` line; see src/model/local.ts) and are plain instructions to a real model too, so
 * the same job runs on either. Pure.
 */
import type { ChatRequest } from "../../src/model/index.js";
import { splitSentences } from "../summarize-docs/text.js";
import type { Source } from "./corpus.js";
import { terms } from "./search.js";

export interface Citation {
  /** The number the answer cites: `[n]`. */
  n: number;
  path: string;
  /** "Document title › section". */
  title: string;
  /** The passage text that backs the claim citing it. */
  snippet: string;
}

/** Sub-queries kept from a plan; the rest would only dilute the fused ranking. */
export const MAX_QUERIES = 4;

export function planRequest(question: string): ChatRequest {
  return {
    messages: [
      {
        role: "system",
        content: [
          "You plan keyword searches over a local library of software documentation (the README files of npm packages).",
          "task: plan",
          `Reply with a JSON object {"queries": [...]} holding 1 to ${MAX_QUERIES - 1} short keyword queries that together find the passages that answer the question. Name the package in a query when the question names one.`,
        ].join("\n"),
      },
      { role: "user", content: `Question: ${oneLine(question)}` },
    ],
    json: true,
    maxTokens: 200,
    temperature: 0,
  };
}

/**
 * Queries of a plan answer: `{"queries": [...]}` (possibly inside a ```json fence), a bare JSON
 * array, or one query a line. Deduplicated, at most MAX_QUERIES; the question itself when the
 * plan gives nothing usable, so a bad plan costs quality, not the item.
 */
export function parsePlan(text: string, question: string): string[] {
  const body = text.trim().replace(/^```(?:json)?\s*|\s*```$/g, "");
  let candidates: unknown[] = [];
  try {
    const parsed: unknown = JSON.parse(body);
    const list = Array.isArray(parsed) ? parsed : (parsed as { queries?: unknown } | null)?.queries;
    if (Array.isArray(list)) candidates = list;
  } catch {
    candidates = body.split(/\r?\n/).map((l) => l.replace(/^\s*(?:[-*•]|\d+[.)])\s*/, ""));
  }
  const seen = new Set<string>();
  const queries: string[] = [];
  for (const c of candidates) {
    if (typeof c !== "string") continue;
    const q = oneLine(c).replace(/^["']|["']$/g, "").slice(0, 200).trim();
    if (q === "" || seen.has(q.toLowerCase())) continue;
    seen.add(q.toLowerCase());
    queries.push(q);
    if (queries.length === MAX_QUERIES) break;
  }
  return queries.length > 0 ? queries : [oneLine(question)];
}

/** "Title › section", without repeating a title that is also the first heading. */
export function sourceTitle(source: Pick<Source, "title" | "heading">): string {
  const trail = source.heading.split(" › ").filter(Boolean);
  if (trail[0] === source.title) trail.shift();
  return [source.title, ...trail].join(" › ");
}

/**
 * Lines that would read as prompt structure (`[3] …` opens a document, `Question:` the question)
 * are defused, so a passage can never forge a document or replace the question.
 */
function defuse(text: string): string {
  return text
    .split("\n")
    .map((l) => l.replace(/^(\s*)\[(\d+)\]/, "$1($2)").replace(/^(\s*)(question:)/i, "$1– $2"))
    .join("\n");
}

export function answerRequest(question: string, sources: readonly Source[]): ChatRequest {
  // Units (paragraphs, list items, rows) are set apart by blank lines: an extractive model quotes
  // whole units instead of running a heading into the sentence after it.
  const documents = sources.map((s) => `[${s.n}] ${oneLine(sourceTitle(s)) || s.path}\n${defuse(s.text).split("\n").join("\n\n")}`).join("\n\n");
  return {
    messages: [
      {
        role: "system",
        content: [
          "You answer questions about software libraries using only the numbered documentation passages you are given.",
          "task: answer",
          "Cite every claim with the number of its passage in square brackets, like [2]. If the passages do not answer the question, say so. Be brief.",
        ].join("\n"),
      },
      { role: "user", content: `${documents}\n\nQuestion: ${oneLine(question)}` },
    ],
    maxTokens: 600,
    temperature: 0,
  };
}

const MARKER = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;
const SNIPPET_CHARS = 300;

/**
 * Citations of an answer, in order of first mention: every `[n]` (also `[1, 3]`) that names a
 * source. The snippet is the passage text behind the claim: the claim itself when the passage
 * holds it word for word (an extractive answer), else the passage sentence that shares the most
 * words with it. Numbers that name no source are returned in `unknown`.
 */
export function citationsOf(answer: string, sources: readonly Source[]): { citations: Citation[]; unknown: number[] } {
  const byN = new Map(sources.map((s) => [s.n, s]));
  const citations: Citation[] = [];
  const unknown: number[] = [];
  let claimStart = 0;
  let claim = "";
  for (const m of answer.matchAll(MARKER)) {
    // "[1][2]" or "[1] [2]": the second marker backs the same claim as the first.
    const text = answer.slice(claimStart, m.index).trim();
    if (text !== "") claim = text;
    claimStart = m.index + m[0].length;
    for (const n of m[1]!.split(/[,;]/).map((x) => Number(x.trim()))) {
      const source = byN.get(n);
      if (!source) {
        if (!unknown.includes(n)) unknown.push(n);
        continue;
      }
      if (citations.some((c) => c.n === n)) continue;
      citations.push({ n, path: source.path, title: sourceTitle(source), snippet: snippetFor(claim, source.text) });
    }
  }
  return { citations, unknown };
}

/** The passage text that backs `claim`; see citationsOf. */
export function snippetFor(claim: string, passage: string): string {
  const flat = (s: string) => s.replace(/\s+/g, " ").trim();
  const c = lastSentence(flat(claim));
  if (c !== "" && flat(passage).includes(c)) return cap(c);
  const wanted = new Set(terms(c));
  let best = "";
  let bestScore = -1;
  for (const sentence of splitSentences(passage)) {
    const score = new Set(terms(sentence).filter((t) => wanted.has(t))).size;
    if (score > bestScore) [best, bestScore] = [sentence, score];
  }
  return cap(flat(best));
}

/** A claim is the text since the previous marker; on a long run of prose, its last sentence. */
function lastSentence(text: string): string {
  const all = splitSentences(text);
  return all[all.length - 1] ?? "";
}

function cap(s: string): string {
  return s.length <= SNIPPET_CHARS ? s : `${s.slice(0, SNIPPET_CHARS - 1).trimEnd()}…`;
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").trim();
}
