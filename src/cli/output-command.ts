/**
 * `shardrun output`: the merged outputs (each succeeded item once, protocol 2), as JSONL or CSV
 * (orchestrator/output-format.ts), to stdout, a file or a bucket object, with the dead letter
 * when asked.
 */
import { createWriteStream, existsSync, statSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { finished } from "node:stream/promises";
import { ExitCode, UsageError } from "../core/errors.js";
import { OUTPUT_FORMATS, formatOutput, type OutputFormat } from "../orchestrator/output-format.js";
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
function objectSink(location: string, cwd: string, format: OutputFormat): Sink {
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

function sinkFor(out: string | undefined, io: Io, format: OutputFormat): Sink {
  if (out === undefined || out === "-") return streamSink(io.stdout);
  if (out.startsWith("gs://")) return objectSink(out, io.cwd, format);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(out)) throw new UsageError(`--out: expected a file path or gs://bucket/path/to/file, got "${out}"`);
  const path = resolve(io.cwd, out);
  return fileSink(path);
}

export async function outputCommand(runId: string, flags: OutputFlags, io: Io): Promise<number> {
  const format = (flags.format ?? "jsonl") as OutputFormat;
  if (!OUTPUT_FORMATS.includes(format)) throw new UsageError(`--format: expected one of ${OUTPUT_FORMATS.join(", ")}, got "${flags.format}"`);
  const s = await openCliStore(flags, io);
  const run = await readRun(s, runId);
  if (flags.out && !flags.out.startsWith("gs://")) {
    const dir = dirname(resolve(io.cwd, flags.out));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--out: no folder ${dir}`);
  }
  const sink = sinkFor(flags.out, io, format);
  let buf = "";
  try {
    for await (const text of formatOutput(s, run.value, { format, failed: flags.failed === true })) {
      buf += text;
      if (buf.length > 1 << 16) {
        await sink.write(buf);
        buf = "";
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
