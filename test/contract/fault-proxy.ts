/**
 * Test harness for the gcs store: fake-gcs-server on a free port, and a small HTTP proxy in front
 * of it that, for a share of requests, answers an error status, resets the connection before or
 * after forwarding (after: the emulator applied the write, the client never saw the answer), or
 * answers late. Decisions come from a seeded PRNG, so a failing run can be replayed; with
 * concurrent requests the order in which requests draw from it can still vary.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("../../scripts/fake-gcs.sh", import.meta.url));
export { seededRandom as mulberry32 } from "../../src/core/time.js";
import { seededRandom as mulberry32 } from "../../src/core/time.js";

export const INSTALL_HINT = "scripts/fake-gcs.sh install";

/** The emulator binary at the pinned version, or why there is none. */
export function findFakeGcs(env: NodeJS.ProcessEnv = process.env): { bin: string; missing?: undefined } | { bin?: undefined; missing: string } {
  if (env.FAKE_GCS_SERVER_BIN) return { bin: env.FAKE_GCS_SERVER_BIN };
  const found = spawnSync("bash", [script, "path"], { encoding: "utf8" });
  const bin = found.stdout?.trim();
  if (found.status === 0 && bin) return { bin };
  return { missing: `fake-gcs-server (the version scripts/fake-gcs.sh pins) is not installed: run \`${INSTALL_HINT}\`` };
}

