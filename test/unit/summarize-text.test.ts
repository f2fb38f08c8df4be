import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import job, { defaultRoot, type DocItem, type DocSummary } from "../../jobs/summarize-docs/index.js";
import {
  extractTitle,
  keywords,
  markdownToText,
  splitSentences,
  STOPWORDS,
  summarize,
  tokenize,
} from "../../jobs/summarize-docs/text.js";
import { createTestContext, type JobContext } from "../../src/index.js";

const ctx = (): JobContext => createTestContext({ itemKey: "x", runId: "r", shard: "s" });

async function collect(args: { root?: string; limit?: number }): Promise<DocItem[]> {
  const items: DocItem[] = [];
  for await (const item of job.source(args, { signal: new AbortController().signal })) items.push(job.item.parse(item));
  return items;
}

describe("markdownToText", () => {
  it("drops front matter, code fences, indented code, comments and HTML", () => {
    const md = [
      "---",
      "title: Ignored",
      "---",
      "Intro text.",
      "",
      "```js",
      "const secret = 1;",
      "```",
      "",
      "~~~",
      "tilde code",
      "~~~",
      "",
      "    indented code",
      "",
      "<!-- a comment",
      "over lines -->",
      '<p align="center"><img src="logo.svg"',
      '  alt="logo"></p>',
      "",
      "Outro.",
    ].join("\n");
    expect(markdownToText(md)).toBe("Intro text.\n\nOutro.");
  });

  it("keeps link text, drops images and badges, resolves reference links", () => {
    const md = [
      "[![CI](https://ci/badge.svg)](https://ci) ![logo](logo.png) [![npm][npm-img]][npm-url]",
      "",
      "Read [the docs](https://x.dev/docs (Docs)) or [the guide][guide], see [FAQ] and <https://x.dev>.",
      "",
      "[guide]: https://x.dev/guide",
      "[faq]: https://x.dev/faq",
    ].join("\n");
    expect(markdownToText(md)).toBe("Read the docs or the guide, see FAQ and https://x.dev.");
  });

  it("strips emphasis, inline code markers, headings, entities and escapes but not snake_case", () => {
    const md = "# The **bold** _title_ #\n\nSay *hi* to ~~old~~ `new()` and snake_case_name &amp; 2 * 3 * 4, \\*not emphasis\\*.";
    expect(markdownToText(md)).toBe("The bold title\n\nSay hi to old new() and snake_case_name & 2 * 3 * 4, *not emphasis*.");
  });

  it("turns lists, tables and quotes into one line per unit and joins soft-wrapped lines", () => {
    const md = [
      "A paragraph that is",
      "wrapped over lines.",
      "",
      "- first item",
      "  continued",
      "* [x] done task",
      "1. numbered",
      "",
      "| Option | Meaning |",
      "| :----- | ------: |",
      "| `a` | first |",
      "",
      "> quoted **text**",
      "> more",
      "",
      "Setext title",
      "============",
      "",
      "***",
      "",
      "End",
    ].join("\n");
    expect(markdownToText(md)).toBe(
      [
        "A paragraph that is wrapped over lines.",
        "",
        "first item continued\ndone task\nnumbered",
        "",
        "Option; Meaning\na; first",
        "",
        "quoted text more",
        "",
        "Setext title",
        "",
        "End",
      ].join("\n"),
    );
  });

  it("closes fences opened inside blockquotes and list items", () => {
    const md = "> ```\n> hidden\n> ```\n\n- item\n\n    ```sh\n    npm i\n    ```\n\nShown.";
    expect(markdownToText(md)).toBe("item\n\nShown.");
  });

  it("returns an empty string for empty or markup-only input", () => {
    expect(markdownToText("")).toBe("");
    expect(markdownToText("```\ncode\n```\n<br/>\n---")).toBe("");
  });
});

describe("extractTitle", () => {
  it("takes the first ATX heading, cleaned of markup", () => {
    expect(extractTitle("Intro\n\n## [**p-limit**](https://x) ![badge](b.svg)\n\n# Later", "fb")).toBe("p-limit");
  });

  it("takes a setext heading, but never front matter or code", () => {
    expect(extractTitle("---\nname: x\n---\n```\n# not a title\n```\nReal Title\n---\n", "fb")).toBe("Real Title");
  });

  it("takes an HTML <h1> and skips headings with no text", () => {
    expect(extractTitle('# ![logo](l.png)\n<h1 align="center">\n  <img src="x.png">\n  chai\n</h1>', "fb")).toBe("chai");
  });

  it("falls back when there is no heading", () => {
    expect(extractTitle("Just text.", "pkg/README.md")).toBe("pkg/README.md");
    expect(extractTitle("", "fb")).toBe("fb");
  });
});

