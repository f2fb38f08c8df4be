import { describe, expect, it } from "vitest";
import { ENV, readTaskConfig } from "../../src/config/env.js";
import { InvalidInputError } from "../../src/core/errors.js";

const full = (): NodeJS.ProcessEnv => ({
  CLOUD_RUN_JOB: "shardrun-worker",
  CLOUD_RUN_EXECUTION: "shardrun-worker-abc12",
  CLOUD_RUN_TASK_INDEX: "3",
  CLOUD_RUN_TASK_COUNT: "8",
  CLOUD_RUN_TASK_ATTEMPT: "2",
  SHARDRUN_STORE: "gs://bucket/prefix",
  SHARDRUN_RUN: "20261122-020000-demo-ab12",
  SHARDRUN_LAUNCH: "1",
  SHARDRUN_DEADLINE_S: "3600",
  SHARDRUN_DEADLINE_MARGIN_S: "30",
  SHARDRUN_LOG_FORMAT: "text",
  // Anything else in the environment is ignored.
  PATH: "/usr/bin",
});

function rejection(env: NodeJS.ProcessEnv): InvalidInputError {
  try {
    readTaskConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    return e as InvalidInputError;
  }
  return expect.fail("readTaskConfig accepted a bad environment");
}

describe("readTaskConfig", () => {
  it("parses a full environment", () => {
    expect(readTaskConfig(full())).toEqual({
      jobName: "shardrun-worker",
      execution: "shardrun-worker-abc12",
      taskIndex: 3,
      taskCount: 8,
      attempt: 2,
      store: "gs://bucket/prefix",
      runId: "20261122-020000-demo-ab12",
      launch: 1,
      deadlineSeconds: 3600,
      deadlineMarginSeconds: 30,
      logFormat: "text",
    });
  });

  it("fills the defaults: attempt 0, job name, json logs, no deadline", () => {
    const env = full();
    for (const k of [ENV.taskAttempt, ENV.job, ENV.logFormat, ENV.deadlineSeconds, ENV.deadlineMarginSeconds]) delete env[k];
    const cfg = readTaskConfig(env);
    expect(cfg.attempt).toBe(0);
    expect(cfg.jobName).toBe("shardrun");
    expect(cfg.logFormat).toBe("json");
    expect(cfg).not.toHaveProperty("deadlineSeconds");
    expect(cfg).not.toHaveProperty("deadlineMarginSeconds");
  });

  it("accepts task index 0 and a fractional deadline", () => {
    const cfg = readTaskConfig({ ...full(), CLOUD_RUN_TASK_INDEX: "0", SHARDRUN_DEADLINE_S: "90.5" });
    expect(cfg.taskIndex).toBe(0);
    expect(cfg.deadlineSeconds).toBe(90.5);
  });

  it("names CLOUD_RUN_TASK_INDEX when it is not a non-negative integer", () => {
    for (const bad of ["abc", "-1", "1.5", "two"]) {
      expect(rejection({ ...full(), CLOUD_RUN_TASK_INDEX: bad }).message, bad).toContain("CLOUD_RUN_TASK_INDEX");
    }
  });

  it("names CLOUD_RUN_TASK_INDEX when it is missing", () => {
    const env = full();
    delete env.CLOUD_RUN_TASK_INDEX;
    expect(rejection(env).message).toContain("CLOUD_RUN_TASK_INDEX");
  });

  it("names CLOUD_RUN_TASK_INDEX when it is set but empty (not silently task 0)", () => {
    expect(rejection({ ...full(), CLOUD_RUN_TASK_INDEX: "" }).message).toContain("CLOUD_RUN_TASK_INDEX");
  });

  it("names every other bad or missing variable", () => {
    expect(rejection({ ...full(), CLOUD_RUN_TASK_COUNT: "0" }).message).toContain("CLOUD_RUN_TASK_COUNT");
    expect(rejection({ ...full(), CLOUD_RUN_TASK_ATTEMPT: "x" }).message).toContain("CLOUD_RUN_TASK_ATTEMPT");
    expect(rejection({ ...full(), SHARDRUN_LAUNCH: "-2" }).message).toContain("SHARDRUN_LAUNCH");
    expect(rejection({ ...full(), SHARDRUN_DEADLINE_S: "0" }).message).toContain("SHARDRUN_DEADLINE_S");
    expect(rejection({ ...full(), SHARDRUN_LOG_FORMAT: "xml" }).message).toContain("SHARDRUN_LOG_FORMAT");
    for (const k of [ENV.execution, ENV.store, ENV.run, ENV.launch]) {
      const env = full();
      delete env[k];
      expect(rejection(env).message, k).toContain(k);
    }
  });

  it("starts its message with what it read", () => {
    expect(rejection({}).message).toMatch(/^task environment: /);
  });
});
