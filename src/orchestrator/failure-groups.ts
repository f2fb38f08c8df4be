/**
 * Failed items grouped by what went wrong: the failure reason and the error message with what
 * differs from item to item (numbers, ids, hashes) taken out. A run of 5,000 items whose 150
 * failures have two causes reads as two groups with their counts, a few sample keys and the
 * first stack trace, not as 150 rows. The CLI (`shardrun failures`) and the dashboard show the
 * same groups.
 */
import type { FailedItemView } from "../core/status.js";

export interface FailureGroup {
  reason: string;
  /** The error's first line with item-specific parts replaced: `item <n> fails`. */
  signature: string;
  count: number;
  /** Keys of the first failed items of the group (by item index). */
  sampleKeys: string[];
  /** The first failed item of the group, whole: its exact error, stack and last log line. */
  first: FailedItemView;
}

export interface GroupFailuresOptions {
  /**
   * Sample keys kept per group.
   * @default 5
   */
  samples?: number;
}

// Order matters: a UUID holds hex runs and numbers, a long hex run holds numbers.
const UUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;
/** Hashes, request and trace ids: 8 or more hex digits with at least one digit among them. */
const HEX = /\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b/gi;
/** A number standing on its own (`item 13`, `503`, `1.5s`), not one inside a word (`s3`, `utf8`). */
const NUMBER = /(?<![\w.])\d+(?:\.\d+)?/g;
/** Signatures longer than this are cut: a message that embeds a whole document is still one group. */
const MAX_SIGNATURE = 300;

/**
 * The error message as a group key: its first line, with ids, hashes and numbers replaced by
 * `<id>`, `<hex>` and `<n>`, so that `item 13 fails` and `item 27 fails` are one error.
 */
export function errorSignature(message: string): string {
  const line = (message.split("\n", 1)[0] ?? "").trim();
  const s = line.replace(UUID, "<id>").replace(HEX, "<hex>").replace(NUMBER, "<n>");
  return s.length > MAX_SIGNATURE ? `${s.slice(0, MAX_SIGNATURE)}…` : s;
}

/**
 * Groups failed items by reason and error signature: the largest group first (then by reason and
 * signature, so that the order is stable). Items are taken in index order, so the samples and the
 * first item are the lowest-numbered ones.
 */
export function groupFailures(items: readonly FailedItemView[], options: GroupFailuresOptions = {}): FailureGroup[] {
  const samples = options.samples ?? 5;
  if (!Number.isInteger(samples) || samples < 0) throw new TypeError(`Expected \`samples\` to be a whole number from 0 up, got ${samples}`);
  const groups = new Map<string, FailureGroup>();
  for (const item of [...items].sort((a, b) => a.i - b.i)) {
    const signature = errorSignature(item.error);
    const id = `${item.reason}\u0000${signature}`;
    const g = groups.get(id);
    if (!g) {
      groups.set(id, { reason: item.reason, signature, count: 1, sampleKeys: samples ? [item.key] : [], first: item });
      continue;
    }
    g.count++;
    if (g.sampleKeys.length < samples) g.sampleKeys.push(item.key);
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || cmp(a.reason, b.reason) || cmp(a.signature, b.signature));
}

/** Failed items counted by reason (`{ error: 4, non_retriable: 2 }`). */
export function countByReason(items: readonly FailedItemView[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of items) out[f.reason] = (out[f.reason] ?? 0) + 1;
  return out;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