describe("splitSentences", () => {
  it("handles abbreviations, version numbers and file names", () => {
    const text =
      "Use e.g. the CLI. It works with version 1.2.3 and index.js files. Mr. Smith wrote it, i.e. him. " +
      "Is it done? Yes! Update to 2.0.1. Then restart. See No. 5 for details. Say no. Then stop. " +
      "J. R. R. Tolkien wrote books. Apples, pears, etc. are fruit. Bananas etc. Then more.";
    expect(splitSentences(text)).toEqual([
      "Use e.g. the CLI.",
      "It works with version 1.2.3 and index.js files.",
      "Mr. Smith wrote it, i.e. him.",
      "Is it done?",
      "Yes!",
      "Update to 2.0.1.",
      "Then restart.",
      "See No. 5 for details.",
      "Say no.",
      "Then stop.",
      "J. R. R. Tolkien wrote books.",
      "Apples, pears, etc. are fruit.",
      "Bananas etc.",
      "Then more.",
    ]);
  });

  it("ends a sentence at every newline and keeps closing quotes and brackets", () => {
    expect(splitSentences('A heading\n\nHe said "stop." Then (it ended.) Fine\nnext')).toEqual([
      "A heading",
      'He said "stop."',
      "Then (it ended.)",
      "Fine",
      "next",
    ]);
  });

  it("returns nothing for blank input", () => {
    expect(splitSentences("")).toEqual([]);
    expect(splitSentences(" \n\n ")).toEqual([]);
  });
});

describe("tokenize", () => {
  it("lowercases, keeps dotted, hyphenated and contracted words whole and skips URLs", () => {
    expect(tokenize("Don’t load index.js v1.2.3 via p-limit: https://x.dev/a?b=c now!")).toEqual([
      "don't",
      "load",
      "index.js",
      "v1.2.3",
      "via",
      "p-limit",
      "now",
    ]);
    expect(tokenize("")).toEqual([]);
  });

  it("has a stopword list of function words only", () => {
    for (const w of ["the", "and", "of", "don't", "which", "e.g"]) expect(STOPWORDS.has(w)).toBe(true);
    for (const w of ["shard", "checkpoint", "summary", "queue"]) expect(STOPWORDS.has(w)).toBe(false);
  });
});

describe("summarize (TextRank)", () => {
  const sentences = [
    "Shards split the workload into slices for parallel tasks.",
    "The weather today is sunny and warm outside.",
    "Each checkpoint stores the shard progress in the bucket.",
    "Shards, checkpoints and the bucket together make runs resumable for parallel tasks.",
    "My cat enjoys sleeping on the sofa all afternoon.",
    "A bucket holds every checkpoint so the tasks can resume.",
  ];
  const text = sentences.join(" ");

  it("ranks the sentence that shares words with all others first", () => {
    expect(summarize(text, 1)).toEqual([sentences[3]]);
  });

  it("returns the top sentences in original order and leaves off-topic ones out", () => {
    const summary = summarize(text, 3);
    expect(summary).toHaveLength(3);
    expect(summary).toContain(sentences[3]);
    expect(summary).not.toContain(sentences[1]);
    expect(summary).not.toContain(sentences[4]);
    const positions = summary.map((s) => sentences.indexOf(s));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });

  it("passes over near-copies of a sentence already picked", () => {
    const templated = [
      "Returns source map converter from the given json string.",
      "Returns source map converter from the given json string value.",
      "Returns source map converter from the given encoded json string value.",
      "A converter turns a source map into a comment or a json object.",
      "Bananas are yellow fruit that grow in warm places.",
    ].join(" ");
    const summary = summarize(templated, 2);
    expect(summary).toHaveLength(2);
    expect(summary.filter((s) => s.startsWith("Returns source map converter"))).toHaveLength(1);
  });

  it("returns every candidate when there are fewer than asked, and nothing for empty input", () => {
    expect(summarize("One short sentence here. Another short sentence here.", 3)).toEqual([
      "One short sentence here.",
      "Another short sentence here.",
    ]);
    expect(summarize("")).toEqual([]);
    expect(summarize(text, 0)).toEqual([]);
  });

  it("is deterministic", () => {
    expect(summarize(text, 2)).toEqual(summarize(text, 2));
  });
});

