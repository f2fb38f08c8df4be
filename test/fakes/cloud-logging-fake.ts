/**
 * A wire-level fake of Cloud Logging's read side: an in-process gRPC server built from the protos
 * `@google-cloud/logging` ships (through `@google-cloud/logging-api`), answering
 * `google.logging.v2.LoggingServiceV2/ListLogEntries`, so that the real client library (request
 * encoding, Struct payloads, timestamps, paging) is what `shardrun logs` talks to.
 *
 * Entries get in the way Cloud Run's logging agent puts them there: `ingestTaskLog` takes a line a
 * task wrote and, for a structured line, moves `severity`, `time` and
 * `logging.googleapis.com/labels` out of the payload into the entry (the labels beside Cloud
 * Run's own `run.googleapis.com/execution_name`, `…/task_index`, `…/task_attempt`), with resource
 * type `cloud_run_job`; any other line becomes a `textPayload` entry.
 *
 * It refuses what the API documents refusing, so that code cannot lean on leniency:
 * - no `resourceNames` (required), or a project other than its own (PERMISSION_DENIED);
 * - `pageSize` above 1,000 or negative; an `orderBy` other than "timestamp asc" / "timestamp desc";
 * - a filter over 20,000 characters, or one it cannot parse (the Logging query language: field
 *   comparisons with = != > >= < <= and :, AND (also implied by a line break or a space), OR
 *   (which binds tighter than AND, as documented), NOT, parentheses, and value lists
 *   `field=("a" OR "b")`); a comparison on a field LogEntry does not have;
 * - more than `readsPerMinute` requests in a minute (the project's read quota): RESOURCE_EXHAUSTED.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { grpc, protobuf } from "google-gax";
import { protoServiceDefinition, shutdownServer, type Plain } from "./grpc-service.js";

const require = createRequire(import.meta.url);
const root = protobuf.Root.fromJSON(JSON.parse(readFileSync(join(dirname(require.resolve("@google-cloud/logging-api")), "../protos/protos.json"), "utf8")));
root.resolveAll();
const SERVICE = "google.logging.v2.LoggingServiceV2";
const toObject = { longs: String, enums: String } as const;
const LABELS_KEY = "logging.googleapis.com/labels";
const LEVELS: Record<string, number> = { DEFAULT: 0, DEBUG: 100, INFO: 200, NOTICE: 300, WARNING: 400, ERROR: 500, CRITICAL: 600, ALERT: 700, EMERGENCY: 800 };
const ENTRY_FIELDS = new Set(["logName", "resource", "textPayload", "jsonPayload", "timestamp", "receiveTimestamp", "severity", "insertId", "labels", "trace", "spanId"]);

class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

/** A stored entry, in plain form (the wire form is made when answering). */
interface StoredEntry {
  logName: string;
  resource: { type: string; labels: Record<string, string> };
  timestamp: string;
  severity: string;
  insertId: string;
  labels: Record<string, string>;
  jsonPayload?: Record<string, unknown>;
  textPayload?: string;
}

// ---------------------------------------------------------------- the query language (a subset)

type Node =
  | { kind: "and" | "or"; parts: Node[] }
  | { kind: "not"; part: Node }
  | { kind: "cmp"; path: string[]; op: string; values: string[] };

