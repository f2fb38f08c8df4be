/**
 * Plain-text extraction, sentence splitting, TextRank summaries and RAKE keywords for Markdown
 * documents. Pure functions: no I/O, no randomness, same output for the same input everywhere.
 */

type BlockKind = "heading" | "para" | "list" | "table";
interface Block {
  kind: BlockKind;
  /** One entry per unit: a paragraph's joined lines, a list item, a table row, a heading. */
  lines: string[];
}

// Any indentation: fences nested in list items are indented past the usual three spaces.
const FENCE = /^[ \t]*(`{3,}|~{3,})/;
const ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;
const RULE = /^ {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$/;
const REF_DEF = /^ {0,3}\[([^\]^][^\]]*)\]:[ \t]*\S/;
const TABLE_SEP = /^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)+\|?[ \t]*$|^[ \t]*\|[ \t]*:?-+:?[ \t]*\|?[ \t]*$/;
const LIST_ITEM = /^[ \t]*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
const QUOTE = /^ {0,3}> ?/;
const INDENTED = /^(?: {4}|\t)/;

/**
 * Splits Markdown into blocks, dropping what never renders as prose (front matter, code blocks,
 * rules, link reference definitions). Inline markup is left for `inline()`; the labels of
 * reference definitions are collected because `[label]` alone is a link only when defined.
 */
function parseBlocks(md: string): { blocks: Block[]; refs: Set<string> } {
  const text = md
    .replace(/^\uFEFF/, "")
    .replace(/\r\n?/g, "\n")
    .replace(/^(---|\+\+\+)[ \t]*\n[\s\S]*?\n\1[ \t]*(?:\n|$)/, "")
    // Comments go before line parsing: they often span lines and hide whole sections.
    .replace(/<!--[\s\S]*?(?:-->|$)/g, "")
    // Many READMEs open with `<h1 align="center">` instead of `#`: make it a heading line. Inside a
    // code fence the line is dropped with the fence as before.
    .replace(/<h([1-6])\b[^>]*>([\s\S]*?)<\/h\1\s*>/gi, (_, level: string, body: string) => `\n\n${"#".repeat(Number(level))} ${body.replace(/\s+/g, " ")}\n\n`);
  const blocks: Block[] = [];
  const refs = new Set<string>();
  let cur: Block | null = null;
  let fence: string | null = null;
  let inIndentedCode = false;
  let prevBlank = true;
  let lastKind: BlockKind | null = null;
  const flush = () => {
    if (cur && cur.lines.length > 0) {
      blocks.push(cur);
      lastKind = cur.kind;
    }
    cur = null;
  };
  const start = (kind: BlockKind, line?: string) => {
    flush();
    cur = { kind, lines: line === undefined ? [] : [line] };
  };

  for (const raw of text.split("\n")) {
    let line = raw;
    while (QUOTE.test(line)) line = line.replace(QUOTE, "");
    if (fence !== null) {
      const close = FENCE.exec(line);
      if (close?.[1] && close[1][0] === fence[0] && close[1].length >= fence.length && line.trim() === close[1]) fence = null;
      continue;
    }
    const blank = line.trim() === "";
    if (inIndentedCode) {
      if (blank || INDENTED.test(line)) continue;
      inIndentedCode = false;
    }
    const wasBlank = prevBlank;
    prevBlank = blank;
    if (blank) {
      flush();
      continue;
    }
    const open = FENCE.exec(line);
    if (open?.[1]) {
      flush();
      fence = open[1];
      continue;
    }
    // Indented code only after a blank line and outside a list, where indentation means nesting.
    if (wasBlank && cur === null && lastKind !== "list" && INDENTED.test(line)) {
      inIndentedCode = true;
      continue;
    }
    const c = cur as Block | null;
    const atx = ATX.exec(line);
    if (atx) start("heading", atx[2] ?? "");
    else if (SETEXT.test(line) && c?.kind === "para") c.kind = "heading";
    if (atx || c?.kind === "heading" || RULE.test(line)) {
      flush();
      continue;
    }
    const ref = REF_DEF.exec(line)?.[1];
    if (ref !== undefined) {
      refs.add(ref.trim().toLowerCase());
      continue;
    }
    if (TABLE_SEP.test(line) && line.includes("|")) {
      // The header row was read as a paragraph line: it was a table's first row after all.
      if (c?.kind === "para" && c.lines.length > 0) {
        const header = c.lines.pop() ?? "";
        start("table", tableRow(header));
      } else if (c?.kind !== "table") start("table");
      continue;
    }
    const trimmed = line.trim();
    if (c?.kind === "table" && trimmed.includes("|")) {
      c.lines.push(tableRow(trimmed));
      continue;
    }
    if (trimmed.startsWith("|")) {
      start("table", tableRow(trimmed));
      continue;
    }
    const item = LIST_ITEM.exec(line);
    if (item) {
      if (c?.kind !== "list") start("list");
      (cur as Block | null)?.lines.push((item[1] ?? "").replace(/^\[[ xX]\][ \t]+/, ""));
      continue;
    }
    if (c && (c.kind === "para" || c.kind === "list") && c.lines.length > 0) {
      // A soft-wrapped line, or a list item's continuation: it belongs to the unit above.
      c.lines[c.lines.length - 1] += " " + trimmed;
    } else if (wasBlank && lastKind === "list" && INDENTED.test(line)) {
      // A loose list item's second paragraph stays part of the list.
      start("list", trimmed);
    } else start("para", trimmed);
  }
  flush();
  return { blocks, refs };
}