describe("keywords (RAKE)", () => {
  // The worked example of Rose et al. (2010), "Automatic keyword extraction from individual documents".
  const abstract =
    "Compatibility of systems of linear constraints over the set of natural numbers. Criteria of compatibility " +
    "of a system of linear Diophantine equations, strict inequations, and nonstrict inequations are considered. " +
    "Upper bounds for components of a minimal set of solutions and algorithms of construction of minimal " +
    "generating sets of solutions for all types of systems are given. These criteria and the corresponding " +
    "algorithms for constructing a minimal supporting set of solutions can be used in solving all the " +
    "considered types of systems and systems of mixed types.";

  it("ranks the paper's example as the paper does, ties alphabetically", () => {
    expect(keywords(abstract, 9)).toEqual([
      "minimal generating sets", // 8.7 in the paper
      "linear diophantine equations", // 8.5
      "minimal supporting set", // 7.7
      "minimal set", // 4.7
      "linear constraints", // 4.5
      "natural numbers", // 4, and the three below
      "nonstrict inequations",
      "strict inequations",
      "upper bounds",
    ]);
  });

  it("breaks ties alphabetically, lowercases and never repeats a phrase", () => {
    expect(keywords("Zeta Alpha. Beta gamma.")).toEqual(["beta gamma", "zeta alpha"]);
    // Equal scores, but the phrase seen twice goes first.
    expect(keywords("Zeta Alpha. Beta gamma. zeta alpha.")).toEqual(["zeta alpha", "beta gamma"]);
    expect(keywords("Shardrun, shardrun, SHARDRUN.")).toEqual(["shardrun"]);
  });

  it("keeps file names whole and drops numbers and overlong runs", () => {
    expect(keywords("Edit index.js now. Version 1.2.3 is out. alpha beta gamma delta epsilon.")).toEqual(["edit index.js", "version"]);
  });

  it("caps the count, is deterministic and handles empty input", () => {
    expect(keywords(abstract, 3)).toHaveLength(3);
    expect(keywords(abstract)).toEqual(keywords(abstract));
    expect(keywords("")).toEqual([]);
    expect(keywords("the and of")).toEqual([]);
  });
});

