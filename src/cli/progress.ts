/**
 * Progress on a terminal: bars for shards and items with an ETA, redrawn in place. Without a
 * terminal (CI, pipes), a plain line now and then instead.
 */
import type { RunStatus } from "../core/status.js";
import type { ExecutionStatus } from "../launcher/port.js";

export interface ProgressOptions {
  stream: NodeJS.WriteStream;
  /** @default stream.isTTY */
  tty?: boolean;
  now?: () => number;
}

export function bar(done: number, total: number, width = 24): string {
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const full = Math.round(frac * width);
  return `[${"#".repeat(full)}${"-".repeat(width - full)}] ${String(Math.floor(frac * 100)).padStart(3)}%`;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "--";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export class Progress {
  readonly #o: Required<ProgressOptions>;
  readonly #start: number;
  #lines = 0;
  #lastPlain = 0;
  #lastText = "";

  constructor(options: ProgressOptions) {
    this.#o = { tty: options.stream.isTTY === true, now: Date.now, ...options };
    this.#start = this.#o.now();
  }

  update(status: RunStatus, execution: ExecutionStatus | null): void {
    const { items, shards } = status;
    const settled = items.succeeded + items.failed;
    const elapsed = this.#o.now() - this.#start;
    const eta = settled > 0 && items.pending > 0 ? (elapsed / settled) * items.pending : NaN;
    const tasks = execution ? `tasks ${execution.running} running, ${execution.succeeded}/${execution.taskCount} done${execution.failed ? `, ${execution.failed} failed` : ""}` : "";
    const lines = [
      `shards ${bar(shards.done, shards.total)} ${shards.done}/${shards.total}`,
      `items  ${bar(settled, items.total)} ${items.succeeded} ok, ${items.failed} failed, ${items.pending} left  ETA ${items.pending ? formatDuration(eta) : "0s"}`,
      `${tasks}  elapsed ${formatDuration(elapsed)}`,
    ];
    if (this.#o.tty) {
      const up = this.#lines ? `\x1b[${this.#lines}A` : "";
      this.#o.stream.write(up + lines.map((l) => `\x1b[2K${l}\n`).join(""));
      this.#lines = lines.length;
      return;
    }
    const text = `${shards.done}/${shards.total} shards, ${items.succeeded} ok, ${items.failed} failed, ${items.pending} left`;
    const now = this.#o.now();
    if (text !== this.#lastText && now - this.#lastPlain >= 2000) {
      this.#o.stream.write(`progress: ${text}, elapsed ${formatDuration(elapsed)}\n`);
      this.#lastPlain = now;
      this.#lastText = text;
    }
  }
}