/** Cells joined by "; " so that a row reads as one unit and its cells stay apart. */
function tableRow(line: string): string {
  const cells = line.replace(/^\s*\|/, "").replace(/\|\s*$/, "").split(/(?<!\\)\|/);
  return cells.map((cell) => cell.trim()).filter((cell) => cell !== "").join("; ");
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " ", mdash: "—", ndash: "–", hellip: "…", copy: "©" };
// Escaped punctuation is parked in the Private Use Area so no markup rule can match it.
const PUA = 0xe000;

/** Removes inline markup from one unit of text, keeping what a reader would see. */
function inline(s: string, refs: ReadonlySet<string>): string {
  const spans: string[] = [];
  let out = s
    .replace(/\\([!-/:-@[-`{-~])/g, (_, ch: string) => String.fromCharCode(PUA + ch.charCodeAt(0)))
    // Code spans keep their text (summaries read better with `foo()` than with a hole) but their
    // content must not be parsed as markup, so they wait in placeholders too.
    .replace(/(`+)([\s\S]*?[^`])\1(?!`)/g, (_, _ticks: string, code: string) => `\uf8f0${spans.push(code.trim()) - 1}\uf8f1`)
    .replace(/<((?:https?|ftp|mailto):[^\s<>]+)>/gi, "$1")
    .replace(/<\/?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?\/?>/g, " ")
    .replace(/!\[[^\]]*\](?:\((?:[^()]|\([^()]*\))*\)|\[[^\]]*\])?/g, "")
    .replace(/\[\^[^\]]+\]/g, "")
    .replace(/\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)/g, "$1")
    .replace(/\[([^\]]*)\]\[([^\]]*)\]/g, "$1")
    .replace(/\[([^\]]+)\]/g, (all, label: string) => (refs.has(label.trim().toLowerCase()) ? label : all))
    .replace(/(\*\*|__)(?=\S)([\s\S]*?\S)\1/g, "$2")
    .replace(/(^|[^\w*])\*(?=[^\s*])([^*]*?[^\s*])\*(?![\w*])/g, "$1$2")
    .replace(/(^|[^\w])_(?=\S)([^_]*?\S)_(?!\w)/g, "$1$2")
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "$1")
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (all, name: string) => {
      if (name[0] !== "#") return ENTITIES[name.toLowerCase()] ?? all;
      const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code < 0x110000 ? String.fromCodePoint(code) : all;
    })
    .replace(/\uf8f0(\d+)\uf8f1/g, (_, i: string) => spans[Number(i)] ?? "");
  out = out.replace(/[\ue000-\ue07f]/g, (ch) => String.fromCharCode(ch.charCodeAt(0) - PUA));
  return out.replace(/\s+/g, " ").trim();
}

/**
 * Markdown to plain text: one line per paragraph, heading, list item or table row, and a blank
 * line between blocks. Wrapped lines are joined, so a newline in the result always ends a unit.
 */