describe("summarize-docs job", () => {
  let dir: string;
  let root: string;
  const readme = [
    "# Demo Package",
    "",
    "[![CI](https://ci/b.svg)](https://ci)",
    "",
    "Demo package parses config files. The parser reads config files from disk. Config files may be JSON.",
    "",
    "```js",
    "import demo from 'demo'",
    "```",
    "",
    "Bananas are unrelated to this package.",
  ].join("\n");

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "summarize-docs-"));
    root = path.join(dir, "node_modules");
    await mkdir(path.join(root, "b"), { recursive: true });
    await mkdir(path.join(root, "a-b"), { recursive: true });
    await mkdir(path.join(root, "a"), { recursive: true });
    await mkdir(path.join(root, ".bin"), { recursive: true });
    await mkdir(path.join(root, ".cache"), { recursive: true });
    await mkdir(path.join(dir, "outside"), { recursive: true });
    await writeFile(path.join(root, "a.md"), readme);
    await writeFile(path.join(root, "Z.md"), "# Z\n");
    await writeFile(path.join(root, "a-b", "Doc.MD"), "Upper-case extension.\n");
    // Directory "a" sorts after "a.md" by full path although "a" < "a.md" by name.
    await writeFile(path.join(root, "a", "x.md"), "In a folder named like a file's stem.\n");
    await writeFile(path.join(root, "b", "README.markdown"), "Markdown extension.\n");
    await writeFile(path.join(root, "b", "notes.txt"), "not markdown\n");
    await writeFile(path.join(root, ".bin", "tool.md"), "skipped\n");
    await writeFile(path.join(root, ".cache", "cached.md"), "skipped\n");
    await writeFile(path.join(dir, "outside", "secret.md"), "outside the root\n");
    await symlink(path.join(dir, "outside"), path.join(root, "linked-dir"), "dir");
    await symlink(path.join(root, "a.md"), path.join(root, "linked.md"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("lists markdown files in sorted path order, skipping .bin, .cache and symlinks", async () => {
    const items = await collect({ root });
    expect(items.map((i) => i.path)).toEqual(["Z.md", "a-b/Doc.MD", "a.md", "a/x.md", "b/README.markdown"]);
    expect(items.map((i) => i.path)).toEqual(items.map((i) => i.path).sort());
    expect(items.every((i) => i.root === root)).toBe(true);
    expect(items.find((i) => i.path === "a.md")?.bytes).toBe(Buffer.byteLength(readme));
  });

  it("caps the count with limit, coerces it from a flag string and resolves a relative root", async () => {
    const args = job.args?.parse({ root: path.relative(process.cwd(), root), limit: "2" });
    expect(args).toEqual({ root: path.relative(process.cwd(), root), limit: 2 });
    const items = await collect(args ?? {});
    expect(items.map((i) => i.path)).toEqual(["Z.md", "a-b/Doc.MD"]);
    expect(items[0]?.root).toBe(root);
    expect(() => job.args?.parse({ limit: "0" })).toThrow();
  });

  it("rejects a root that is not a directory", async () => {
    await expect(collect({ root: path.join(root, "a.md") })).rejects.toThrow(/not a directory/);
  });

  it("keys by path and weighs by bytes", () => {
    const item: DocItem = { root, path: "x.md", bytes: 0 };
    expect(job.key?.(item)).toBe("x.md");
    expect(job.weight?.(item)).toBe(1);
    expect(job.weight?.({ ...item, bytes: 5000 })).toBe(5000);
    expect(job.shard).toEqual({ weightPerShard: 64 * 1024 });
    expect(job.concurrency).toBe(4);
  });

  it("runs one document into a summary record", async () => {
    const [item] = (await collect({ root })).filter((i) => i.path === "a.md");
    const record = (await job.run(item as DocItem, ctx())) as DocSummary;
    const text = markdownToText(readme);
    expect(record).toEqual({
      path: "a.md",
      title: "Demo Package",
      summary: summarize(text, 3),
      keywords: keywords(text, 8),
      bytes: Buffer.byteLength(readme),
      chars: text.length,
      words: tokenize(text).length,
      sentences: splitSentences(text).length,
    });
    expect(record.summary).toHaveLength(3);
    expect(record.summary).not.toContain("Bananas are unrelated to this package.");
    expect(record.summary.join(" ")).not.toMatch(/import|CI/);
    expect(record.keywords).toContain("config files");
  });

  it("falls back to the path as title, and throws when the file vanished or escapes the root", async () => {
    const items = await collect({ root });
    const doc = items.find((i) => i.path === "a-b/Doc.MD") as DocItem;
    expect(((await job.run(doc, ctx())) as DocSummary).title).toBe("a-b/Doc.MD");

    await writeFile(path.join(root, "gone.md"), "# Soon gone\n");
    const gone = (await collect({ root })).find((i) => i.path === "gone.md") as DocItem;
    await unlink(path.join(root, "gone.md"));
    await expect(job.run(gone, ctx())).rejects.toMatchObject({ code: "ENOENT" });

    await expect(job.run({ root, path: "../outside/secret.md", bytes: 1 }, ctx())).rejects.toMatchObject({ code: "NON_RETRIABLE" });
  });

  it("finds the repository's node_modules from the source or the compiled file", async () => {
    const repo = path.join(dir, "repo");
    await mkdir(path.join(repo, "dist", "jobs", "summarize-docs"), { recursive: true });
    await writeFile(path.join(repo, "package.json"), JSON.stringify({ name: "shardrun" }));
    await writeFile(path.join(repo, "dist", "package.json"), JSON.stringify({ name: "not-it" }));
    expect(await defaultRoot(path.join(repo, "dist", "jobs", "summarize-docs", "index.js"))).toBe(path.join(repo, "node_modules"));
    await expect(defaultRoot(path.join(dir, "outside", "index.js"))).rejects.toThrow(/--arg root=/);
  });

  it("summarizes real documents from the installed packages", async () => {
    const items = await collect({ limit: 5 });
    const repoModules = fileURLToPath(new URL("../../node_modules", import.meta.url));
    expect(items).toHaveLength(5);
    expect(items.every((i) => i.root === path.resolve(repoModules))).toBe(true);
    for (const item of items) {
      const record = (await job.run(item, ctx())) as DocSummary;
      expect(record.title).not.toBe("");
      expect(record.summary.length).toBeGreaterThan(0);
      expect(record.summary.length).toBeLessThanOrEqual(3);
      expect(record.keywords.length).toBeGreaterThan(0);
      expect(new Set(record.keywords).size).toBe(record.keywords.length);
      expect(record.words).toBeGreaterThan(0);
    }
  });
});
