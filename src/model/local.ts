/**
 * A deterministic local model: no network, no key, no randomness. It is the default so that
 * examples and tests run anywhere, and it gives the same answer to the same request on every
 * machine and every retry. It is not clever; it follows a few prompt conventions.
 *
 * Prompt conventions
 * - The task is named by a `task: <name>` line in a system message (case-insensitive):
 *   - `task: plan` — the last user message is a question (a leading "Question:" is dropped).
 *     The answer is up to `maxQueries` search queries made of the question's keywords: first all
 *     of them, then pairs of the most specific (longest) ones. One query a line, or with
 *     `json: true` the object `{"queries": ["...", ...]}`.
 *   - `task: answer` — documents are blocks that start a line with `[n]` (the citation number,
 *     then an optional title line), in any user or system message; the question follows a
 *     `Question:` line (else it is the last user message's text outside the documents). The
 *     answer quotes the up to `maxCitations` sentences that share the most keywords with the
 *     question, each followed by its document's marker: `Sentence. [2] Other sentence. [1]`.
 *     With no sentence in common it says "The provided documents do not answer the question."
 *     With `json: true`: `{"answer": "...", "citations": [2, 1]}`.
 *   - no task — an extractive summary: the first two sentences of the last user message.
 * - `maxTokens` cuts the text to 4 × maxTokens characters (finishReason "length"); `stop` cuts it
 *   before the first stop string.
 * - Usage: ceil(characters / 4) tokens for each message's content, and for the answer.
 */
import { InvalidInputError } from "../core/errors.js";
import { sleep } from "./http.js";
import {
  costOf,
  estimateTokens,
  parseChatRequest,
  type ChatModel,
  type ChatRequest,
  type ChatResult,
  type CompleteOptions,
  type FinishReason,
  ModelPricing,
} from "./port.js";

export interface LocalChatModelOptions {
  /** Reported as `result.model`. @default "shardrun-local-1" */
  model?: string;
  /** Sub-queries in a plan. @default 3 */
  maxQueries?: number;
  /** Sentences quoted in an answer. @default 3 */
  maxCitations?: number;
  /** Simulated latency of each call, in ms; aborted by the signal like a real call. @default 0 */
  latencyMs?: number;
  /** Gives results a `costUsd`, so USD budgets can be exercised offline. @default free (costUsd 0) */
  pricing?: ModelPricing;
}

const FREE = { inputUsdPerMTok: 0, outputUsdPerMTok: 0 } satisfies ModelPricing;

export class LocalChatModel implements ChatModel {
  readonly name: string;
  readonly #model: string;
  readonly #maxQueries: number;
  readonly #maxCitations: number;
  readonly #latencyMs: number;
  readonly #pricing: ModelPricing;

  constructor(options: LocalChatModelOptions = {}) {
    const { model = "shardrun-local-1", maxQueries = 3, maxCitations = 3, latencyMs = 0, pricing = FREE } = options;
    if (!Number.isInteger(maxQueries) || maxQueries < 1) throw new InvalidInputError("Expected `maxQueries` to be a whole number from 1 and up");
    if (!Number.isInteger(maxCitations) || maxCitations < 1) throw new InvalidInputError("Expected `maxCitations` to be a whole number from 1 and up");
    if (!Number.isFinite(latencyMs) || latencyMs < 0) throw new InvalidInputError("Expected `latencyMs` to be a number from 0 and up");
    if (!ModelPricing.safeParse(pricing).success) throw new InvalidInputError("Expected `pricing` to be { inputUsdPerMTok, outputUsdPerMTok }, numbers from 0 and up");
    this.#model = model;
    this.#maxQueries = maxQueries;
    this.#maxCitations = maxCitations;
    this.#latencyMs = latencyMs;
    this.#pricing = pricing;
    this.name = `local:${model}`;
  }

  async complete(request: ChatRequest, options: CompleteOptions = {}): Promise<ChatResult> {
    const req = parseChatRequest(request);
    options.signal?.throwIfAborted();
    const run = async () => {
      if (this.#latencyMs > 0) await sleep(this.#latencyMs, options.signal);
      return this.#answer(req);
    };
    // The limiter is honoured here too, so a run's rate limit behaves the same on the local model.
    return options.limit ? options.limit(run) : run();
  }

  #answer(req: ChatRequest): ChatResult {
    const task = taskOf(req);
    let text = task === "plan" ? this.#plan(req) : task === "answer" ? this.#cite(req) : summary(lastUser(req));
    let finishReason: FinishReason = "stop";
    for (const stop of req.stop ?? []) {
      const at = text.indexOf(stop);
      if (at >= 0) text = text.slice(0, at);
    }
    if (req.maxTokens !== undefined && text.length > req.maxTokens * 4) {
      text = text.slice(0, req.maxTokens * 4);
      finishReason = "length";
    }
    const inputTokens = req.messages.reduce((sum, m) => sum + estimateTokens(m.content), 0);
    const outputTokens = estimateTokens(text);
    const usage = { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens };
    return { text, usage, model: this.#model, finishReason, costUsd: costOf(usage, this.#pricing) };
  }

  #plan(req: ChatRequest): string {
    const question = lastUser(req).replace(/^\s*question:\s*/i, "");
    const queries = planQueries(question, this.#maxQueries);
    return req.json ? JSON.stringify({ queries }) : queries.join("\n");
  }

  #cite(req: ChatRequest): string {
    const { documents, question } = parseAnswerPrompt(req);
    const picked = documents.length === 0 ? [] : bestSentences(documents, question, this.#maxCitations);
    const citations = [...new Set(picked.map((s) => s.doc))];
    const answer =
      documents.length === 0
        ? "No documents were provided."
        : picked.length === 0
          ? "The provided documents do not answer the question."
          : picked.map((s) => `${s.text} [${s.doc}]`).join(" ");
    return req.json ? JSON.stringify({ answer, citations }) : answer;
  }
}

function taskOf(req: ChatRequest): string | undefined {
  for (const m of req.messages) {
    if (m.role !== "system") continue;
    const match = /^\s*task:\s*([a-z-]+)\s*$/im.exec(m.content);
    if (match) return match[1]!.toLowerCase();
  }
  return undefined;
}

function lastUser(req: ChatRequest): string {
  return [...req.messages].reverse().find((m) => m.role === "user")?.content ?? "";
}

const STOPWORDS = new Set(
  (
    "a about above after again against all also am an and any are as at be because been before being below between both but by can " +
    "could did do does doing down during each few for from further had has have having he her here hers him his how i if in into is " +
    "it its itself just me more most my no nor not now of off on once only or other our ours out over own same she should so some " +
    "such than that the their theirs them then there these they this those through to too under until up very was we were what when " +
    "where which while who whom why will with would you your yours question answer explain describe tell give list please many much " +
    "vs versus"
  ).split(" "),
);

/** Lower-cased words without stopwords, in order of first appearance, each once (plural folded). */
export function keywords(text: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}][\p{L}\p{N}'-]*/gu) ?? []) {
    const w = word.replace(/'s$/, "");
    if (STOPWORDS.has(w) || (w.length < 2 && !/\d/.test(w))) continue;
    const stem = stemOf(w);
    if (seen.has(stem)) continue;
    seen.add(stem);
    out.push(w);
  }
  return out;
}

