/**
 * The Cloud Storage throttle (test/fakes/gcs-throttle.ts) refuses what Cloud Storage refuses for
 * load, through the real store adapter: a second mutation of one object within a second, and
 * writes over the bucket's limit; and it counts what it saw.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isShardrunError } from "../../src/core/errors.js";
import { GcsObjectStore } from "../../src/store/gcs.js";
import { classify, GcsThrottle } from "../fakes/gcs-throttle.js";
import { findFakeGcs, startFakeGcs, type FakeGcs } from "./fault-proxy.js";

const found = findFakeGcs();
if (found.missing) {
  if (process.env.CI) throw new Error(`CI must run the Cloud Storage throttle tests: ${found.missing}`);
  console.warn(`skipping the Cloud Storage throttle tests: ${found.missing}`);
}

describe.skipIf(!found.bin)("Cloud Storage throttle in front of fake-gcs-server", () => {
  let gcs: FakeGcs;
  let n = 0;
  beforeAll(async () => {
    gcs = await startFakeGcs(found.bin!);
    await gcs.createBucket("throttled");
  });
  afterAll(async () => {
    await gcs?.stop();
  });
  /** A store through a fresh throttle, retrying nothing, so each 429 shows. */
  async function through(o: { bucketWritesPerSecond?: number; now?: () => number } = {}) {
    const throttle = await GcsThrottle.start({ target: gcs.url, ...o });
    const store = new GcsObjectStore({ bucket: "throttled", prefix: `t${n++}`, storage: { apiEndpoint: throttle.url }, retry: { attempts: 1 }, env: {} });
    return { throttle, store };
  }

  it("answers 429 to a second mutation of one object within a second, and not to other objects", async () => {
    const { throttle, store } = await through();
    const g = await store.put("a.json", "{}", { ifGenerationMatch: 0 });
    await store.put("b.json", "{}", { ifGenerationMatch: 0 });
    const second = await store.put("a.json", "{}", { ifGenerationMatch: g }).then(() => null, (e: unknown) => e);
    expect(isShardrunError(second)).toBe(true);
    expect(String((second as Error).message)).toMatch(/429|rate limit/i);
    await expect(store.delete("a.json", { ifGenerationMatch: g })).rejects.toThrow(/rate limit/);
    // A racing create-only write counts too: the loser is refused for the rate, not the condition.
    await expect(store.put("a.json", "{}", { ifGenerationMatch: 0 })).rejects.toThrow(/rate limit/);
    await new Promise((r) => setTimeout(r, 1050));
    await store.put("a.json", "{}", { ifGenerationMatch: g });
    const r = throttle.report();
    const a = `t${n - 1}/a.json`;
    expect(r.refused).toEqual({ object: 3, bucket: 0 });
    expect(r.refusedObjects).toEqual({ [a]: 3 });
    // The first two would have been applied (written too soon); the third had lost anyway.
    expect(r.tooSoon).toEqual({ [a]: 2 });
    expect(r.lostRace).toEqual({ [a]: 1 });
    expect(r.peakObjectWritesPerSecond).toBe(1);
    expect(r.peakObjectAttemptsPerSecond).toBe(4);
    expect(r.hottestObject).toBe(a);
    await throttle.close();
  });

  it("judges a write that races one still in flight by what that one will leave: two create-only writes at once are a lost race", async () => {
    const { throttle, store } = await through();
    const results = await Promise.all([0, 1].map((i) => store.put("race.json", String(i), { ifGenerationMatch: 0 }).then(() => "created", (e: unknown) => String(e))));
    expect(results.filter((r) => r === "created")).toHaveLength(1);
    const r = throttle.report();
    expect(r.tooSoon).toEqual({});
    expect(r.lostRace).toEqual({ [`t${n - 1}/race.json`]: 1 });
    await throttle.close();
  });

  it("answers with Cloud Storage's JSON error body", async () => {
    const { throttle, store } = await through();
    await store.put("c.json", "{}");
    const res = await fetch(`${throttle.url}/upload/storage/v1/b/throttled/o?uploadType=media&name=${encodeURIComponent(`t${n - 1}/c.json`)}`, { method: "POST", body: "{}" });
    expect(res.status).toBe(429);
    expect(await res.json()).toMatchObject({ error: { code: 429, message: expect.stringContaining("exceeded the rate limit for object mutation operations"), errors: [{ domain: "usageLimits", reason: "rateLimitExceeded" }] } });
    await throttle.close();
  });

  it("limits the bucket's writes a second, and lets the limit double at most every 20 minutes", async () => {
    let clock = Date.now();
    const { throttle, store } = await through({ bucketWritesPerSecond: 5, now: () => clock });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => store.put(`w${i}.json`, "{}").then(() => "ok", () => "refused")));
    expect(results.filter((x) => x === "ok")).toHaveLength(5);
    expect(throttle.report().refused.bucket).toBe(3);
    expect(throttle.report().peakBucketWritesPerSecond).toBe(5);
    clock += 19 * 60_000;
    expect(throttle.bucketLimit()).toBe(5);
    clock += 60_000;
    expect(throttle.bucketLimit()).toBe(10);
    await throttle.close();
  });

  it("counts requests by class: writes and lists are class A, reads class B, deletes free", async () => {
    const { throttle, store } = await through();
    const g = await store.put("x.json", "{}", { ifGenerationMatch: 0 });
    await store.get("x.json");
    await store.list("");
    await new Promise((r) => setTimeout(r, 1050));
    await store.delete("x.json", { ifGenerationMatch: g });
    const r = throttle.report();
    expect(r).toMatchObject({ classA: 2, free: 1 });
    expect(r.classB).toBeGreaterThanOrEqual(1);
    await throttle.close();
  });

  it("classifies the JSON API's requests", () => {
    const q = (s = "") => new URLSearchParams(s);
    const none = Buffer.alloc(0);
    expect(classify("POST", "/upload/storage/v1/b/b/o", q("uploadType=media&name=a%2Fb"), none)).toEqual({ class: "A", mutates: "a/b" });
    expect(classify("POST", "/upload/storage/v1/b/b/o", q("uploadType=media&name=a&ifGenerationMatch=0"), none)).toEqual({ class: "A", mutates: "a", ifGenerationMatch: "0" });
    expect(classify("DELETE", "/storage/v1/b/b/o/a", q("generation=12"), none)).toEqual({ class: "free", mutates: "a", ifGenerationMatch: "12" });
    expect(classify("POST", "/upload/storage/v1/b/b/o", q("uploadType=multipart"), Buffer.from('--x\r\ncontent-type: application/json\r\n\r\n{"name":"runs/r/run.json"}\r\n--x'))).toEqual({ class: "A", mutates: "runs/r/run.json" });
    expect(classify("GET", "/storage/v1/b/b/o/a%2Fb", q("alt=media"), none)).toEqual({ class: "B" });
    expect(classify("GET", "/storage/v1/b/b/o", q("prefix=a"), none)).toEqual({ class: "A" });
    expect(classify("PATCH", "/storage/v1/b/b/o/a", q(), none)).toEqual({ class: "A", mutates: "a" });
    expect(classify("DELETE", "/storage/v1/b/b/o/a", q(), none)).toEqual({ class: "free", mutates: "a" });
    expect(classify("POST", "/storage/v1/b/b/o/out/compose", q(), none)).toEqual({ class: "A", mutates: "out" });
    expect(classify("POST", "/storage/v1/b/b/o/src/rewriteTo/b/b/o/dst", q(), none)).toEqual({ class: "A", mutates: "dst" });
    expect(classify("GET", "/storage/v1/b/b", q(), none)).toEqual({ class: "B" });
  });
});
