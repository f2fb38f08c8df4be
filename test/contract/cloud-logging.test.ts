/**
 * The Cloud Logging reader (src/log/cloud-logging.ts) through the real `@google-cloud/logging`
 * client against the gRPC fake: paging, quoting in filters, following with late entries; and
 * the fake's refusals, so that the reader is known to ask only what the API accepts.
 */
import { Logging } from "@google-cloud/logging";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CloudLogReader, cloudLoggingClientOptions, cloudLoggingFilter } from "../../src/log/cloud-logging.js";
import type { LogRecord } from "../../src/log/records.js";
import { CloudLoggingFake } from "../fakes/cloud-logging-fake.js";

const RUN = "20261122-020000-docs-ab12";
const T0 = Date.parse("2026-11-22T02:00:00.000Z");

function line(n: number, o: { item?: string; shard?: string; at?: number; run?: string } = {}): string {
  return JSON.stringify({
    severity: "INFO",
    message: `line ${n}`,
    time: new Date(o.at ?? T0 + n).toISOString(),
    "logging.googleapis.com/labels": { run: o.run ?? RUN, task: "0", attempt: "0", ...(o.shard ? { shard: o.shard } : {}), ...(o.item ? { item: o.item } : {}) },
    n,
  });
}

const source = { job: "shardrun-docs", execution: "shardrun-docs-abc12", taskIndex: 0, attempt: 0 };

async function all(it: AsyncIterable<LogRecord>): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const r of it) out.push(r);
  return out;
}

describe("CloudLogReader on the Cloud Logging fake", () => {
  let fake: CloudLoggingFake;
  let reader: CloudLogReader;
  beforeAll(async () => {
    fake = await CloudLoggingFake.start();
    reader = new CloudLogReader({ project: fake.project, clientOptions: cloudLoggingClientOptions({ SHARDRUN_CLOUD_LOGGING_ENDPOINT: fake.endpoint })! });
    for (let n = 0; n < 2500; n++) fake.ingestTaskLog(line(n, { shard: `s00000${n % 3}` }), source);
    fake.ingestTaskLog(line(9000, { run: "20261122-020000-docs-ffff" }), source);
    fake.ingestTaskLog("FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory", { ...source, time: new Date(T0 + 2600).toISOString() });
  });
  afterAll(async () => {
    await fake?.close();
  });

  it("reads every line of the run, oldest first, a page of 1,000 at a time", async () => {
    const before = fake.requests.length;
    const got = await all(reader.read({ runId: RUN, since: new Date(T0).toISOString() }));
    expect(got.map((r) => r.fields.n)).toEqual(Array.from({ length: 2500 }, (_, n) => n));
    expect(got[0]).toMatchObject({ severity: "INFO", message: "line 0", labels: { run: RUN, task: "0", attempt: "0", shard: "s000000" }, source: "shardrun-docs-abc12/task-0" });
    const requests = fake.requests.slice(before);
    expect(requests).toHaveLength(3);
    expect(requests.every((r) => r.pageSize === 1000 && r.orderBy === "timestamp asc")).toBe(true);
  });

  it("asks for a shard or an item in the filter, with quotes and backslashes in keys escaped", async () => {
    const shard = await all(reader.read({ runId: RUN, shard: "s000001", since: new Date(T0).toISOString() }));
    expect(shard).toHaveLength(833);
    const odd = 'report "Q3" \\ final';
    fake.ingestTaskLog(line(5000, { item: odd }), source);
    fake.ingestTaskLog(line(5001, { item: "report" }), source);
    const item = await all(reader.read({ runId: RUN, item: odd, since: new Date(T0).toISOString() }));
    expect(item.map((r) => r.message)).toEqual(["line 5000"]);
    expect(cloudLoggingFilter({ runId: RUN, item: odd, since: "2026-11-22T02:00:00.000Z" })).toContain('labels.item="report \\"Q3\\" \\\\ final"');
  });

  it("follows: lines that arrive later, a late one among them, each once; stops when the run is done", async () => {
    const now = Date.now();
    const fresh = await CloudLoggingFake.start();
    try {
      const r = new CloudLogReader({ project: fresh.project, clientOptions: cloudLoggingClientOptions({ SHARDRUN_CLOUD_LOGGING_ENDPOINT: fresh.endpoint })! });
      fresh.ingestTaskLog(line(1, { at: now }), source);
      let looks = 0;
      const seen: string[] = [];
      for await (const rec of r.read(
        { runId: RUN, since: new Date(now - 60_000).toISOString() },
        {
          follow: true,
          pollMs: 20,
          done: async () => {
            looks++;
            if (looks === 2) fresh.ingestTaskLog(line(2, { at: now + 2000 }), source);
            // Arrives after line 2 but is stamped before it: Cloud Logging can deliver it late.
            if (looks === 3) fresh.ingestTaskLog(line(3, { at: now + 1500 }), source);
            return looks >= 4;
          },
        },
      )) {
        seen.push(rec.message);
      }
      expect(seen).toEqual(["line 1", "line 2", "line 3"]);
    } finally {
      await fresh.close();
    }
  });
});

describe("the Cloud Logging fake refuses what the API refuses", () => {
  let fake: CloudLoggingFake;
  let logging: Logging;
  beforeAll(async () => {
    fake = await CloudLoggingFake.start({ readsPerMinute: 8 });
    logging = new Logging({ projectId: fake.project, ...cloudLoggingClientOptions({ SHARDRUN_CLOUD_LOGGING_ENDPOINT: fake.endpoint })! });
  });
  afterAll(async () => {
    await fake?.close();
  });

  const list = (o: Record<string, unknown>) => logging.getEntries({ resourceNames: [`projects/${fake.project}`], autoPaginate: false, filter: 'timestamp>="2026-01-01T00:00:00Z"', ...o });

  it.each([
    [{ pageSize: 1001 }, /page_size/],
    [{ orderBy: "severity desc" }, /order_by/],
    [{ filter: 'labels.run="x" AND (' }, /Unparseable filter/],
    [{ filter: 'payload.run="x"' }, /LogEntry has no field "payload"/],
    [{ filter: "x".repeat(20_001) }, /longer than 20000/],
    [{ resourceNames: ["projects/someone-else"] }, /permission/],
  ])("%j", async (o, message) => {
    await expect(list(o)).rejects.toThrow(message);
  });

  it("answers RESOURCE_EXHAUSTED past the project's reads a minute", async () => {
    const before = fake.requests.length;
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => list({})));
    const refused = results.filter((r) => r.status === "rejected");
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(String((r as PromiseRejectedResult).reason)).toMatch(/RESOURCE_EXHAUSTED|Quota exceeded/);
    expect(fake.requests.length - before).toBeGreaterThanOrEqual(refused.length);
  });
});
