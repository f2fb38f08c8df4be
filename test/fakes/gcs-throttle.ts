/**
 * Cloud Storage's rate limits in front of fake-gcs-server (which has none): an HTTP proxy, like
 * test/contract/fault-proxy.ts, that refuses what Cloud Storage refuses for load and counts what
 * a run costs.
 *
 * - One object name takes about one mutation (create, update, delete, metadata patch, compose
 *   or copy into it) a second. A mutation that arrives within `objectGapMs` of the last one
 *   forwarded for that name gets 429 with Cloud Storage's JSON error body (reason
 *   `rateLimitExceeded`) and is not forwarded. A request counts whether or not its precondition
 *   would have held: racing create-only writes to one name get 429s on Cloud Storage too.
 *   Each such 429 is also sorted by what the write would have done: "too soon" when it would
 *   have been applied (unconditional, or its precondition matches the object as it is): its
 *   writer wrote an object twice within a second; "lost race" when its precondition no longer
 *   holds (someone else wrote first, and a 412 would have followed anyway): contention between
 *   writers, which compare-and-swap resolves.
 * - A bucket takes about 1,000 writes a second at first, and the limit doubles at most every 20
 *   minutes as load is sustained (Cloud Storage's request-rate guidelines); a write over it gets
 *   429.
 * - Every request is counted by class as Cloud Storage bills it: class A (writes, lists), class
 *   B (reads), free (deletes); and the peaks: the bucket's writes in any second, and the
 *   mutations of any one object in any second.
 * - With `iam`, it answers bucket IAM requests (a bucket's policy, testPermissions), which
 *   fake-gcs-server does not implement (test/fakes/gcs-iam.ts).
 */
import http from "node:http";
import type net from "node:net";
import type { FakeBucketIam } from "./gcs-iam.js";

export interface GcsThrottleOptions {
  /** fake-gcs-server's URL. */
  target: string;
  /** Mutations of one object name this close together: the later gets 429. @default 1000 */
  objectGapMs?: number;
  /** The bucket's writes a second before it has ramped up. @default 1000 */
  bucketWritesPerSecond?: number;
  /** The shortest time in which the bucket's write limit doubles. @default 1_200_000 (20 minutes) */
  doublingMs?: number;
  /** @default Date.now */
  now?: () => number;
  /** Bucket IAM to answer in front of the emulator. @default none (such requests go to the emulator, which has no IAM) */
  iam?: FakeBucketIam;
}

/** What the throttle saw, for a test to assert and a bench to print. */
export interface ThrottleReport {
  classA: number;
  classB: number;
  free: number;
  /** The bucket's writes (mutations) forwarded in the busiest second. */
  peakBucketWritesPerSecond: number;
  /** Mutations of one object forwarded in the busiest second for it (1 when the limit held). */
  peakObjectWritesPerSecond: number;
  /** Mutation requests of one object (refused ones too) in the busiest second for it. */
  peakObjectAttemptsPerSecond: number;
  /** The object of those attempts. */
  hottestObject: string | null;
  /** 429s sent, by cause. */
  refused: { object: number; bucket: number };
  /** Per-object 429s, by object name. */
  refusedObjects: Record<string, number>;
  /** Per-object 429s to writes that would have been applied (an object written twice within a second), by object name. */
  tooSoon: Record<string, number>;
  /** Per-object 429s to writes whose precondition no longer held (contention), by object name. */
  lostRace: Record<string, number>;
}

export type RequestClass = "A" | "B" | "free";

export interface ClassifiedRequest {
  class: RequestClass;
  /** The object name a mutation changes; undefined for reads, lists and bucket calls. */
  mutates?: string;
  /** The mutation's generation precondition ("0": only if absent); undefined when it has none. */
  ifGenerationMatch?: string;
}

const decode = (s: string) => decodeURIComponent(s.replace(/\+/g, "%20"));
/** The generation of an object whose write is in flight: matches no precondition. */
const PENDING = "pending";

/**
 * How Cloud Storage's JSON API bills a request, and which object it mutates. Multipart uploads
 * name the object in their JSON metadata part when the query does not.
 */
export function classify(method: string, path: string, query: URLSearchParams, body: Buffer): ClassifiedRequest {
  const kind = classifyOnly(method, path, query, body);
  // A delete pinned to a generation is conditional on it, as the store adapter sends it.
  const match = query.get("ifGenerationMatch") ?? (method === "DELETE" ? query.get("generation") : null);
  return kind.mutates !== undefined && match !== null ? { ...kind, ifGenerationMatch: match } : kind;
}