function tokenize(filter: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < filter.length) {
    const ch = filter[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (ch === '"') {
      let j = i + 1;
      let text = "";
      while (j < filter.length && filter[j] !== '"') {
        if (filter[j] === "\\") j++;
        text += filter[j] ?? "";
        j++;
      }
      if (j >= filter.length) throw new StatusError(grpc.status.INVALID_ARGUMENT, `Unparseable filter: unterminated string at ${i}`);
      tokens.push(`"${text}`); // a leading quote marks a string token
      i = j + 1;
      continue;
    }
    const two = filter.slice(i, i + 2);
    if ([">=", "<=", "!=", "=~", "!~"].includes(two)) {
      tokens.push(two);
      i += 2;
      continue;
    }
    if ("()=<>:.".includes(ch)) {
      tokens.push(ch);
      i++;
      continue;
    }
    let j = i;
    while (j < filter.length && !/[\s()=<>:!."]/.test(filter[j]!)) j++;
    if (j === i) throw new StatusError(grpc.status.INVALID_ARGUMENT, `Unparseable filter: unexpected "${ch}" at ${i}`);
    tokens.push(filter.slice(i, j));
    i = j;
  }
  return tokens;
}

function parseFilter(filter: string): Node | null {
  const t = tokenize(filter);
  let p = 0;
  const peek = () => t[p];
  const fail = (what: string): never => {
    throw new StatusError(grpc.status.INVALID_ARGUMENT, `Unparseable filter: ${what} at token ${p} (${t[p] ?? "end"})`);
  };
  const name = (tok: string | undefined) => (tok === undefined ? fail("a field name expected") : tok.startsWith('"') ? tok.slice(1) : tok);
  const value = (): string => {
    const tok = t[p++];
    if (tok === undefined || "()=<>:".includes(tok) || tok === "AND" || tok === "OR") return fail("a value expected");
    return tok.startsWith('"') ? tok.slice(1) : tok;
  };
  // Documented precedence: NOT, then OR, then AND.
  const and = (): Node => {
    const parts = [or()];
    while (p < t.length && peek() !== ")") {
      if (peek() === "AND") p++;
      parts.push(or());
    }
    return parts.length === 1 ? parts[0]! : { kind: "and", parts };
  };
  const or = (): Node => {
    const parts = [not()];
    while (peek() === "OR") {
      p++;
      parts.push(not());
    }
    return parts.length === 1 ? parts[0]! : { kind: "or", parts };
  };
  const not = (): Node => {
    if (peek() === "NOT") {
      p++;
      return { kind: "not", part: not() };
    }
    return primary();
  };
  const primary = (): Node => {
    if (peek() === "(") {
      p++;
      const inner = and();
      if (t[p++] !== ")") fail('")" expected');
      return inner;
    }
    const path = [name(t[p++])];
    while (peek() === ".") {
      p++;
      path.push(name(t[p++]));
    }
    if (!ENTRY_FIELDS.has(path[0]!)) throw new StatusError(grpc.status.INVALID_ARGUMENT, `Unparseable filter: LogEntry has no field "${path[0]}"`);
    const op = t[p++];
    if (op === undefined || !["=", "!=", ">", ">=", "<", "<=", ":"].includes(op)) return fail("a comparison operator expected");
    if (peek() === "(") {
      p++;
      const values = [value()];
      while (peek() === "OR") {
        p++;
        values.push(value());
      }
      if (t[p++] !== ")") fail('")" expected');
      return { kind: "cmp", path, op, values };
    }
    return { kind: "cmp", path, op, values: [value()] };
  };
  if (!t.length) return null;
  const node = and();
  if (p < t.length) fail("unexpected token");
  return node;
}

function fieldOf(e: StoredEntry, path: string[]): unknown {
  let v: unknown = e;
  for (const k of path) v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

function compare(path: string[], actual: unknown, op: string, expected: string): boolean {
  if (actual === undefined || actual === null) return op === "!=";
  if (path[0] === "timestamp") {
    const a = Date.parse(String(actual));
    const b = Date.parse(expected);
    if (Number.isNaN(b)) throw new StatusError(grpc.status.INVALID_ARGUMENT, `Unparseable filter: "${expected}" is not a timestamp`);
    return op === "=" ? a === b : op === "!=" ? a !== b : op === ">" ? a > b : op === ">=" ? a >= b : op === "<" ? a < b : op === "<=" ? a <= b : String(actual).includes(expected);
  }
  if (path[0] === "severity") {
    const a = LEVELS[String(actual)] ?? 0;
    const b = LEVELS[expected.toUpperCase()] ?? Number(expected);
    return op === "=" ? a === b : op === "!=" ? a !== b : op === ">" ? a > b : op === ">=" ? a >= b : op === "<" ? a < b : a <= b;
  }
  const a = typeof actual === "string" ? actual : JSON.stringify(actual);
  if (op === ":") return a.toLowerCase().includes(expected.toLowerCase());
  return op === "=" ? a === expected : op === "!=" ? a !== expected : op === ">" ? a > expected : op === ">=" ? a >= expected : op === "<" ? a < expected : a <= expected;
}

function matches(e: StoredEntry, n: Node): boolean {
  switch (n.kind) {
    case "and":
      return n.parts.every((x) => matches(e, x));
    case "or":
      return n.parts.some((x) => matches(e, x));
    case "not":
      return !matches(e, n.part);
    case "cmp":
      return n.values.some((v) => compare(n.path, fieldOf(e, n.path), n.op, v));
  }
}

// ---------------------------------------------------------------- wire forms

function toValue(v: unknown): Plain {
  if (v === null || v === undefined) return { nullValue: "NULL_VALUE" };
  if (typeof v === "number") return { numberValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  if (typeof v === "string") return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v as Record<string, unknown>) };
}

function toStruct(o: Record<string, unknown>): Plain {
  return { fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, toValue(v)])) };
}