export function markdownToText(md: string): string {
  const { blocks, refs } = parseBlocks(md);
  const out: string[] = [];
  for (const block of blocks) {
    const lines = block.lines.map((l) => inline(l, refs)).filter((l) => l !== "");
    if (lines.length > 0) out.push(lines.join("\n"));
  }
  return out.join("\n\n");
}

/** The first ATX, setext or HTML `<h1>`-`<h6>` heading with any text left after cleaning; else `fallback`. */
export function extractTitle(md: string, fallback: string): string {
  const { blocks, refs } = parseBlocks(md);
  for (const block of blocks) {
    if (block.kind !== "heading") continue;
    const title = inline(block.lines.join(" "), refs);
    if (title !== "") return title;
  }
  return fallback;
}

/** Words that end with a period without ending the sentence. */
const ABBREVIATIONS = new Set(
  ("e.g i.e eg ie vs cf viz approx al mr mrs ms dr prof sr jr st ed eds inc ltd co corp dept est resp u.s a.k.a " +
    "jan feb mar apr jun jul aug sep sept oct nov dec").split(" "),
);
/** Abbreviations only before a number ("No. 5", "p. 12"): "Say no. Then" still ends a sentence. */
const NUMBERED = new Set(["no", "nos", "fig", "figs", "vol", "ch", "sec", "p", "pp", "ref"]);

/**
 * Splits text into sentences. Every newline ends a sentence (`markdownToText` puts one unit per
 * line); inside a line, `.`, `!` or `?` end one when followed by a space and a word that does not
 * start in lowercase. Dots inside tokens (`1.2.3`, `index.js`) are never followed by a space, and
 * known abbreviations (`e.g.`, `Mr.`, single initials) do not end a sentence.
 */
