/**
 * A run's merged output as text, for `shardrun output` and anything else that exports it (a
 * download): JSONL, one `{"i","key","output"}` line per succeeded item, or CSV; with `failed`,
 * the dead letter too.
 *
 * CSV: one row per item, columns `i`, `key`, then the top-level fields of the outputs in the
 * order they first appear (a field named like a fixed column gets an `output.` prefix). Nested
 * objects and arrays are written as JSON text in their cell; an output that is not an object goes
 * in one `output` column; a field an item lacks is an empty cell. With `failed`, the columns
 * `status` (ok or failed), `reason`, `error` and `attempts` follow, and failed items are rows too.
 * Rows end in CRLF (RFC 4180). The parts are read twice for CSV (the columns first), so that no
 * row is held.
 */
import type { RunRecord } from "../core/model.js";
import { readFailedItems } from "./drive.js";
import { mergedOutput } from "./output.js";

export const OUTPUT_FORMATS = ["jsonl", "csv"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface FormatOptions {
  /** @default "jsonl" */
  format?: OutputFormat;
  /** Add the failed items (the dead letter). @default false */
  failed?: boolean;
}

/** A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
export function csvField(value: unknown): string {
  const text = value === undefined || value === null ? "" : typeof value === "string" ? value : typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const FIXED = ["i", "key"];
const FAILURE_COLUMNS = ["status", "reason", "error", "attempts"];
const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** The columns of the outputs' top-level fields, in the order they first appear. */
async function outputColumns(lines: AsyncIterable<string>): Promise<{ fields: string[]; scalar: boolean }> {
  const fields = new Set<string>();
  let scalar = false;
  for await (const line of lines) {
    const { output } = JSON.parse(line) as { output: unknown };
    if (isRecord(output)) for (const k of Object.keys(output)) fields.add(k);
    else scalar = true;
  }
  return { fields: [...fields], scalar };
}

/** The run's output as text, a line (or row) at a time. Throws DamagedObject on a damaged part, before its first line. */
export async function* formatOutput(store: Parameters<typeof mergedOutput>[0], run: RunRecord, o: FormatOptions = {}): AsyncGenerator<string> {
  const failed = o.failed ? await readFailedItems(store, run) : [];
  if ((o.format ?? "jsonl") === "jsonl") {
    for await (const line of mergedOutput(store, run.runId)) yield line + "\n";
    for (const f of failed) {
      const { i, key, shard: _s, ...rest } = f;
      yield JSON.stringify({ i, key, failed: rest }) + "\n";
    }
    return;
  }
  const { fields, scalar } = await outputColumns(mergedOutput(store, run.runId));
  const taken = new Set([...FIXED, ...(o.failed ? FAILURE_COLUMNS : []), ...(scalar ? ["output"] : [])]);
  const names = fields.map((f) => (taken.has(f) ? `output.${f}` : f));
  yield [...FIXED, ...(scalar ? ["output"] : []), ...names, ...(o.failed ? FAILURE_COLUMNS : [])].map(csvField).join(",") + "\r\n";
  for await (const line of mergedOutput(store, run.runId)) {
    const { i, key, output } = JSON.parse(line) as { i: number; key: string; output: unknown };
    const fieldsOf = isRecord(output) ? output : {};
    const cells = [i, key, ...(scalar ? [isRecord(output) ? undefined : output] : []), ...fields.map((f) => fieldsOf[f]), ...(o.failed ? ["ok", "", "", ""] : [])];
    yield cells.map(csvField).join(",") + "\r\n";
  }
  for (const f of failed) {
    const cells = [f.i, f.key, ...(scalar ? [undefined] : []), ...fields.map(() => undefined), "failed", f.reason, f.error, f.attempts];
    yield cells.map(csvField).join(",") + "\r\n";
  }
}
