/**
 * `shardrun output`: the merged outputs (each succeeded item once, protocol 2), as JSONL or CSV,
 * to stdout, a file or a bucket object, with the dead letter when asked.
 *
 * CSV: one row per item, columns `i`, `key`, then the top-level fields of the outputs in the
 * order they first appear (a field named like a fixed column gets an `output.` prefix). Nested
 * objects and arrays are written as JSON text in their cell; an output that is not an object
 * goes in one `output` column; a field an item lacks is an empty cell. With --failed, the columns
 * `status` (ok or failed), `reason`, `error` and `attempts` follow, and failed items are rows too.
 */
import { createWriteStream, existsSync, statSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { finished } from "node:stream/promises";
import { ExitCode, UsageError } from "../core/errors.js";
import type { FailedItemView } from "../core/status.js";
import { readFailedItems } from "../orchestrator/drive.js";
import { mergedOutput } from "../orchestrator/output.js";
import { readRun } from "../orchestrator/read.js";
import { openStore } from "../store/open.js";
import type { ReadFlags } from "./flags.js";
import { openCliStore, type Io } from "./io.js";

export interface OutputFlags extends Omit<ReadFlags, "json"> {
  out?: string;
  format?: string;
  failed?: boolean;
}

/** Where lines go: a stream that may push back (stdout, a file), or a buffer for one upload. */
interface Sink {
  write(text: string): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

const FORMATS = ["jsonl", "csv"] as const;
type Format = (typeof FORMATS)[number];

function streamSink(stream: NodeJS.WritableStream): Sink {
  return {
    async write(text) {
      if (!stream.write(text)) await new Promise<void>((r) => stream.once("drain", () => r()));
    },
    close: async () => undefined,
    abort: async () => undefined,
  };
}

/** A local file, written beside its place and renamed in when whole: never half a file. */
function fileSink(path: string): Sink {
  const tmp = `${path}.${process.pid}.partial`;
  const stream = createWriteStream(tmp);
  const base = streamSink(stream);
  return {
    write: base.write,
    async close() {
      stream.end();
      await finished(stream);
      await rename(tmp, path);
    },
    async abort() {
      stream.destroy();
      await rm(tmp, { force: true });
    },
  };
}

/** A bucket object (`gs://bucket/path/file`), uploaded in one request once the output is whole. */
function objectSink(location: string, cwd: string, format: Format): Sink {
  const slash = location.lastIndexOf("/");
  if (slash <= "gs://".length || slash === location.length - 1) throw new UsageError(`--out: expected gs://bucket/path/to/file, got "${location}"`);
  const chunks: Buffer[] = [];
  return {
    write: async (text) => void chunks.push(Buffer.from(text)),
    async close() {
      const store = await openStore(location.slice(0, slash), cwd);
      await store.put(location.slice(slash + 1), Buffer.concat(chunks), { contentType: format === "csv" ? "text/csv" : "application/x-ndjson" });
    },
    abort: async () => void chunks.splice(0),
  };
}

function sinkFor(out: string | undefined, io: Io, format: Format): Sink {
  if (out === undefined || out === "-") return streamSink(io.stdout);
  if (out.startsWith("gs://")) return objectSink(out, io.cwd, format);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(out)) throw new UsageError(`--out: expected a file path or gs://bucket/path/to/file, got "${out}"`);
  const path = resolve(io.cwd, out);
  return fileSink(path);
}

/** A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
export function csvField(value: unknown): string {
  const text = value === undefined || value === null ? "" : typeof value === "string" ? value : typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const FIXED = ["i", "key"];
const FAILURE_COLUMNS = ["status", "reason", "error", "attempts"];

/** The columns of the outputs' top-level fields, in the order they first appear. */
async function outputColumns(lines: AsyncIterable<string>): Promise<{ fields: string[]; scalar: boolean }> {
  const fields = new Set<string>();
  let scalar = false;
  for await (const line of lines) {
    const { output } = JSON.parse(line) as { output: unknown };
    if (output !== null && typeof output === "object" && !Array.isArray(output)) for (const k of Object.keys(output)) fields.add(k);
    else scalar = true;
  }
  return { fields: [...fields], scalar };
}

export async function outputCommand(runId: string, flags: OutputFlags, io: Io): Promise<number> {
  const format = (flags.format ?? "jsonl") as Format;
  if (!FORMATS.includes(format)) throw new UsageError(`--format: expected one of ${FORMATS.join(", ")}, got "${flags.format}"`);
  const s = await openCliStore(flags, io);
  const run = await readRun(s, runId);
  if (flags.out && !flags.out.startsWith("gs://")) {
    const dir = dirname(resolve(io.cwd, flags.out));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--out: no folder ${dir}`);
  }
  const failed: FailedItemView[] = flags.failed ? await readFailedItems(s, run.value) : [];
  const sink = sinkFor(flags.out, io, format);
  let buf = "";
  const push = async (text: string) => {
    buf += text;
    if (buf.length > 1 << 16) {
      await sink.write(buf);
      buf = "";
    }
  };
  try {
    if (format === "jsonl") {
      for await (const line of mergedOutput(s, runId)) await push(line + "\n");
      for (const f of failed) {
        const { i, key, shard: _s, ...rest } = f;
        await push(JSON.stringify({ i, key, failed: rest }) + "\n");
      }
    } else {
      // Two passes over the parts: the columns first, so that no row is held.
      const { fields, scalar } = await outputColumns(mergedOutput(s, runId));
      const taken = new Set([...FIXED, ...(flags.failed ? FAILURE_COLUMNS : []), ...(scalar ? ["output"] : [])]);
      const names = fields.map((f) => (taken.has(f) ? `output.${f}` : f));
      const header = [...FIXED, ...(scalar ? ["output"] : []), ...names, ...(flags.failed ? FAILURE_COLUMNS : [])];
      await push(header.map(csvField).join(",") + "\r\n");
      for await (const line of mergedOutput(s, runId)) {
        const { i, key, output } = JSON.parse(line) as { i: number; key: string; output: unknown };
        const isObject = output !== null && typeof output === "object" && !Array.isArray(output);
        const o = isObject ? (output as Record<string, unknown>) : {};
        const cells = [i, key, ...(scalar ? [isObject ? undefined : output] : []), ...fields.map((f) => o[f]), ...(flags.failed ? ["ok", "", "", ""] : [])];
        await push(cells.map(csvField).join(",") + "\r\n");
      }
      for (const f of failed) {
        const cells = [f.i, f.key, ...(scalar ? [undefined] : []), ...fields.map(() => undefined), "failed", f.reason, f.error, f.attempts];
        await push(cells.map(csvField).join(",") + "\r\n");
      }
    }
    if (buf) await sink.write(buf);
    await sink.close();
  } catch (e) {
    await sink.abort();
    throw e;
  }
  if (flags.out && flags.out !== "-") io.stderr.write(`run ${runId}: wrote ${format} to ${flags.out}\n`);
  return ExitCode.ok;
}