/** A deliberately tiny stemmer: enough that "checkpoints" matches "checkpoint". */
function stemOf(word: string): string {
  if (word.length > 4 && word.endsWith("ies")) return `${word.slice(0, -3)}y`;
  if (word.length > 3 && word.endsWith("s") && !word.endsWith("ss")) return word.slice(0, -1);
  return word;
}

/** Up to `max` distinct queries: all keywords (at most 6), then pairs of the most specific ones. */
export function planQueries(question: string, max: number): string[] {
  const words = keywords(question);
  if (words.length === 0) return [question.trim()].filter(Boolean).slice(0, max);
  const queries = [words.slice(0, 6).join(" ")];
  // Longest first, as a stand-in for "most specific"; the stable sort keeps it deterministic.
  const specific = [...words].sort((a, b) => b.length - a.length);
  for (let i = 0; i + 1 < specific.length && queries.length < max; i += 2) {
    // The pair keeps the question's word order, so it reads like a phrase from it.
    const pair = [specific[i]!, specific[i + 1]!].sort((a, b) => words.indexOf(a) - words.indexOf(b)).join(" ");
    if (!queries.includes(pair)) queries.push(pair);
  }
  for (const word of specific) if (queries.length < max && !queries.includes(word)) queries.push(word);
  return queries.slice(0, max);
}

export interface PromptDocument {
  /** The citation number, as written in the prompt: `[n]`. */
  n: number;
  /** The rest of the `[n]` line when lines follow it; never quoted. */
  title?: string;
  text: string;
}

/** Documents (`[n]` blocks) and the question of an answer prompt; see the module comment. */
export function parseAnswerPrompt(req: ChatRequest): { documents: PromptDocument[]; question: string } {
  const blocks: { n: number; lines: string[] }[] = [];
  let question: string | undefined;
  let outside = "";
  for (const m of req.messages) {
    if (m.role === "assistant") continue;
    let current: { n: number; lines: string[] } | undefined;
    const rest: string[] = [];
    for (const line of m.content.split(/\r?\n/)) {
      const doc = /^\s*\[(\d+)\]\s?(.*)$/.exec(line);
      const q = /^\s*question:\s*(.*)$/i.exec(line);
      if (doc) {
        current = { n: Number(doc[1]), lines: [doc[2] ?? ""] };
        blocks.push(current);
      } else if (q) {
        current = undefined;
        question = q[1] ?? "";
      } else if (current) {
        current.lines.push(line);
      } else if (m.role === "user") {
        rest.push(line);
      }
    }
    if (m.role === "user") outside = rest.join("\n");
  }
  // "[1] Title" followed by lines is a titled document; "[1] Some text." alone is all text.
  const documents = blocks.map(({ n, lines }): PromptDocument => {
    const body = lines.slice(1).join("\n").trim();
    return body ? { n, title: lines[0]!.trim(), text: body } : { n, text: lines[0]!.trim() };
  });
  return { documents, question: (question ?? outside).trim() };
}

interface Scored {
  doc: number;
  text: string;
  score: number;
  order: number;
}

function bestSentences(documents: PromptDocument[], question: string, max: number): Scored[] {
  const wanted = new Set(keywords(question).map(stemOf));
  const scored: Scored[] = [];
  let order = 0;
  for (const doc of documents) {
    for (const sentence of sentences(doc.text)) {
      const score = keywords(sentence).filter((w) => wanted.has(stemOf(w))).length;
      if (score > 0) scored.push({ doc: doc.n, text: sentence, score, order: order++ });
    }
  }
  return scored.sort((a, b) => b.score - a.score || a.order - b.order).slice(0, max);
}

/** Sentences of a text, whitespace folded; fragments under `minWords` words are not quotable. */
function sentences(text: string, minWords = 3): string[] {
  return text
    .split(/\n\s*\n|(?<=[.!?])\s+(?=[\p{Lu}\p{N}"'(])/u)
    .map((s) => s.replace(/\s+/g, " ").trim())
    .filter((s) => s !== "" && s.split(" ").length >= minWords);
}

function summary(text: string): string {
  const all = sentences(text, 1);
  return all.length > 0 ? all.slice(0, 2).join(" ") : text.trim();
}
