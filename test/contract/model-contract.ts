/**
 * The ChatModel contract for remote adapters, checked against the fake model server: what an
 * adapter sends, what it makes of the answer, and how it behaves on 429, 5xx, 4xx, slow answers,
 * aborts and unreadable bodies. An adapter's fixture says only how to build it and what its
 * wire format looks like.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NonRetriableError, RetryAfterError } from "../../src/core/errors.js";
import { ModelCallError, type HttpOptions } from "../../src/model/http.js";
import type { ChatModel, ChatRequest, ModelPricing } from "../../src/model/port.js";
import { FakeModelServer, type FakeApi, type RecordedRequest } from "../support/fake-model-server.js";

export interface AdapterFixture {
  api: FakeApi;
  /** Builds the adapter against `server` with `credential` (API key or access token). */
  make(server: FakeModelServer, credential: string, options: HttpOptions & { pricing?: ModelPricing }): ChatModel;
  /** Checks the API-specific body of the request made for `fullRequest` below. */
  expectWire(record: RecordedRequest): void;
  /** The API's raw finish reason for "stopped at maxTokens". */
  lengthReason: string;
}

const CREDENTIAL = "sk-contract-right-credential-0001";
const WRONG = "sk-contract-WRONG-credential-9999";
/** Fast retries, no jitter: the waits a test measures are the server's Retry-After alone. */
const FAST = { attempts: 3, minDelayMs: 20, maxDelayMs: 50, factor: 2, jitter: false };

export const fullRequest: ChatRequest = {
  messages: [
    { role: "system", content: "You answer in JSON." },
    { role: "user", content: "First question?" },
    { role: "assistant", content: "First answer." },
    { role: "user", content: "Second question?" },
  ],
  maxTokens: 50,
  temperature: 0.2,
  stop: ["END"],
  json: true,
};

const simple: ChatRequest = { messages: [{ role: "user", content: "Say hello." }] };

const elapsed = (start: number) => Date.now() - start;