function classifyOnly(method: string, path: string, query: URLSearchParams, body: Buffer): ClassifiedRequest {
  if (path.startsWith("/upload/storage/v1/b/")) {
    let name = query.get("name") ?? undefined;
    if (!name) {
      const m = /"name"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(body.subarray(0, 64 * 1024).toString("utf8"));
      if (m) name = JSON.parse(`"${m[1]!}"`) as string;
    }
    return { class: "A", mutates: name ?? "(unnamed upload)" };
  }
  const object = /^\/(?:storage|download\/storage)\/v1\/b\/[^/]+\/o\/([^/]+)(\/.*)?$/.exec(path);
  if (object) {
    const name = decode(object[1]!);
    const rest = object[2] ?? "";
    if (method === "DELETE") return { class: "free", mutates: name };
    if (method === "PATCH" || method === "PUT") return { class: "A", mutates: name };
    if (method === "POST" && rest === "/compose") return { class: "A", mutates: name };
    const copy = /^\/(?:copyTo|rewriteTo)\/b\/[^/]+\/o\/([^/]+)$/.exec(rest);
    if (method === "POST" && copy) return { class: "A", mutates: decode(copy[1]!) };
    return { class: "B" };
  }
  // Listing objects or buckets, and creating buckets, are class A; reading a bucket is class B.
  if (/^\/storage\/v1\/b\/[^/]+\/o\/?$/.test(path) || path === "/storage/v1/b" || path === "/storage/v1/b/") return { class: "A" };
  return { class: "B" };
}

/** Cloud Storage's answer to a request over a rate limit (JSON API). */
function tooMany(message: string): string {
  return JSON.stringify({ error: { code: 429, message, errors: [{ message, domain: "usageLimits", reason: "rateLimitExceeded" }] } });
}

