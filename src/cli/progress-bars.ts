/**
 * Progress of a run on the terminal: bars for shards and items with an ETA, and a line of tasks,
 * drawn by cli-progress in place. Without a terminal (CI, pipes) no escape codes at all: a plain
 * line now and then instead. Colours (picocolors) only on a terminal and never with NO_COLOR.
 */
import { MultiBar, type SingleBar } from "cli-progress";
import type { RunStatus } from "../core/status.js";
import type { ExecutionStatus } from "../launcher/port.js";
import { colorsFor, formatDuration } from "./format.js";

export interface ProgressOptions {
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** @default process.env (NO_COLOR, FORCE_COLOR) */
  env?: NodeJS.ProcessEnv;
  /** @default Date.now */
  now?: () => number;
  /** Shortest gap between two plain lines (no terminal), in ms. @default 2000 */
  plainEveryMs?: number;
}

export class ProgressBars {
  readonly #o: ProgressOptions & { now: () => number; plainEveryMs: number };
  readonly #start: number;
  readonly #tty: boolean;
  #multi: MultiBar | undefined;
  #bars: { shards: SingleBar; items: SingleBar; tasks: SingleBar } | undefined;
  #lastPlain = -Infinity;
  #lastText = "";

  constructor(options: ProgressOptions) {
    this.#o = { now: Date.now, plainEveryMs: 2000, ...options };
    this.#start = this.#o.now();
    this.#tty = options.stream.isTTY === true;
  }

  update(status: RunStatus, execution: ExecutionStatus | null): void {
    const { items, shards } = status;
    const settled = items.succeeded + items.failed;
    const elapsed = this.#o.now() - this.#start;
    const tasks = execution ? `tasks ${execution.running} running, ${execution.succeeded}/${execution.taskCount} done${execution.failed ? `, ${execution.failed} failed` : ""}` : "tasks starting";
    if (!this.#tty) {
      const text = `${shards.done}/${shards.total} shards, ${items.succeeded} ok, ${items.failed} failed, ${items.pending} left`;
      const now = this.#o.now();
      if (text !== this.#lastText && now - this.#lastPlain >= this.#o.plainEveryMs) {
        this.#o.stream.write(`progress: ${text}, elapsed ${formatDuration(elapsed)}\n`);
        this.#lastPlain = now;
        this.#lastText = text;
      }
      return;
    }
    const bars = this.#bars ?? this.#create(status);
    bars.shards.setTotal(Math.max(1, shards.total));
    bars.shards.update(shards.done);
    bars.items.setTotal(Math.max(1, items.total));
    bars.items.update(settled, { ok: items.succeeded, failed: items.failed, left: items.pending });
    bars.tasks.update(0, { tasks, elapsed: formatDuration(elapsed) });
  }

  /** Draws the last state and gives the terminal back (cursor shown again). */
  stop(): void {
    this.#multi?.stop();
    this.#multi = undefined;
    this.#bars = undefined;
  }

  #create(status: RunStatus) {
    const c = colorsFor(this.#o.stream, this.#o.env ?? process.env);
    const multi = new MultiBar({
      stream: this.#o.stream,
      hideCursor: true,
      clearOnComplete: false,
      // Our own SIGINT handler stops the bars and says how to watch on.
      gracefulExit: false,
      barCompleteChar: "#",
      barIncompleteChar: "-",
      barsize: 24,
      autopadding: true,
      etaBuffer: 50,
    });
    const bar = `${c.green("{bar}")}`;
    const shards = multi.create(Math.max(1, status.shards.total), 0, {}, { format: `shards ${bar} {percentage}% {value}/{total}` });
    const items = multi.create(Math.max(1, status.items.total), 0, { ok: 0, failed: 0, left: status.items.total }, {
      format: `items  ${bar} {percentage}% {ok} ok, ${c.red("{failed}")} failed, {left} left  ETA {eta_formatted}`,
    });
    const tasks = multi.create(1, 0, { tasks: "", elapsed: "0s" }, { format: c.dim("{tasks}  elapsed {elapsed}") });
    this.#multi = multi;
    this.#bars = { shards, items, tasks };
    return this.#bars;
  }
}