const wireTime = (iso: string) => {
  const ms = Date.parse(iso);
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
};

function wireEntry(e: StoredEntry): Plain {
  return {
    logName: e.logName,
    resource: e.resource,
    timestamp: wireTime(e.timestamp),
    receiveTimestamp: wireTime(e.timestamp),
    severity: e.severity,
    insertId: e.insertId,
    labels: e.labels,
    ...(e.jsonPayload ? { jsonPayload: toStruct(e.jsonPayload) } : { textPayload: e.textPayload ?? "" }),
  };
}

export interface CloudLoggingFakeOptions {
  /** @default "fake-project" */
  project?: string;
  /** @default "europe-west1" */
  region?: string;
  /** entries.list requests allowed in a rolling minute (the project's read quota). @default 60 */
  readsPerMinute?: number;
}

/** Where a task line came from: what Cloud Run's agent knows about the container that wrote it. */
export interface TaskLogSource {
  job: string;
  execution: string;
  taskIndex: number;
  attempt: number;
  /** When a line carries no time of its own. @default now */
  time?: string;
  /** @default "stderr" */
  stream?: "stdout" | "stderr";
}

export class CloudLoggingFake {
  readonly project: string;
  readonly region: string;
  /** Every ListLogEntries request, decoded. */
  readonly requests: Plain[] = [];
  readonly #entries: StoredEntry[] = [];
  readonly #server = new grpc.Server();
  readonly #readsPerMinute: number;
  readonly #reads: number[] = [];
  #port = 0;
  #seq = 0;
  /** Bytes of each task log file shipped so far. */
  readonly #shipped = new Map<string, number>();

  private constructor(o: CloudLoggingFakeOptions) {
    this.project = o.project ?? "fake-project";
    this.region = o.region ?? "europe-west1";
    this.#readsPerMinute = o.readsPerMinute ?? 60;
  }

