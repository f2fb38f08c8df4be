/** Run, shard and execution ids. Ids become store keys and URL segments, so they are validated. */

export const RUN_ID_PATTERN = /^\d{8}-\d{6}-[a-z][a-z0-9-]{0,47}-[0-9a-f]{4}$/;
export const SHARD_ID_PATTERN = /^s\d{6}$/;
/** Shard ids have six digits, so a run holds at most this many shards, reruns included. */
export const MAX_SHARDS = 1_000_000;

/** `20261122-020000-summarize-docs-ab12`: sorts by creation time, names the job, tells runs apart. */
export function newRunId(job: string, now: Date, random: () => number = Math.random): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const stamp = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
  const suffix = Math.floor(random() * 0x10000).toString(16).padStart(4, "0");
  return `${stamp}-${job}-${suffix}`;
}

export function isRunId(value: string): boolean {
  return RUN_ID_PATTERN.test(value);
}

/** Shard ids are zero-padded so that store listings come back in shard order. */
export function shardId(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= MAX_SHARDS) throw new RangeError(`Expected a shard number from 0 to ${MAX_SHARDS - 1}, got ${n}`);
  return `s${String(n).padStart(6, "0")}`;
}

export function shardNumber(id: string): number {
  return Number(id.slice(1));
}

/** Output parts sort by epoch, then by sequence within the epoch. */
export function partName(epoch: number, seq: number): string {
  return `${String(epoch).padStart(6, "0")}-${String(seq).padStart(6, "0")}.jsonl`;
}

export function launchName(n: number): string {
  return String(n).padStart(4, "0");
}