export interface FakeGcs {
  /** http://127.0.0.1:PORT, for `apiEndpoint` or STORAGE_EMULATOR_HOST. */
  url: string;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts fake-gcs-server (memory backend) and waits until it answers. */
export async function startFakeGcs(bin: string): Promise<FakeGcs> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = ["-scheme", "http", "-host", "127.0.0.1", "-port", String(port), "-public-host", `127.0.0.1:${port}`, "-backend", "memory", "-log-level", "warn"];
  const child: ChildProcess = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  };
  for (let waited = 0; ; waited += 100) {
    if (child.exitCode !== null) throw new Error(`fake-gcs-server exited at start: ${stderr}`);
    const ok = await fetch(`${url}/storage/v1/b`).then((r) => r.ok, () => false);
    if (ok) break;
    if (waited > 15_000) {
      await stop();
      throw new Error(`fake-gcs-server did not answer on ${url}: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    stop,
    async createBucket(name) {
      const response = await fetch(`${url}/storage/v1/b?project=test`, { method: "POST", body: JSON.stringify({ name }) });
      if (!response.ok) throw new Error(`creating bucket ${name}: ${response.status} ${await response.text()}`);
    },
  };
}


export type Fault = "unavailable" | "reset-before" | "reset-after" | "delay";
export interface ProxiedRequest {
  method: string;
  /** Path without the query. */
  path: string;
  query: URLSearchParams;
  /** The Range header, if the request had one. */
  range?: string;
}
export interface ProxyEvent extends ProxiedRequest {
  fault: Fault | "none";
  /** Status the emulator answered, when the request reached it. */
  upstreamStatus?: number;
}

export interface FaultProxyOptions {
  /** Where requests go: the emulator's URL. */
  target: string;
  /**
   * Share of requests that get each fault; the rest pass through untouched.
   * @default {} (no random faults)
   * @example { unavailable: 0.08, "reset-before": 0.05, "reset-after": 0.08, delay: 0.06 }
   */
  rates?: Partial<Record<Fault, number>>;
  /** @default 1 */
  seed?: number;
  /** Range of the added latency of "delay". @default [50, 400] */
  delayMs?: [number, number];
  /** Changes a request body before it is forwarded (to corrupt an upload in flight). @default undefined */
  rewrite?: (request: ProxiedRequest, body: Buffer) => Buffer;
  /** Changes an answer's headers before they are sent back (to play a server that answers oddly). @default undefined */
  rewriteResponse?: (request: ProxiedRequest, status: number, headers: http.IncomingHttpHeaders) => { status: number; headers: http.IncomingHttpHeaders; body?: Buffer };
  /** Changes a request's headers before it is forwarded. @default undefined */
  rewriteHeaders?: (request: ProxiedRequest, headers: http.IncomingHttpHeaders) => http.IncomingHttpHeaders;
}

/** A request that a scripted fault waits for. */
export type Matcher = (request: ProxiedRequest) => boolean;
export const isUpload: Matcher = (r) => r.method === "POST" && r.path.startsWith("/upload/");
export const isDelete: Matcher = (r) => r.method === "DELETE";
export const isMediaGet: Matcher = (r) => r.method === "GET" && r.query.get("alt") === "media";

/** Statuses an "unavailable" fault answers with: all of them retryable on Cloud Storage. */
const STATUSES = [503, 503, 500, 502, 504, 429, 408];

export class FaultProxy {
  readonly url: string;
  /** Every request, in arrival order, with what was done to it. */
  readonly events: ProxyEvent[] = [];
  readonly #server: http.Server;
  readonly #target: URL;
  readonly #random: () => number;
  readonly #agent = new http.Agent({ keepAlive: true });
  readonly #scripted: Array<{ fault: Fault; match: Matcher; status?: number }> = [];
  #rates: Partial<Record<Fault, number>>;
  readonly #delayMs: [number, number];
  readonly #rewrite: FaultProxyOptions["rewrite"];
  readonly #rewriteResponse: FaultProxyOptions["rewriteResponse"];
  readonly #rewriteHeaders: FaultProxyOptions["rewriteHeaders"];

  private constructor(server: http.Server, options: FaultProxyOptions) {
    this.#server = server;
    this.#target = new URL(options.target);
    this.#random = mulberry32(options.seed ?? 1);
    this.#rates = options.rates ?? {};
    this.#delayMs = options.delayMs ?? [50, 400];
    this.#rewrite = options.rewrite;
    this.#rewriteResponse = options.rewriteResponse;
    this.#rewriteHeaders = options.rewriteHeaders;
    const { port } = server.address() as net.AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const proxy = new FaultProxy(server, options);
    server.on("request", (req, res) => void proxy.#handle(req, res));
    return proxy;
  }

  /**
   * The next request that `match` accepts gets `fault`, before any random one (first in, first
   * out); an "unavailable" fault answers `status` if given, else one drawn from the retryable ones.
   */
  script(fault: Fault, match: Matcher = () => true, status?: number): void {
    this.#scripted.push({ fault, match, ...(status === undefined ? {} : { status }) });
  }

  setRates(rates: Partial<Record<Fault, number>>): void {
    this.#rates = rates;
  }

  count(fault: Fault | "none", match: Matcher = () => true): number {
    return this.events.filter((e) => e.fault === fault && match(e)).length;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
    this.#agent.destroy();
  }

  #choose(request: ProxiedRequest): { fault: Fault | "none"; status?: number } {
    const index = this.#scripted.findIndex((s) => s.match(request));
    if (index !== -1) return this.#scripted.splice(index, 1)[0]!;
    let roll = this.#random();
    for (const fault of ["unavailable", "reset-before", "reset-after", "delay"] as const) {
      roll -= this.#rates[fault] ?? 0;
      if (roll < 0) return { fault };
    }
    return { fault: "none" };
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const parsed = new URL(req.url ?? "/", "http://proxy");
    const range = req.headers.range;
    const request: ProxiedRequest = { method: req.method ?? "GET", path: parsed.pathname, query: parsed.searchParams, ...(range ? { range } : {}) };
    const chosen = this.#choose(request);
    const event: ProxyEvent = { ...request, fault: chosen.fault };
    this.events.push(event);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = this.#rewrite ? this.#rewrite(request, Buffer.concat(chunks)) : Buffer.concat(chunks);
    try {
      switch (event.fault) {
        case "reset-before":
          req.socket.destroy();
          return;
        case "unavailable": {
          const status = chosen.status ?? STATUSES[Math.floor(this.#random() * STATUSES.length)]!;
          const message = JSON.stringify({ error: { code: status, message: "injected by fault-proxy", errors: [{ reason: "backendError" }] } });
          res.writeHead(status, { "content-type": "application/json" }).end(message);
          return;
        }
        case "delay": {
          const [min, max] = this.#delayMs;
          await new Promise((resolve) => setTimeout(resolve, min + this.#random() * (max - min)));
          break;
        }
      }
      const upstream = await this.#forward(req, body, this.#rewriteHeaders?.(request, { ...req.headers }) ?? req.headers);
      event.upstreamStatus = upstream.status;
      if (event.fault === "reset-after") {
        req.socket.destroy();
        return;
      }
      const answer = this.#rewriteResponse?.(request, upstream.status, upstream.headers) ?? upstream;
      const answerBody = answer.body ?? upstream.body;
      res.writeHead(answer.status, { ...answer.headers, "content-length": String(answerBody.length) }).end(answerBody);
    } catch (error) {
      if (!res.headersSent) res.writeHead(502).end(String(error));
    }
  }

  /** Sends the request on and reads the whole answer, so a reset after it really comes after. */
  #forward(req: http.IncomingMessage, body: Buffer, requestHeaders: http.IncomingHttpHeaders): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const headers = { ...requestHeaders, host: this.#target.host, "content-length": String(body.length) };
      delete headers["transfer-encoding"];
      const upstream = http.request(
        { agent: this.#agent, host: this.#target.hostname, port: this.#target.port, method: req.method, path: req.url, headers },
        (response) => {
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
        },
      );
      upstream.on("error", reject);
      upstream.end(body);
    });
  }
}
