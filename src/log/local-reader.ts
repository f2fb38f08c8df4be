/**
 * Task logs of local executions: the local launcher's supervisor appends each task's stdout and
 * stderr (every attempt) to `<stateDir>/<execution>/task-<index>.log`. Read whole, or followed
 * (what was appended since the last look, whole lines only) while the run is live.
 */
import { existsSync, readdirSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { byTime, matchesFilter, parseLogLine, type LogFilter, type LogRecord } from "./records.js";

export interface LocalLogOptions {
  /** The local launcher's state folder (`<store>/.executions`). */
  stateDir: string;
  /** The run's local executions (names as the launch records hold them), oldest first; asked again on each look when following. */
  executions: () => Promise<string[]>;
}

export interface FollowOptions {
  /** Keep reading what is appended until `done` says the run ended (then one last look). @default false */
  follow?: boolean;
  /** Whether the run has ended (no live launch). Asked between looks when following. */
  done?: () => Promise<boolean>;
  /** Between looks when following. @default 500 */
  pollMs?: number;
  signal?: AbortSignal;
}

interface FileState {
  path: string;
  name: string;
  labels: Record<string, string>;
  offset: number;
  /** Bytes of a line not yet ended. */
  carry: string;
  /** Time of the last structured line: raw lines (a crash's output) are placed after it. */
  lastTime: string;
}

const shortName = (execution: string) => execution.slice(execution.lastIndexOf("/") + 1);

function taskFiles(stateDir: string, execution: string, known: Map<string, FileState>): FileState[] {
  const name = shortName(execution);
  const dir = join(stateDir, name);
  if (!existsSync(dir)) return [];
  const out: FileState[] = [];
  for (const f of readdirSync(dir)) {
    const m = /^task-(\d+)\.log$/.exec(f);
    if (!m) continue;
    const path = join(dir, f);
    let st = known.get(path);
    if (!st) {
      st = { path, name: `${name}/task-${m[1]}`, labels: { task: m[1]! }, offset: 0, carry: "", lastTime: "" };
      known.set(path, st);
    }
    out.push(st);
  }
  return out;
}

/** What was appended to a file since the last look, as records (whole lines only). */
async function readNew(st: FileState): Promise<LogRecord[]> {
  const fh = await open(st.path, "r");
  try {
    const size = (await fh.stat()).size;
    if (size <= st.offset) return [];
    const buf = Buffer.alloc(size - st.offset);
    const { bytesRead } = await fh.read(buf, 0, buf.length, st.offset);
    st.offset += bytesRead;
    const text = st.carry + buf.subarray(0, bytesRead).toString("utf8");
    const lines = text.split("\n");
    st.carry = lines.pop() ?? "";
    const out: LogRecord[] = [];
    for (const line of lines) {
      const r = parseLogLine(line, { labels: st.labels, name: st.name, time: st.lastTime });
      if (!r) continue;
      if (r.severity !== "DEFAULT" || r.time) st.lastTime = r.time;
      out.push(r);
    }
    return out;
  } finally {
    await fh.close();
  }
}

/** The run's task log lines that the filter asks for, oldest first; with `follow`, on as they come. */
export async function* readLocalLogs(o: LocalLogOptions, filter: LogFilter, f: FollowOptions = {}): AsyncGenerator<LogRecord> {
  const known = new Map<string, FileState>();
  const look = async (): Promise<LogRecord[]> => {
    const batch: LogRecord[] = [];
    for (const ex of await o.executions()) {
      for (const st of taskFiles(o.stateDir, ex, known)) {
        if (filter.task !== undefined && st.labels.task !== String(filter.task)) continue;
        for (const r of await readNew(st)) if (matchesFilter(r, filter)) batch.push(r);
      }
    }
    return batch.sort(byTime);
  };
  yield* await look();
  if (!f.follow) return;
  for (;;) {
    if (f.signal?.aborted) return;
    const ended = (await f.done?.()) ?? false;
    await sleep(f.pollMs ?? 500, undefined, f.signal ? { signal: f.signal } : {}).catch(() => undefined);
    yield* await look();
    if (ended) return;
  }
}
