/**
 * Failed items grouped by reason and error, for `shardrun failures` and the dashboard: a hundred
 * failures with two causes read as two groups, with counts, sample keys and the first stack.
 *
 * Messages are grouped by their shape, not their text, so that the numbers and ids in a message
 * do not split one cause into a group per item. The rule (`messageShape`):
 * - the item's own key becomes `<key>`;
 * - UUIDs, and words of 6 or more characters mixing letters and digits (request ids, hashes,
 *   `s000012`), become `<id>`;
 * - numbers (with a sign, decimals or an exponent) become `<n>`;
 * - quoted text ("…", '…', `…`) becomes `"…"`;
 * - runs of white space become one space; the shape is cut at 300 characters.
 * Pure: no I/O, the same shapes on every reader.
 */
import type { FailedItemView } from "../core/status.js";

/** Sample keys kept per group. */
export const SAMPLE_KEYS = 5;
const SHAPE_CHARS = 300;

export interface FailureGroup {
  reason: string;
  /** The message with its numbers, ids and quoted values masked (see `messageShape`). */
  shape: string;
  count: number;
  /** The first item's message as it was. */
  example: string;
  /** Keys of the first items of the group (at most SAMPLE_KEYS). */
  sampleKeys: string[];
  /** The first stack trace among the group's items. */
  stack?: string;
  /** The last log line of the first item that left one. */
  lastLog?: string;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A message with what varies from item to item masked, so that one cause gives one shape. */
export function messageShape(message: string, key?: string): string {
  let s = message;
  if (key && key.length >= 2) s = s.replace(new RegExp(escapeRegExp(key), "g"), "<key>");
  s = s
    .replace(/(["'`])(?:(?!\1)[^\\\n]|\\.)*\1/g, '"…"')
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, "<id>")
    // A word of letters and digits mixed (not a plain word, not a plain number).
    .replace(/\b(?=[A-Za-z_-]*\d)(?=[\d_-]*[A-Za-z])[A-Za-z0-9_-]{6,}\b/g, "<id>")
    .replace(/[-+]?\b\d+(?:[.,]\d+)*(?:e[-+]?\d+)?\b/gi, "<n>")
    .replace(/\s+/g, " ")
    .trim();
  return s.length > SHAPE_CHARS ? `${s.slice(0, SHAPE_CHARS)}…` : s;
}

/**
 * Groups failed items by reason and message shape, largest group first (ties: the group whose
 * first item comes first). Each group keeps the first message, sample keys and stack it met.
 */
export function groupFailures(items: readonly FailedItemView[]): FailureGroup[] {
  const groups = new Map<string, FailureGroup & { first: number }>();
  for (const f of items) {
    const shape = messageShape(f.error, f.key);
    const id = `${f.reason}\u0000${shape}`;
    let g = groups.get(id);
    if (!g) {
      g = { reason: f.reason, shape, count: 0, example: f.error, sampleKeys: [], first: f.i };
      groups.set(id, g);
    }
    g.count++;
    if (g.sampleKeys.length < SAMPLE_KEYS) g.sampleKeys.push(f.key);
    if (g.stack === undefined && f.stack) g.stack = f.stack;
    if (g.lastLog === undefined && f.lastLog) g.lastLog = f.lastLog;
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.first - b.first).map(({ first: _f, ...g }) => g);
}

/** Only failures of these reasons (all when none are given). */
export function byReasons(items: readonly FailedItemView[], reasons?: readonly string[]): FailedItemView[] {
  if (!reasons?.length) return [...items];
  const wanted = new Set(reasons);
  return items.filter((f) => wanted.has(f.reason));
}