export function splitSentences(text: string): string[] {
  const sentences: string[] = [];
  for (const line of text.split(/\n+/)) {
    let startAt = 0;
    const boundary = /([.!?…]+)["'”’)\]]*(?=\s+(\S))/g;
    for (let m = boundary.exec(line); m !== null; m = boundary.exec(line)) {
      const next = m[2] ?? "";
      if (/^\p{Ll}/u.test(next)) continue;
      if (m[1] === ".") {
        const before = /([\p{L}\p{N}.]*)$/u.exec(line.slice(0, m.index))?.[1] ?? "";
        const word = before.toLowerCase();
        // Single capitals are initials ("J. Smith"); "etc." ends a sentence before a capital only.
        if (ABBREVIATIONS.has(word) || /^\p{Lu}$/u.test(before)) continue;
        if ((word === "etc" && !/^\p{Lu}/u.test(next)) || (NUMBERED.has(word) && /^\d/.test(next))) continue;
      }
      const end = m.index + m[0].length;
      sentences.push(line.slice(startAt, end).trim());
      startAt = end;
    }
    sentences.push(line.slice(startAt).trim());
  }
  return sentences.filter((s) => s !== "");
}

/** English function words, pronouns, auxiliaries and fillers; contractions with a straight apostrophe. */
export const STOPWORDS: ReadonlySet<string> = new Set(
  (
    "a about above across after afterwards again against all almost alone along already also although always am among " +
    "an and another any anyhow anyone anything anyway anywhere are aren't around as at be became because become becomes " +
    "been before beforehand behind being below beside besides between beyond both but by can can't cannot could couldn't " +
    "did didn't do does doesn't doing don't done down due during each either else elsewhere enough especially etc even " +
    "ever every everyone everything everywhere except few for former formerly from further furthermore get gets getting " +
    "given gives go goes going got had hadn't has hasn't have haven't having he he's hence her here here's hers herself " +
    "him himself his how however i i'd i'll i'm i've if in indeed instead into is isn't it it's its itself just last " +
    "least less let let's like likely made make makes many may maybe me meanwhile might mine more moreover most mostly " +
    "much must mustn't my myself namely neither never nevertheless next no nobody none nor not nothing now nowhere of off " +
    "often on once one only onto or other others otherwise our ours ourselves out over own per perhaps please put quite " +
    "rather really same see seem seemed seems several shall shan't she she's should shouldn't since so some somehow " +
    "someone something sometimes somewhere still such than that that's the their theirs them themselves then thence " +
    "there there's thereafter thereby therefore therein these they they'd they'll they're they've this those though " +
    "through throughout thru thus to together too toward towards under unless until up upon us use used uses using " +
    "usually very via was wasn't we we'd we'll we're we've well were weren't what what's whatever when whenever where " +
    "where's whereas whereby wherever whether which while who who's whoever whole whom whose why will with within " +
    "without won't would wouldn't yet you you'd you'll you're you've your yours yourself yourselves e.g i.e eg ie vs " +
    "simply"
  ).split(" "),
);

const URLISH = /\b(?:https?|ftp):\/\/\S+|\bwww\.\S+|\S+@\S+\.\w+/gi;
const TOKEN = /[\p{L}\p{N}]+(?:['._-][\p{L}\p{N}]+)*/gu;

/** Lowercased word tokens; `index.js`, `1.2.3`, `don't` and `p-limit` stay whole, URLs are skipped. */
export function tokenize(text: string): string[] {
  return text.replace(/[’‘]/g, "'").replace(URLISH, " ").toLowerCase().match(TOKEN) ?? [];
}

/** A word that can carry meaning: not a stopword, not a bare number, longer than one letter. */
function isContentWord(word: string): boolean {
  return word.length > 1 && !STOPWORDS.has(word) && !/^[\d._-]+$/.test(word);
}

/** Light plural folding, enough for "shards" and "shard" to count as one word. */
function stem(word: string): string {
  if (word.length <= 4 || /[._-]/.test(word)) return word;
  if (word.endsWith("ies")) return word.slice(0, -3) + "y";
  if (/(?:ss|us|is)$/.test(word)) return word;
  if (/(?:sses|xes|ches|shes)$/.test(word)) return word.slice(0, -2);
  if (word.endsWith("s")) return word.slice(0, -1);
  return word;
}

// Quadratic in the sentence count: documents longer than this are ranked on their first part.
const MAX_RANKED_SENTENCES = 1500;

/**
 * TextRank (Mihalcea & Tarau 2004): sentences are nodes, edges weigh the TF-IDF cosine similarity of
 * their content words, and weighted PageRank (damping 0.85) runs until the scores move by less than
 * 1e-9 in total. Returns the `maxSentences` best-ranked sentences in document order, passing over
 * near-copies (cosine >= 0.7) of a sentence already picked while others remain. Sentences of fewer
 * than four words (headings, bullets) are not candidates unless nothing else is.
 */
export function summarize(text: string, maxSentences = 3): string[] {
  if (maxSentences <= 0) return [];
  const all = [...new Set(splitSentences(text))];
  const words = all.map(tokenize);
  const indices = all.map((_, i) => i).filter((i) => (words[i]?.length ?? 0) >= 4);
  const chosen = (indices.length > 0 ? indices : all.map((_, i) => i)).slice(0, MAX_RANKED_SENTENCES);
  if (chosen.length <= maxSentences) return chosen.map((i) => all[i] ?? "");

  const bags = chosen.map((i) => countBy((words[i] ?? []).filter(isContentWord).map(stem)));
  const df = new Map<string, number>();
  for (const bag of bags) for (const term of bag.keys()) df.set(term, (df.get(term) ?? 0) + 1);
  const n = bags.length;
  // Smoothed IDF keeps words found in every sentence above zero; vectors are unit length.
  const vectors = bags.map((bag) => {
    const v = new Map([...bag].map(([term, tf]) => [term, tf * (Math.log((1 + n) / (1 + (df.get(term) ?? 0))) + 1)] as const));
    const norm = Math.sqrt([...v.values()].reduce((sum, w) => sum + w * w, 0));
    for (const [term, w] of v) v.set(term, w / norm);
    return v;
  });

  // Sparse adjacency: most sentence pairs share no content word.
  const edges: Array<Array<[number, number]>> = vectors.map(() => []);
  const outSum = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dot = cosine(vectors[i], vectors[j]);
      if (dot <= 0) continue;
      edges[i]?.push([j, dot]);
      edges[j]?.push([i, dot]);
      outSum[i] = (outSum[i] ?? 0) + dot;
      outSum[j] = (outSum[j] ?? 0) + dot;
    }
  }

  const d = 0.85;
  let scores = new Array<number>(n).fill(1 / n);
  for (let iter = 0; iter < 1000; iter++) {
    // Sentences that share no word with any other would leak rank; their mass is spread evenly.
    let dangling = 0;
    for (let j = 0; j < n; j++) if ((outSum[j] ?? 0) === 0) dangling += scores[j] ?? 0;
    const next = new Array<number>(n);
    let delta = 0;
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (const [j, w] of edges[i] ?? []) sum += (w / (outSum[j] ?? 1)) * (scores[j] ?? 0);
      next[i] = (1 - d) / n + d * (sum + dangling / n);
      delta += Math.abs((next[i] ?? 0) - (scores[i] ?? 0));
    }
    scores = next;
    if (delta < 1e-9) break;
  }

  const ranked = chosen.map((_, k) => k).sort((x, y) => byScore(scores[x] ?? 0, scores[y] ?? 0) || x - y);
  // Templated docs ("Returns X from json." / "Returns X from base64 json.") rank their near-copies
  // together; a near-copy of a picked sentence adds nothing, so it yields to the next one.
  const picked: number[] = [];
  for (const k of ranked) {
    if (picked.length === maxSentences) break;
    if (picked.every((p) => cosine(vectors[p], vectors[k]) < NEAR_DUPLICATE)) picked.push(k);
  }
  for (const k of ranked) if (picked.length < maxSentences && !picked.includes(k)) picked.push(k);
  return picked.sort((x, y) => x - y).map((k) => all[chosen[k] ?? 0] ?? "");
}

