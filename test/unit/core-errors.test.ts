/**
 * Errors are recognised on data: a job runs from its own bundle, with its own copy of the error
 * classes, and what it throws must still steer the worker. The second copy here is the same file
 * loaded again under another module id, as a bundle's copy is to the worker.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { NonRetriableError, PreconditionFailed, RetryAfterError, ShardrunError, isBudgetExceeded, isShardrunError, retryAfterMs, BudgetExceeded } from "../../src/core/errors.js";
import { objectSchemaKeys } from "../../src/core/job.js";

type ErrorsModule = typeof import("../../src/core/errors.js");
// @ts-expect-error -- the query string makes another copy of the module; TypeScript knows no such file
const other = (await import("../../src/core/errors.js?another-copy")) as ErrorsModule;

describe("errors from another copy of the classes", () => {
  it("are another copy indeed: instanceof does not see them", () => {
    expect(other.NonRetriableError).not.toBe(NonRetriableError);
    expect(new other.NonRetriableError("x")).not.toBeInstanceOf(ShardrunError);
  });

  it("are recognised by their code", () => {
    expect(isShardrunError(new other.NonRetriableError("no"), "NON_RETRIABLE")).toBe(true);
    expect(isShardrunError(new other.NonRetriableError("no"), "RETRY_AFTER")).toBe(false);
    expect(isShardrunError(new other.PreconditionFailed("k", "1"), "PRECONDITION_FAILED")).toBe(true);
    expect(other.isShardrunError(new NonRetriableError("no"), "NON_RETRIABLE")).toBe(true);
  });

  it("are recognised for every code the project throws", () => {
    expect(isShardrunError(new other.StoreFull("file:///tmp", "disk full"), "STORE_FULL")).toBe(true);
    expect(isShardrunError(new other.LaunchUncertain("maybe"), "LAUNCH_UNCERTAIN")).toBe(true);
    expect(isShardrunError(new other.LeaseLost("lost"), "LEASE_LOST")).toBe(true);
    expect(isShardrunError(new other.ShardrunError("DAMAGED", "torn"), "DAMAGED")).toBe(true);
    expect(isShardrunError(new other.ShardrunError("INTERNAL", "bug"))).toBe(true);
  });

  it("carry their data: a retry delay, a budget mark", () => {
    expect(retryAfterMs(new other.RetryAfterError(1234))).toBe(1234);
    expect(retryAfterMs(new RetryAfterError(5))).toBe(5);
    expect(retryAfterMs(new other.NonRetriableError("x"))).toBeUndefined();
    expect(isBudgetExceeded(new other.BudgetExceeded("over"))).toBe(true);
    expect(isBudgetExceeded(new BudgetExceeded("over"))).toBe(true);
    expect(isBudgetExceeded(new other.NonRetriableError("x"))).toBe(false);
  });

  it("are not confused with other errors that carry a code", () => {
    expect(isShardrunError(Object.assign(new Error("gone"), { code: "NOT_FOUND" }))).toBe(false);
    expect(isShardrunError(Object.assign(new Error("fs"), { code: "ENOENT" }))).toBe(false);
    expect(isShardrunError({ code: "USAGE", [Symbol.for("shardrun.error")]: true, message: "x" }, "USAGE")).toBe(true);
    expect(isShardrunError({ code: "ENOENT", [Symbol.for("shardrun.error")]: true })).toBe(false);
    expect(isShardrunError(null)).toBe(false);
    expect(isShardrunError("NON_RETRIABLE")).toBe(false);
    expect(retryAfterMs(Object.assign(new Error("x"), { code: "RETRY_AFTER", retryAfterMs: 5 }))).toBeUndefined();
    expect(new PreconditionFailed("k", "1")).toBeInstanceOf(ShardrunError);
  });
});

describe("object schemas from any copy of zod", () => {
  it("gives the keys of an object schema, and nothing for other values", () => {
    expect(objectSchemaKeys(z.object({ count: z.number(), name: z.string() }))).toEqual(["count", "name"]);
    expect(objectSchemaKeys(z.string())).toBeUndefined();
    expect(objectSchemaKeys(z.object({ a: z.number() }).optional())).toBeUndefined();
    expect(objectSchemaKeys({ shape: { a: 1 } })).toBeUndefined();
    expect(objectSchemaKeys(undefined)).toBeUndefined();
  });
});
