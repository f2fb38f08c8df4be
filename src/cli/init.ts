/**
 * `shardrun init <name>`: a new job folder with a test, ready to run. The job goes to
 * `<root>/jobs/<name>/index.ts`, where `shardrun run <name>` finds it by name, and its test to
 * `<root>/test/jobs/<name>.test.ts`, where `make test` (vitest) runs it (tests stay out of the
 * jobs/ folders, which are shipped in the image). Nothing is written when the job exists.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { ExitCode, UsageError } from "../core/errors.js";
import { JOB_NAME_PATTERN } from "../core/job.js";
import { packageRoot } from "../config/paths.js";
import { commandHint } from "./hints.js";
import type { Io } from "./io.js";

export interface InitFlags {
  root?: string;
  json?: boolean;
}

function jobSource(name: string, shardrun: string): string {
  return `/**
 * ${name}: a shardrun job. Each item goes through \`run\` once (retried on errors, resumed after a
 * crash); change the item schema, the source and \`run\` to your work.
 *
 *   shardrun run ${name} --local --arg count=100
 */
import { z } from "zod";
import { defineJob, NonRetriableError } from "${shardrun}";

export default defineJob({
  name: "${name}",
  description: "a new job: counts the words of each item's text",
  // --arg count=100: checked by this schema before anything is planned.
  args: z.object({ count: z.coerce.number().int().min(1).default(20) }),
  // Every item is checked by this schema; one that fails it is a failed item, not a crash.
  item: z.object({ id: z.number().int().min(0), text: z.string() }),
  // Read once, when the run is planned. Could be a file (\`--items items.jsonl\`), a bucket, an API.
  *source(args) {
    for (let id = 0; id < args.count; id++) yield { id, text: \`item number \${id} of \${args.count}\` };
  },
  // A stable key per item, unique in the run: it names the item in outputs, failures and logs.
  key: (item) => \`item-\${item.id}\`,
  shard: { itemsPerShard: 10 },
  concurrency: 4,
  retry: { attempts: 3, minDelayMs: 1000 },
  async run(item, ctx) {
    ctx.log.info("counting words", { id: item.id });
    // Retrying cannot help this item: fail it now, with the reason in \`shardrun failures\`.
    if (!item.text.trim()) throw new NonRetriableError("the item has no text");
    const words = item.text.split(/\\s+/).filter(Boolean);
    return { id: item.id, words: words.length, longest: words.reduce((a, b) => (b.length > a.length ? b : a), "") };
  },
});
`;
}

function testSource(name: string, shardrun: string, jobImport: string): string {
  return `import { describe, expect, it } from "vitest";
import { createTestContext, NonRetriableError } from "${shardrun}";
import job from "${jobImport}";

describe("job ${name}", () => {
  it("plans one item per count, each passing the item schema", async () => {
    const items: unknown[] = [];
    for await (const item of job.source({ count: 3 }, { signal: new AbortController().signal })) items.push(job.item.parse(item));
    expect(items).toHaveLength(3);
  });

  it("counts the words of an item", async () => {
    const out = await job.run({ id: 7, text: "shardrun resumes every task" }, createTestContext({ itemKey: "item-7" }));
    expect(out).toEqual({ id: 7, words: 4, longest: "shardrun" });
  });

  it("fails an item without text for good", async () => {
    await expect(Promise.resolve().then(() => job.run({ id: 8, text: "  " }, createTestContext()))).rejects.toBeInstanceOf(NonRetriableError);
  });
});
`;
}

/** An import specifier from `from` (a folder) to `to` (a .ts file), in ESM's .js form. */
function importPath(from: string, to: string): string {
  const rel = relative(from, to).replace(/\\/g, "/").replace(/\.ts$/, ".js");
  return rel.startsWith(".") ? rel : `./${rel}`;
}

export async function initCommand(name: string, flags: InitFlags, io: Io): Promise<number> {
  if (!JOB_NAME_PATTERN.test(name)) throw new UsageError(`job name "${name}" is not valid: expected lowercase letters, digits and dashes, starting with a letter (at most 48)`);
  const pkg = packageRoot();
  const root = flags.root !== undefined ? resolve(io.cwd, flags.root) : pkg;
  if (!existsSync(root)) throw new UsageError(`--root: no folder ${root}`);
  const jobDir = join(root, "jobs", name);
  const entry = join(jobDir, "index.ts");
  const testFile = join(root, "test", "jobs", `${name}.test.ts`);
  for (const f of [jobDir, testFile]) if (existsSync(f)) throw new UsageError(`${f} exists already: choose another name, or edit that job`);
  // Inside this package a job imports shardrun by path; elsewhere by its name (the bundler maps it).
  const inPackage = resolve(root) === resolve(pkg);
  const shardrunFromJob = inPackage ? importPath(jobDir, join(pkg, "src", "index.ts")) : "shardrun";
  const shardrunFromTest = inPackage ? importPath(join(root, "test", "jobs"), join(pkg, "src", "index.ts")) : "shardrun";
  const written: string[] = [];
  try {
    mkdirSync(jobDir, { recursive: true });
    writeFileSync(entry, jobSource(name, shardrunFromJob), { flag: "wx" });
    written.push(entry);
    mkdirSync(join(root, "test", "jobs"), { recursive: true });
    writeFileSync(testFile, testSource(name, shardrunFromTest, importPath(join(root, "test", "jobs"), entry)), { flag: "wx" });
    written.push(testFile);
  } catch (e) {
    for (const f of written) rmSync(f, { force: true });
    rmSync(jobDir, { recursive: true, force: true });
    throw e;
  }
  if (flags.json) {
    io.stdout.write(JSON.stringify({ job: name, files: written }, null, 2) + "\n");
    return ExitCode.ok;
  }
  const hints = { env: io.env ?? process.env, cwd: io.cwd, script: io.script, storeUrl: join(io.cwd, ".shardrun") };
  const run = inPackage ? commandHint(hints, "run", name, "--local") : commandHint(hints, "run", relative(io.cwd, entry) || entry, "--local");
  io.stdout.write(
    `created job ${name}:\n  ${relative(io.cwd, entry) || entry}\n  ${relative(io.cwd, testFile) || testFile}\n` +
      `run it:  ${run}\n` +
      `test it: npx vitest run ${relative(io.cwd, testFile) || testFile}\n`,
  );
  return ExitCode.ok;
}