/** Waits until `check` passes: server-side effects of a client abort arrive a little later. */
async function eventually(check: () => void, ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return check();
    } catch (e) {
      if (Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export function modelAdapterContract(name: string, fixture: AdapterFixture): void {
  describe(`ChatModel contract: ${name}`, () => {
    let server: FakeModelServer;
    const make = (options: HttpOptions & { pricing?: ModelPricing } = {}, credential = CREDENTIAL) =>
      fixture.make(server, credential, { retry: FAST, ...options });

    beforeEach(async () => {
      server = await FakeModelServer.start({ apiKey: CREDENTIAL });
    });
    afterEach(async () => {
      await server.close();
    });

    describe("request and response", () => {
      it("maps messages and options onto the API's wire format", async () => {
        server.next({ text: '{"ok":true}' });
        const result = await make().complete(fullRequest);
        expect(result.text).toBe('{"ok":true}');
        const [record] = server.requests();
        expect(record).toMatchObject({ api: fixture.api, method: "POST", status: 200 });
        expect(record!.headers.authorization).toBe(`Bearer ${CREDENTIAL}`);
        // The fake turns the wire body back into port messages: a round trip that must be lossless.
        expect(record!.messages).toEqual(fullRequest.messages);
        fixture.expectWire(record!);
      });

      it("parses usage and prices it", async () => {
        server.next({ text: "Hello.", usage: { input: 1200, output: 300 } });
        const result = await make({ pricing: { inputUsdPerMTok: 0.5, outputUsdPerMTok: 2 } }).complete(simple);
        expect(result).toMatchObject({ text: "Hello.", finishReason: "stop" });
        expect(result.usage).toEqual({ inputTokens: 1200, outputTokens: 300, totalTokens: 1500 });
        expect(result.costUsd).toBeCloseTo(0.0012, 10);
        expect(result.model).toMatch(/\S/);
      });

      it("has no costUsd without pricing", async () => {
        const result = await make().complete(simple);
        expect(result.costUsd).toBeUndefined();
      });

      it("maps the API's max-tokens stop to finishReason length", async () => {
        server.next({ text: "Hel", finishReason: fixture.lengthReason });
        expect((await make().complete(simple)).finishReason).toBe("length");
      });

      it("estimates usage, and says so, when the server reports none", async () => {
        server.next({ text: "12345678", usage: null });
        const result = await make().complete(simple);
        expect(result.usage).toEqual({ inputTokens: 3, outputTokens: 2, totalTokens: 5, estimated: true });
      });

      it("rejects a bad request before sending anything", async () => {
        await expect(make().complete({ messages: [] })).rejects.toThrow(/messages: Expected at least one message/);
        expect(server.requests()).toHaveLength(0);
      });
    });

    describe("retries", () => {
      it("honours Retry-After on a 429, then succeeds", async () => {
        server.rateLimitNext(1, 1);
        const result = await make().complete(simple);
        expect(result.text).not.toBe("");
        const [first, second] = server.requests();
        expect(server.requests()).toHaveLength(2);
        expect(first!.status).toBe(429);
        // The backoff alone would wait at most 50 ms: a gap of a second is the header honoured.
        expect(second!.at - first!.at).toBeGreaterThanOrEqual(990);
      });

      it("retries 500s with backoff, then succeeds", async () => {
        server.failNext(2, 500);
        const result = await make().complete(simple);
        expect(result.text).not.toBe("");
        expect(server.requests().map((r) => r.status)).toEqual([500, 500, 200]);
      });

      it("gives up on 5xx after the last attempt with a retriable ModelCallError", async () => {
        server.failNext(3, 503, "backend overloaded");
        const error = await make().complete(simple).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ModelCallError);
        expect(error).toMatchObject({ status: 503, attempts: 3 });
        expect((error as Error).message).toMatch(/HTTP 503.*backend overloaded/);
        expect(server.requests()).toHaveLength(3);
      });

      it("throws RetryAfterError when 429s outlast the attempts", async () => {
        server.rateLimitNext(2, 1);
        const error = await make({ retry: { ...FAST, attempts: 2 } }).complete(simple).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RetryAfterError);
        expect((error as RetryAfterError).retryAfterMs).toBe(1000);
        expect(server.requests()).toHaveLength(2);
      });

      it("throws RetryAfterError with a backoff delay when 429s carry no Retry-After", async () => {
        server.rateLimitNext(3);
        const error = await make().complete(simple).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RetryAfterError);
        expect((error as RetryAfterError).retryAfterMs).toBeGreaterThan(0);
        expect(server.requests()).toHaveLength(3);
      });

      it("hands a Retry-After longer than maxRetryAfterMs to the caller at once", async () => {
        server.rateLimitNext(1, 120);
        const error = await make({ maxRetryAfterMs: 10_000 }).complete(simple).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RetryAfterError);
        expect((error as RetryAfterError).retryAfterMs).toBe(120_000);
        expect(server.requests()).toHaveLength(1);
      });

      it("retries an unreadable JSON body, then succeeds", async () => {
        server.malformedNext(1, "json");
        expect((await make().complete(simple)).text).not.toBe("");
        expect(server.requests()).toHaveLength(2);
      });

      it("retries a dropped connection, then succeeds", async () => {
        server.dropNext(1);
        expect((await make().complete(simple)).text).not.toBe("");
        expect(server.requests()).toHaveLength(2);
      });

      it("runs every attempt through the caller's limiter and reports each retry", async () => {
        server.failNext(1, 502);
        let limited = 0;
        const retries: unknown[] = [];
        await make().complete(simple, {
          limit: (fn) => {
            limited++;
            return fn();
          },
          onRetry: (info) => retries.push(info),
        });
        expect(limited).toBe(2);
        expect(server.requests()).toHaveLength(2);
        expect(retries).toEqual([expect.objectContaining({ attempt: 1, status: 502, delayMs: 20 })]);
      });
    });

    describe("errors that are not retried", () => {
      it.each([400, 403, 404, 422])("turns %i into NonRetriableError with the API's message", async (status) => {
        server.failNext(1, status, `explanation for ${status}`);
        const error = await make().complete(simple).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(NonRetriableError);
        expect((error as Error).message).toContain(`HTTP ${status}`);
        expect((error as Error).message).toContain(`explanation for ${status}`);
        expect(server.requests()).toHaveLength(1);
      });

      it("turns 401 into NonRetriableError that never shows the credential", async () => {
        const error = await make({}, WRONG).complete(simple).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(NonRetriableError);
        const message = (error as Error).message;
        expect(message).toMatch(/HTTP 401.*Incorrect API key provided/);
        expect(message).toMatch(/check the credentials/);
        expect(message).not.toContain(WRONG);
        expect(message).not.toContain("WRONG-credential");
        expect(JSON.stringify(error)).not.toContain("WRONG-credential");
        expect(server.requests()).toHaveLength(1);
      });

      it("turns a 200 of a foreign shape into NonRetriableError, not retried", async () => {
        server.malformedNext(1, "shape");
        const error = await make().complete(simple).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(NonRetriableError);
        expect((error as Error).message).toMatch(/unexpected body/);
        expect(server.requests()).toHaveLength(1);
      });
    });

    describe("timeouts and aborts", () => {
      it("aborts a slow answer at timeoutMs and retries it", async () => {
        server.slowNext(2, 3000);
        const start = Date.now();
        const error = await make({ timeoutMs: 200, retry: { ...FAST, attempts: 2 } }).complete(simple).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ModelCallError);
        expect((error as Error).message).toMatch(/timed out after 200 ms \(after 2 attempts\)/);
        expect(elapsed(start)).toBeLessThan(2500);
        expect(server.requests()).toHaveLength(2);
        await eventually(() => expect(server.requests().every((r) => r.clientAborted)).toBe(true));
      });

      it("aborts at once, with the signal's reason and no retry, when the caller's signal aborts", async () => {
        server.slowNext(1, 3000);
        const controller = new AbortController();
        const reason = new Error("task deadline");
        setTimeout(() => controller.abort(reason), 100);
        const start = Date.now();
        await expect(make().complete(simple, { signal: controller.signal })).rejects.toBe(reason);
        expect(elapsed(start)).toBeLessThan(1500);
        await eventually(() => expect(server.requests()[0]?.clientAborted).toBe(true));
        expect(server.requests()).toHaveLength(1);
      });

      it("stops waiting out a Retry-After when the caller's signal aborts", async () => {
        server.rateLimitNext(1, 10);
        const controller = new AbortController();
        setTimeout(() => controller.abort(new Error("stop")), 100);
        const start = Date.now();
        await expect(make({ maxRetryAfterMs: 60_000 }).complete(simple, { signal: controller.signal })).rejects.toThrow("stop");
        expect(elapsed(start)).toBeLessThan(1500);
        expect(server.requests()).toHaveLength(1);
      });

      it("sends nothing when the signal is already aborted", async () => {
        const signal = AbortSignal.abort(new Error("already stopped"));
        await expect(make().complete(simple, { signal })).rejects.toThrow("already stopped");
        expect(server.requests()).toHaveLength(0);
      });
    });
  });
}