  static async start(o: CloudLoggingFakeOptions = {}): Promise<CloudLoggingFake> {
    const fake = new CloudLoggingFake(o);
    fake.#server.addService(protoServiceDefinition(root, SERVICE, ["ListLogEntries"], toObject), {
      ListLogEntries: (call: grpc.ServerUnaryCall<Plain, Plain>, callback: grpc.sendUnaryData<Plain>) => {
        try {
          callback(null, fake.#list(call.request));
        } catch (e) {
          if (e instanceof StatusError) callback({ code: e.code, details: e.message });
          else callback({ code: grpc.status.INTERNAL, details: String(e) });
        }
      },
    });
    fake.#port = await new Promise<number>((resolve, reject) =>
      fake.#server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))),
    );
    return fake;
  }

  get port(): number {
    return this.#port;
  }

  /** `SHARDRUN_CLOUD_LOGGING_ENDPOINT` for this server. */
  get endpoint(): string {
    return `127.0.0.1:${this.#port}`;
  }

  get size(): number {
    return this.#entries.length;
  }

  /** One line a Cloud Run job's task wrote, as Cloud Run's logging agent stores it. */
  ingestTaskLog(line: string, from: TaskLogSource): void {
    if (!line.trim()) return;
    const runLabels = {
      "run.googleapis.com/execution_name": from.execution,
      "run.googleapis.com/task_index": String(from.taskIndex),
      "run.googleapis.com/task_attempt": String(from.attempt),
    };
    const base = {
      logName: `projects/${this.project}/logs/run.googleapis.com%2F${from.stream ?? "stderr"}`,
      resource: { type: "cloud_run_job", labels: { job_name: from.job, location: this.region, project_id: this.project } },
      insertId: `${(++this.#seq).toString(36).padStart(8, "0")}`,
    };
    let parsed: unknown;
    try {
      parsed = line.startsWith("{") ? JSON.parse(line) : undefined;
    } catch {
      parsed = undefined;
    }
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      const { severity, time, [LABELS_KEY]: labels, ...payload } = parsed as Record<string, unknown>;
      this.#entries.push({
        ...base,
        timestamp: typeof time === "string" ? time : (from.time ?? new Date().toISOString()),
        severity: typeof severity === "string" && severity in LEVELS ? severity : "DEFAULT",
        labels: { ...(labels && typeof labels === "object" ? (labels as Record<string, string>) : {}), ...runLabels },
        jsonPayload: payload,
      });
    } else {
      this.#entries.push({ ...base, timestamp: from.time ?? new Date().toISOString(), severity: "DEFAULT", labels: runLabels, textPayload: line });
    }
  }

  /**
   * What the tasks of Cloud Run executions wrote so far, shipped as the agent ships it: for an
   * execution the Cloud Run fake started on a local launcher, the task log files in that
   * launcher's state folder (`<stateDir>/<execution id>/task-N.log`). Lines already shipped are
   * not shipped again. The attempt is the one each structured line names.
   */
  shipTaskLogs(stateDir: string, executions: readonly string[]): number {
    let shipped = 0;
    for (const full of executions) {
      const job = /\/jobs\/([^/]+)\//.exec(full)?.[1] ?? "unknown";
      const id = full.slice(full.lastIndexOf("/") + 1);
      const dir = join(stateDir, id);
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir)) {
        const m = /^task-(\d+)\.log$/.exec(f);
        if (!m) continue;
        const path = join(dir, f);
        const text = readFileSync(path, "utf8");
        const done = this.#shipped.get(path) ?? 0;
        const end = text.lastIndexOf("\n") + 1;
        if (end <= done) continue;
        let attempt = 0;
        for (const line of text.slice(done, end).split("\n")) {
          const labelled = /"attempt":"(\d+)"/.exec(line);
          if (labelled) attempt = Number(labelled[1]);
          this.ingestTaskLog(line, { job, execution: id, taskIndex: Number(m[1]), attempt });
          if (line.trim()) shipped++;
        }
        this.#shipped.set(path, end);
      }
    }
    return shipped;
  }

  #list(req: Plain): Plain {
    this.requests.push(req);
    const now = Date.now();
    while (this.#reads.length && this.#reads[0]! <= now - 60_000) this.#reads.shift();
    if (this.#reads.length >= this.#readsPerMinute) {
      throw new StatusError(grpc.status.RESOURCE_EXHAUSTED, `Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'logging.googleapis.com' for consumer 'project_number:${this.project}'.`);
    }
    this.#reads.push(now);
    const names: string[] = req.resourceNames ?? [];
    if (!names.length) throw new StatusError(grpc.status.INVALID_ARGUMENT, "resource_names: at least one resource name is required");
    for (const n of names) if (n !== `projects/${this.project}`) throw new StatusError(grpc.status.PERMISSION_DENIED, `The caller does not have permission to read ${n}`);
    const pageSize = Number(req.pageSize ?? 0);
    if (pageSize < 0 || pageSize > 1000) throw new StatusError(grpc.status.INVALID_ARGUMENT, `page_size: must be between 0 and 1000, got ${pageSize}`);
    const orderBy = String(req.orderBy ?? "");
    if (!["", "timestamp asc", "timestamp desc"].includes(orderBy)) throw new StatusError(grpc.status.INVALID_ARGUMENT, `order_by: only "timestamp asc" and "timestamp desc" are supported, got "${orderBy}"`);
    const filter = String(req.filter ?? "");
    if (filter.length > 20_000) throw new StatusError(grpc.status.INVALID_ARGUMENT, "filter: longer than 20000 characters");
    const node = parseFilter(filter);
    const chosen = this.#entries.filter((e) => !node || matches(e, node));
    const order = (a: StoredEntry, b: StoredEntry) => (a.timestamp === b.timestamp ? (a.insertId < b.insertId ? -1 : 1) : Date.parse(a.timestamp) - Date.parse(b.timestamp));
    chosen.sort(orderBy === "timestamp desc" ? (a, b) => -order(a, b) : order);
    const start = req.pageToken ? Number(String(req.pageToken).replace(/^p/, "")) : 0;
    if (!Number.isInteger(start) || start < 0) throw new StatusError(grpc.status.INVALID_ARGUMENT, "page_token: not a token this service gave out");
    const size = pageSize || 50;
    const slice = chosen.slice(start, start + size);
    return { entries: slice.map(wireEntry), nextPageToken: start + size < chosen.length ? `p${start + size}` : "" };
  }

  async close(): Promise<void> {
    await shutdownServer(this.#server);
  }
}