const NEAR_DUPLICATE = 0.7;

/** Descending; scores within 1e-9 tie, so summation order never decides between equals. */
function byScore(a: number, b: number): number {
  return Math.abs(a - b) <= 1e-9 ? 0 : b - a;
}

function countBy(items: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return counts;
}

/** Dot product of two unit-length sparse vectors. */
function cosine(a: ReadonlyMap<string, number> | undefined, b: ReadonlyMap<string, number> | undefined): number {
  if (!a || !b) return 0;
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  let dot = 0;
  for (const [term, w] of small) dot += w * (large.get(term) ?? 0);
  return dot;
}

const MAX_PHRASE_WORDS = 3;

/**
 * RAKE (Rose et al. 2010): candidate phrases are the runs of words between stopwords and
 * punctuation; a word scores degree/frequency over all candidates, a phrase the sum of its words.
 * Phrases over three words are dropped (in READMEs they are mostly code or table rows that lost
 * their punctuation). Ties go to the more frequent phrase, then alphabetically.
 */
export function keywords(text: string, max = 8): string[] {
  if (max <= 0) return [];
  const phrases: string[][] = [];
  // A dot splits only at a word's end, so `index.js` and `1.2.3` stay whole.
  const chunks = text.replace(URLISH, " ").split(/[\n,;:!?()[\]{}"“”«»|\\/<>=*#`~^+&%$@]+|\.+(?=\s|$)|\s[-–—]+\s|'\s|\s'/);
  for (const chunk of chunks) {
    let run: string[] = [];
    const end = () => {
      if (run.length > 0 && run.length <= MAX_PHRASE_WORDS) phrases.push(run);
      run = [];
    };
    for (const word of tokenize(chunk)) {
      if (isContentWord(word)) run.push(word);
      else end();
    }
    end();
  }

  const freq = new Map<string, number>();
  const degree = new Map<string, number>();
  for (const phrase of phrases) {
    for (const w of phrase) {
      freq.set(w, (freq.get(w) ?? 0) + 1);
      degree.set(w, (degree.get(w) ?? 0) + phrase.length);
    }
  }
  const score = (phrase: string) => phrase.split(" ").reduce((s, w) => s + (degree.get(w) ?? 0) / (freq.get(w) ?? 1), 0);
  return [...countBy(phrases.map((p) => p.join(" ")))]
    .map(([phrase, count]) => ({ phrase, count, score: score(phrase) }))
    .sort((x, y) => byScore(x.score, y.score) || y.count - x.count || (x.phrase < y.phrase ? -1 : x.phrase > y.phrase ? 1 : 0))
    .slice(0, max)
    .map(({ phrase }) => phrase);
}
