/**
 * Cuts a Markdown document into passages: the units that are indexed, retrieved and quoted to the
 * model. A passage never crosses a heading, so each one can be cited as "document › section", and
 * it stays short enough that five of them fit a small prompt. Pure and deterministic: the same
 * document always gives the same passages in the same order, which is what lets the read step
 * find a passage again by its ordinal.
 */
import { extractTitle, markdownToText, splitSentences } from "../summarize-docs/text.js";

export interface Section {
  /** Headings from the outermost down to this section's own; empty before the first heading. */
  trail: string[];
  /** The section's Markdown, its heading line excluded. */
  body: string;
}

export interface Passage {
  /** Position among the document's passages, from 0: with the path, the passage's identity. */
  ordinal: number;
  /** The section's own heading ("" before the first heading). */
  heading: string;
  trail: string[];
  /** Plain text, one unit (paragraph, list item, table row) a line. */
  text: string;
  words: number;
}

export interface ChunkOptions {
  /**
   * Longest passage, in words. Sentences are packed up to it; a longer single sentence is cut.
   * @default 160
   */
  maxWords?: number;
  /**
   * Shorter passages are dropped: badge rows and one-line sections carry no answer.
   * @default 8
   */
  minWords?: number;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;
const HTML_HEADING = /^\s*<h([1-6])\b[^>]*>(.*?)<\/h\1>\s*$/i;
// A "---" under one of these is a rule or a list's own syntax, not a setext underline.
const NOT_SETEXT_TEXT = /^\s*(?:[-*+]\s|\d+[.)]\s|\||>|<)/;

/** Heading text without inline markup (links, code ticks, emphasis, tags). */
function cleanHeading(raw: string): string {
  return extractTitle(`# ${raw}`, raw.trim()).trim();
}

/**
 * Sections of a Markdown document, split at ATX (`## x`), setext (`x` over `---`) and one-line
 * HTML (`<h2>x</h2>`) headings outside code fences. Heading levels nest: a `###` under a `##`
 * keeps the `##` in its trail.
 */
export function splitSections(md: string): Section[] {
  const sections: Section[] = [];
  const stack: { level: number; text: string }[] = [];
  let body: string[] = [];
  let fence: string | null = null;
  const flush = () => {
    sections.push({ trail: stack.map((h) => h.text).filter((t) => t !== ""), body: body.join("\n") });
    body = [];
  };
  const open = (level: number, text: string) => {
    flush();
    while (stack.length > 0 && stack[stack.length - 1]!.level >= level) stack.pop();
    stack.push({ level, text: cleanHeading(text) });
  };
  for (const line of md.split(/\r?\n/)) {
    const f = FENCE.exec(line)?.[1];
    if (fence !== null) {
      // A fence closes only with the same character, at least as long as the opener.
      if (f && f[0] === fence[0] && f.length >= fence.length && line.trim() === f) fence = null;
      body.push(line);
      continue;
    }
    if (f) {
      fence = f;
      body.push(line);
      continue;
    }
    const atx = ATX.exec(line);
    const html = HTML_HEADING.exec(line);
    const prev = body[body.length - 1];
    const setext = SETEXT.exec(line);
    if (atx) open(atx[1]!.length, atx[2] ?? "");
    else if (html) open(Number(html[1]), html[2] ?? "");
    else if (setext && prev !== undefined && prev.trim() !== "" && !NOT_SETEXT_TEXT.test(prev)) {
      body.pop();
      open(setext[1]!.startsWith("=") ? 1 : 2, prev);
    } else body.push(line);
  }
  flush();
  return sections.filter((s) => s.body.trim() !== "" || s.trail.length > 0);
}

const wordsOf = (s: string) => s.split(/\s+/).filter(Boolean);

/** Cuts a too-long sentence into pieces of `max` words. */
function pieces(sentence: string, max: number): string[] {
  const words = wordsOf(sentence);
  const out: string[] = [];
  for (let i = 0; i < words.length; i += max) out.push(words.slice(i, i + max).join(" "));
  return out;
}

/**
 * Passages of a document: each section's text (code blocks left out: they are read badly by
 * keyword search and quoted badly by an extractive model) packed sentence by sentence into
 * passages of at most `maxWords` words. Units stay on lines of their own.
 */
export function chunkMarkdown(md: string, options: ChunkOptions = {}): Passage[] {
  const { maxWords = 160, minWords = 8 } = options;
  if (!Number.isInteger(maxWords) || maxWords < 1) throw new TypeError("Expected `maxWords` to be a whole number from 1 and up");
  if (!Number.isInteger(minWords) || minWords < 0) throw new TypeError("Expected `minWords` to be a whole number from 0 and up");
  const passages: Passage[] = [];
  for (const section of splitSections(md)) {
    const heading = section.trail[section.trail.length - 1] ?? "";
    let lines: string[] = [];
    let count = 0;
    const emit = () => {
      if (count >= minWords && count > 0) passages.push({ ordinal: passages.length, heading, trail: section.trail, text: lines.join("\n"), words: count });
      lines = [];
      count = 0;
    };
    // A backslash before a space or a line's end is what is left of a Markdown hard line break.
    for (const unit of markdownToText(section.body).replace(/\\(?= |$)/gm, "").split(/\n+/)) {
      // Sentences of one unit share a line; a passage that fills up mid-unit ends there, and the
      // rest of the unit opens the next one.
      let line: string[] = [];
      for (const sentence of splitSentences(unit).flatMap((s) => pieces(s, maxWords))) {
        const n = wordsOf(sentence).length;
        if (count + n > maxWords && count > 0) {
          if (line.length > 0) lines.push(line.join(" "));
          line = [];
          emit();
        }
        line.push(sentence);
        count += n;
      }
      if (line.length > 0) lines.push(line.join(" "));
    }
    emit();
  }
  return passages;
}

/**
 * The package a file under `node_modules` documents: the segment after the last `node_modules`
 * (two for a scope), e.g. `@google-cloud/storage` for `@google-cloud/storage/README.md`.
 */
export function packageOf(relPath: string): string {
  const parts = relPath.split("/");
  const at = parts.lastIndexOf("node_modules");
  const rest = at >= 0 ? parts.slice(at + 1) : parts;
  if (rest.length <= 1) return "";
  return rest[0]!.startsWith("@") && rest.length > 2 ? `${rest[0]}/${rest[1]}` : rest[0]!;
}

/** A document's title: its first heading, else its package name, else its path. */
export function documentTitle(md: string, relPath: string): string {
  return extractTitle(md, packageOf(relPath) || relPath);
}