export class GcsThrottle {
  readonly url: string;
  readonly #server: http.Server;
  readonly #target: URL;
  readonly #agent = new http.Agent({ keepAlive: true });
  readonly #gap: number;
  readonly #bucketRate: number;
  readonly #doublingMs: number;
  readonly #now: () => number;
  readonly #started: number;
  readonly #iam: FakeBucketIam | undefined;
  /** When each object name last had a mutation forwarded. */
  readonly #lastMutation = new Map<string, number>();
  /**
   * Each object's generation as it will be once the mutations forwarded so far are applied:
   * absent when there is no such object, PENDING while a write that will apply is in flight
   * (its generation is not known yet, and no precondition written before it can match it).
   */
  readonly #generation = new Map<string, string>();
  /** Forwarded mutation times, per object, within the last second. */
  readonly #recent = new Map<string, number[]>();
  readonly #attempts = new Map<string, number[]>();
  #bucketWrites: number[] = [];
  readonly #report: ThrottleReport = {
    classA: 0,
    classB: 0,
    free: 0,
    peakBucketWritesPerSecond: 0,
    peakObjectWritesPerSecond: 0,
    peakObjectAttemptsPerSecond: 0,
    hottestObject: null,
    refused: { object: 0, bucket: 0 },
    refusedObjects: {},
    tooSoon: {},
    lostRace: {},
  };

  private constructor(server: http.Server, o: GcsThrottleOptions) {
    this.#server = server;
    this.#target = new URL(o.target);
    this.#gap = o.objectGapMs ?? 1000;
    this.#bucketRate = o.bucketWritesPerSecond ?? 1000;
    this.#doublingMs = o.doublingMs ?? 20 * 60_000;
    this.#now = o.now ?? Date.now;
    this.#started = this.#now();
    this.#iam = o.iam;
    this.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  }

  static async start(o: GcsThrottleOptions): Promise<GcsThrottle> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const throttle = new GcsThrottle(server, o);
    // A client killed mid-upload (the chaos tests SIGKILL tasks) hangs up while its body is read:
    // that request just ends, as it would at Cloud Storage.
    server.on("request", (req, res) => void throttle.#handle(req, res).catch(() => res.destroy()));
    return throttle;
  }

  /** A copy of the counters so far. */
  report(): ThrottleReport {
    return structuredClone(this.#report);
  }

  /** The bucket's write limit now: it doubles at most once per `doublingMs`. */
  bucketLimit(): number {
    return this.#bucketRate * 2 ** Math.floor((this.#now() - this.#started) / this.#doublingMs);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
    this.#agent.destroy();
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const parsed = new URL(req.url ?? "/", "http://throttle");
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const iam = /^\/storage\/v1\/b\/([^/]+)\/iam(\/testPermissions)?\/?$/.exec(parsed.pathname);
    if (iam && this.#iam) {
      const bucket = decodeURIComponent(iam[1]!);
      const answer = (await this.#bucketExists(bucket))
        ? this.#iam.answer(req.method ?? "GET", bucket, iam[2] ?? "", parsed.searchParams)
        : { status: 404, body: { error: { code: 404, message: "The specified bucket does not exist.", errors: [{ message: "The specified bucket does not exist.", domain: "global", reason: "notFound" }] } } };
      res.writeHead(answer.status, { "content-type": "application/json; charset=UTF-8" }).end(JSON.stringify(answer.body));
      return;
    }
    const kind = classify(req.method ?? "GET", parsed.pathname, parsed.searchParams, body);
    const now = this.#now();
    if (kind.mutates !== undefined) {
      const name = kind.mutates;
      this.#peak(this.#attempts, name, now, "attempts");
      const last = this.#lastMutation.get(name);
      if (last !== undefined && now - last < this.#gap) {
        this.#report.refused.object++;
        this.#report.refusedObjects[name] = (this.#report.refusedObjects[name] ?? 0) + 1;
        const sorted = this.#wouldApply(name, kind.ifGenerationMatch) ? this.#report.tooSoon : this.#report.lostRace;
        sorted[name] = (sorted[name] ?? 0) + 1;
        const bucket = /\/b\/([^/]+)/.exec(parsed.pathname)?.[1] ?? "";
        const message = `The object ${bucket}/${name} exceeded the rate limit for object mutation operations (create, update, and delete). Please reduce your request rate. See https://cloud.google.com/storage/docs/gcs429.`;
        res.writeHead(429, { "content-type": "application/json; charset=UTF-8" }).end(tooMany(message));
        return;
      }
      this.#bucketWrites = this.#bucketWrites.filter((t) => now - t < 1000);
      if (this.#bucketWrites.length >= this.bucketLimit()) {
        this.#report.refused.bucket++;
        res.writeHead(429, { "content-type": "application/json; charset=UTF-8" }).end(tooMany("The bucket exceeded the rate limit for object write operations. Please reduce your request rate. See https://cloud.google.com/storage/docs/gcs429."));
        return;
      }
      this.#bucketWrites.push(now);
      this.#report.peakBucketWritesPerSecond = Math.max(this.#report.peakBucketWritesPerSecond, this.#bucketWrites.length);
      this.#lastMutation.set(name, now);
      this.#peak(this.#recent, name, now, "writes");
    }
    // What this mutation will leave, known before its answer: a write racing it is judged by it.
    const before = kind.mutates !== undefined ? this.#generation.get(kind.mutates) : undefined;
    const applies = kind.mutates !== undefined && this.#wouldApply(kind.mutates, kind.ifGenerationMatch);
    if (applies && req.method === "DELETE") this.#generation.delete(kind.mutates!);
    else if (applies) this.#generation.set(kind.mutates!, PENDING);
    if (kind.class === "A") this.#report.classA++;
    else if (kind.class === "B") this.#report.classB++;
    else this.#report.free++;
    try {
      const upstream = await this.#forward(req, body);
      if (kind.mutates !== undefined && upstream.status >= 200 && upstream.status < 300) this.#track(kind.mutates, req.method ?? "GET", upstream.body);
      else if (applies) this.#restore(kind.mutates!, before);
      res.writeHead(upstream.status, upstream.headers).end(upstream.body);
    } catch (error) {
      if (!res.headersSent) res.writeHead(502).end(String(error));
    }
  }

  /** Whether a mutation with this precondition would be applied to the object as it stands. */
  #wouldApply(name: string, ifGenerationMatch: string | undefined): boolean {
    if (ifGenerationMatch === undefined) return true;
    const current = this.#generation.get(name);
    return ifGenerationMatch === "0" ? current === undefined : ifGenerationMatch === current;
  }

  /** Undoes the prediction of a mutation the emulator did not apply after all. */
  #restore(name: string, before: string | undefined): void {
    if (before === undefined) this.#generation.delete(name);
    else this.#generation.set(name, before);
  }

  /** The object's generation after a mutation the emulator applied. */
  #track(name: string, method: string, body: Buffer): void {
    if (method === "DELETE") {
      this.#generation.delete(name);
      return;
    }
    try {
      const generation = (JSON.parse(body.toString("utf8")) as { generation?: unknown }).generation;
      if (generation !== undefined) this.#generation.set(name, String(generation));
    } catch {
      // not a JSON answer: the generation stays unknown
    }
  }

  /** Records an event for `name` at `now` and keeps the busiest second's count. */
  #peak(times: Map<string, number[]>, name: string, now: number, what: "writes" | "attempts"): void {
    const recent = (times.get(name) ?? []).filter((t) => now - t < 1000);
    recent.push(now);
    times.set(name, recent);
    if (what === "writes") this.#report.peakObjectWritesPerSecond = Math.max(this.#report.peakObjectWritesPerSecond, recent.length);
    else if (recent.length > this.#report.peakObjectAttemptsPerSecond) {
      this.#report.peakObjectAttemptsPerSecond = recent.length;
      this.#report.hottestObject = name;
    }
  }

  #bucketExists(bucket: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const r = http.get({ agent: this.#agent, host: this.#target.hostname, port: this.#target.port, path: `/storage/v1/b/${encodeURIComponent(bucket)}` }, (response) => {
        response.resume();
        response.on("end", () => resolve(response.statusCode === 200));
      });
      r.on("error", reject);
    });
  }

  #forward(req: http.IncomingMessage, body: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const headers = { ...req.headers, host: this.#target.host, "content-length": String(body.length) };
      delete headers["transfer-encoding"];
      const upstream = http.request({ agent: this.#agent, host: this.#target.hostname, port: this.#target.port, method: req.method, path: req.url, headers }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const out = { ...response.headers };
          delete out["transfer-encoding"];
          delete out["connection"];
          const data = Buffer.concat(chunks);
          resolve({ status: response.statusCode ?? 502, headers: { ...out, "content-length": String(data.length) }, body: data });
        });
      });
      upstream.on("error", reject);
      upstream.end(body);
    });
  }
}
