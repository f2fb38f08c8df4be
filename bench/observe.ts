/**
 * What the benches read from outside shardrun, after (or during) a run: the jobs' append-only
 * execution logs, the fs store's generation files (every write the run made, counted by kind),
 * the run's last commit, and the probe's records of each process (its start and peak RSS).
 * Nothing here asks shardrun's own counters, so a figure cannot flatter the code it measures.
 */
import { existsSync, openSync, readFileSync, readSync, closeSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { z } from "zod";
import { readCheckpoints, readRun } from "../src/orchestrator/read.js";
import { openStore } from "../src/store/open.js";
import { shardId } from "../src/core/ids.js";

// ---------------------------------------------------------------- execution logs

export interface Execution {
  key: string;
  /** ms since the epoch at the start of the execution */
  at: number;
  pid: number;
}

/** Every line of an execution log (bench/jobs/durations.ts writes them). */
export function readExecutions(file: string): Execution[] {
  if (!existsSync(file)) return [];
  const out: Execution[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line) continue;
    const [key, at, pid] = line.split("\t");
    out.push({ key: key!, at: Number(at), pid: Number(pid) });
  }
  return out;
}

export interface ExecutionCounts {
  executions: number;
  distinct: number;
  /** Executions beyond the first of each item. */
  redone: number;
  firstAt: number;
  lastAt: number;
}

export function countExecutions(list: readonly Execution[]): ExecutionCounts {
  const keys = new Set<string>();
  let firstAt = Infinity;
  let lastAt = 0;
  for (const e of list) {
    keys.add(e.key);
    if (e.at < firstAt) firstAt = e.at;
    if (e.at > lastAt) lastAt = e.at;
  }
  return { executions: list.length, distinct: keys.size, redone: list.length - keys.size, firstAt, lastAt };
}

/** Counts the lines of a growing log without reading it again from the start each time. */
export class LogTail {
  readonly #file: string;
  #offset = 0;
  #lines = 0;
  constructor(file: string) {
    this.#file = file;
  }
  lines(): number {
    if (!existsSync(this.#file)) return 0;
    const size = statSync(this.#file).size;
    if (size <= this.#offset) return this.#lines;
    const buf = Buffer.alloc(size - this.#offset);
    const fd = openSync(this.#file, "r");
    try {
      readSync(fd, buf, 0, buf.length, this.#offset);
    } finally {
      closeSync(fd);
    }
    // Count whole lines only: a line being appended is counted when its newline lands.
    const lastNl = buf.lastIndexOf(0x0a);
    if (lastNl < 0) return this.#lines;
    for (let i = 0; i <= lastNl; i++) if (buf[i] === 0x0a) this.#lines++;
    this.#offset += lastNl + 1;
    return this.#lines;
  }
}

// ---------------------------------------------------------------- store writes

export type WriteKind = "checkpoint" | "part" | "task record" | "launch" | "run.json" | "plan" | "index" | "budget" | "bundle" | "other";

/**
 * Writes of every object under the fs store folder, by kind. The fs store never removes a
 * generation's name (fs.ts), so an object's folder holds one numbered file per write it took
 * (deletes included, as tombstones): counting them after the run counts every write, from every
 * process, killed ones included.
 */
export function storeWrites(storeDir: string): { total: number; byKind: Record<WriteKind, number> } {
  const byKind: Record<WriteKind, number> = { checkpoint: 0, part: 0, "task record": 0, launch: 0, "run.json": 0, plan: 0, index: 0, budget: 0, bundle: 0, other: 0 };
  let total = 0;
  const walk = (dir: string, key: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith(".") || e.name === "@tmp") continue;
      if (e.name.endsWith("@")) {
        const objectKey = key + e.name.slice(0, -1);
        const n = readdirSync(join(dir, e.name)).filter((f) => /^\d+$/.test(f)).length;
        byKind[kindOf(objectKey)] += n;
        total += n;
      } else walk(join(dir, e.name), key + e.name + "/");
    }
  };
  walk(storeDir, "");
  return { total, byKind };
}

function kindOf(key: string): WriteKind {
  if (key.startsWith("index/")) return "index";
  if (key.startsWith("bundles/")) return "bundle";
  if (/\/checkpoint\.json$/.test(key)) return "checkpoint";
  if (/\/out\/[^/]+\.jsonl$/.test(key)) return "part";
  if (/\/launches\/\d+\/tasks\//.test(key)) return "task record";
  if (/\/launches\/\d+\/budget\//.test(key)) return "budget";
  if (/\/launches\//.test(key)) return "launch";
  if (/\/run\.json$/.test(key)) return "run.json";
  if (/\/(plan|items)\//.test(key)) return "plan";
  return "other";
}

// ---------------------------------------------------------------- commits

/** ms since the epoch of the run's last checkpoint write (`updatedAt` of the newest checkpoint). */
export async function lastCommitAt(storeDir: string, runId: string): Promise<number> {
  const store = await openStore(storeDir);
  const run = (await readRun(store, runId)).value;
  let last = 0;
  const ids = Array.from({ length: run.plan.shardCount }, (_, n) => shardId(n));
  for (const cp of (await readCheckpoints(store, runId, ids)).values()) if (cp) last = Math.max(last, Date.parse(cp.updatedAt));
  return last;
}

// ---------------------------------------------------------------- the probe

/** What bench/probe.ts records for every node process started with it: a line at start, one at exit. */
export const ProbeRecord = z.object({
  ev: z.enum(["start", "exit"]),
  pid: z.number(),
  /** The process's main module (argv[1]). */
  main: z.string(),
  /** CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_ATTEMPT when the process is a task. */
  task: z.string().optional(),
  attempt: z.string().optional(),
  /** performance.timeOrigin: when the process began, ms since the epoch. */
  startedAt: z.number(),
  /** At exit: when, ms since the epoch. */
  exitAt: z.number().optional(),
  /** Peak resident set size over the process's life, in kB (getrusage); at exit only. */
  maxRssKb: z.number().optional(),
});
export type ProbeRecord = z.infer<typeof ProbeRecord>;

const PROBE = fileURLToPath(new URL("./probe.js", import.meta.url));

/** The environment that makes every node process of a run record itself into `file`. */
export function probeEnv(file: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const preload = `--import=${pathToFileURL(PROBE).href}`;
  return { BENCH_PROBE_FILE: file, NODE_OPTIONS: [env.NODE_OPTIONS, preload].filter(Boolean).join(" ") };
}

export function readProbe(file: string): ProbeRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => ProbeRecord.parse(JSON.parse(l)));
}
