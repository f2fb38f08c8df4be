/**
 * The Launcher contract: what every adapter (local, cloud-run, …) must do, checked only through
 * the port. The tasks run a tiny node program whose behaviour comes from its env, so the suite
 * also proves that a launch's env reaches every task. An adapter's test file calls
 * `launcherContract(name, makeFixture)`. Also here: `compiledLocalLauncher()`, the LocalLauncher
 * that can really start processes from a test (the local adapter, and the Cloud Run fake's backing).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isTerminal, type ExecutionStatus, type LaunchRequest, type Launcher } from "../../src/launcher/port.js";

/**
 * The task program. Env: TEST_OUT (a folder: each attempt writes its env there),
 * TEST_EXIT_CODES ("3,0": the exit code of attempt 0, 1, …; the last repeats), TEST_EXIT_CODES_<i>
 * for task i only, TEST_SLEEP_MS before exiting.
 */
const PROGRAM = `
const fs = require("node:fs");
const e = process.env;
const index = e.CLOUD_RUN_TASK_INDEX, attempt = Number(e.CLOUD_RUN_TASK_ATTEMPT);
const keep = Object.fromEntries(Object.entries(e).filter(([k]) => /^(CLOUD_RUN_|SHARDRUN_|TEST_)/.test(k)));
fs.writeFileSync(e.TEST_OUT + "/task-" + index + "-" + attempt + ".json", JSON.stringify(keep));
const codes = (e["TEST_EXIT_CODES_" + index] || e.TEST_EXIT_CODES || "0").split(",");
setTimeout(() => process.exit(Number(codes[Math.min(attempt, codes.length - 1)])), Number(e.TEST_SLEEP_MS || 0));
`;
export const TASK_COMMAND = [process.execPath, "-e", PROGRAM];

export interface LauncherFixture {
  launcher: Launcher;
  /**
   * Makes the request's job exist with its job-level settings: Cloud Run fixes parallelism and
   * maxRetries on the job, not per execution.
   */
  prepare?: (request: LaunchRequest) => Promise<void>;
  /** A name in this launcher's format that names no execution. */
  unknownExecution: string;
  cleanup: () => Promise<void>;
}

/** `makeFixture(command)` gives a fresh launcher whose tasks run `command`. */
export function launcherContract(name: string, makeFixture: (command: string[]) => Promise<LauncherFixture>): void {
  describe(`Launcher contract: ${name}`, () => {
    let fixture: LauncherFixture;
    let launcher: Launcher;
    let out: string;
    const launched: string[] = [];
    let runCounter = 0;

    beforeEach(async () => {
      fixture = await makeFixture(TASK_COMMAND);
      launcher = fixture.launcher;
      out = await mkdtemp(join(tmpdir(), "shardrun-launcher-"));
    });
    afterEach(async () => {
      // No test may leave tasks running: cancel what is still live and wait for it to end.
      for (const execution of launched.splice(0)) {
        const status = await launcher.getExecution(execution);
        if (status && !isTerminal(status.state)) {
          await launcher.cancel(execution);
          await waitFor(execution, (s) => isTerminal(s.state));
        }
      }
      await fixture.cleanup();
      await rm(out, { recursive: true, force: true });
    });

    const request = (o: Partial<LaunchRequest> & { testEnv?: Record<string, string> } = {}): LaunchRequest => {
      const runId = `20260101-000000-contract-${(runCounter++).toString(16).padStart(4, "0")}`;
      return {
        jobName: "shardrun-contract",
        runId,
        launch: 0,
        taskCount: 1,
        parallelism: 1,
        taskTimeoutSeconds: 60,
        maxRetries: 0,
        ...o,
        env: { SHARDRUN_STORE: "file:///nowhere", SHARDRUN_RUN: o.runId ?? runId, SHARDRUN_LAUNCH: String(o.launch ?? 0), TEST_OUT: out, ...o.testEnv },
      };
    };
    const launch = async (r: LaunchRequest) => {
      await fixture.prepare?.(r);
      const execution = await launcher.launch(r);
      launched.push(execution);
      return execution;
    };
    const waitFor = async (execution: string, done: (s: ExecutionStatus) => boolean, timeoutMs = 60_000): Promise<ExecutionStatus> => {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const status = await launcher.getExecution(execution);
        if (status && done(status)) return status;
        if (Date.now() > until) throw new Error(`execution ${execution} did not get there in time: ${JSON.stringify(status)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const finished = (execution: string) => waitFor(execution, (s) => isTerminal(s.state));
    const envs = async () => {
      const files = (await readdir(out)).sort();
      return Promise.all(files.map(async (f) => ({ file: f, env: JSON.parse(await readFile(join(out, f), "utf8")) as Record<string, string> })));
    };
    const shortName = (execution: string) => execution.split("/").pop();

    it("runs every task once with the Cloud Run env and the launch's env, and reports success", async () => {
      const r = request({ taskCount: 3, parallelism: 2, testEnv: { TEST_MARK: "delivered" } });
      const execution = await launch(r);
      const status = await finished(execution);
      expect(status).toMatchObject({ state: "succeeded", taskCount: 3, succeeded: 3, failed: 0, cancelled: 0, running: 0 });
      expect(status.tasks).toEqual([0, 1, 2].map((index) => expect.objectContaining({ index, state: "succeeded", attempts: 1, lastExitCode: 0 })));
      expect(status.startedAt && status.finishedAt && status.startedAt <= status.finishedAt).toBe(true);
      const seen = await envs();
      expect(seen.map((s) => s.file)).toEqual(["task-0-0.json", "task-1-0.json", "task-2-0.json"]);
      for (const [index, { env }] of seen.entries()) {
        expect(env).toMatchObject({
          CLOUD_RUN_EXECUTION: shortName(execution),
          CLOUD_RUN_TASK_INDEX: String(index),
          CLOUD_RUN_TASK_COUNT: "3",
          CLOUD_RUN_TASK_ATTEMPT: "0",
          SHARDRUN_RUN: r.runId,
          SHARDRUN_LAUNCH: "0",
          SHARDRUN_STORE: "file:///nowhere",
          TEST_MARK: "delivered",
        });
      }
    });

    it("retries a failed task with the attempt counter, and counts its attempts", async () => {
      const execution = await launch(request({ maxRetries: 2, testEnv: { TEST_EXIT_CODES: "3,0" } }));
      const status = await finished(execution);
      expect(status).toMatchObject({ state: "succeeded", succeeded: 1 });
      expect(status.tasks[0]).toMatchObject({ state: "succeeded", attempts: 2, lastExitCode: 0 });
      expect((await envs()).map((s) => [s.file, s.env.CLOUD_RUN_TASK_ATTEMPT])).toEqual([
        ["task-0-0.json", "0"],
        ["task-0-1.json", "1"],
      ]);
    });

    it("fails the execution when a task fails every retry, with its attempts and exit code", async () => {
      const execution = await launch(request({ taskCount: 2, parallelism: 2, maxRetries: 1, testEnv: { TEST_EXIT_CODES_1: "4" } }));
      const status = await finished(execution);
      expect(status).toMatchObject({ state: "failed", succeeded: 1, failed: 1 });
      expect(status.tasks).toEqual([
        expect.objectContaining({ index: 0, state: "succeeded", attempts: 1, lastExitCode: 0 }),
        expect.objectContaining({ index: 1, state: "failed", attempts: 2, lastExitCode: 4 }),
      ]);
    });

    it("stops a task at its timeout with SIGTERM and retries it", async () => {
      const started = Date.now();
      const execution = await launch(request({ taskTimeoutSeconds: 1, maxRetries: 1, testEnv: { TEST_SLEEP_MS: "60000" } }));
      const status = await finished(execution);
      expect(status).toMatchObject({ state: "failed", failed: 1 });
      expect(status.tasks[0]).toMatchObject({ state: "failed", attempts: 2, lastExitCode: 128 + 15 });
      expect(Date.now() - started).toBeLessThan(30_000);
    });

    it("reports a running execution, then cancels it", async () => {
      const execution = await launch(request({ taskCount: 2, parallelism: 2, testEnv: { TEST_SLEEP_MS: "60000" } }));
      const running = await waitFor(execution, (s) => s.running === 2);
      expect(running).toMatchObject({ state: "running", name: execution });
      expect(running.tasks.map((t) => [t.state, t.attempts])).toEqual([
        ["running", 1],
        ["running", 1],
      ]);
      await launcher.cancel(execution);
      const status = await finished(execution);
      expect(status).toMatchObject({ state: "cancelled", cancelled: 2, succeeded: 0 });
      expect(status.tasks.map((t) => t.state)).toEqual(["cancelled", "cancelled"]);
      await launcher.cancel(execution); // cancelling what has ended is harmless
    });

    it("cancels tasks that have not started yet", async () => {
      const execution = await launch(request({ taskCount: 3, parallelism: 1, testEnv: { TEST_SLEEP_MS: "60000" } }));
      await waitFor(execution, (s) => s.running === 1);
      await launcher.cancel(execution);
      const status = await finished(execution);
      expect(status.state).toBe("cancelled");
      expect(status.tasks.map((t) => [t.state, t.attempts])).toEqual([
        ["cancelled", 1],
        ["cancelled", 0],
        ["cancelled", 0],
      ]);
    });

    it("cancels an execution at once after launching it", async () => {
      const execution = await launch(request({ taskCount: 2, testEnv: { TEST_SLEEP_MS: "60000" } }));
      await launcher.cancel(execution);
      const status = await finished(execution);
      expect(status).toMatchObject({ state: "cancelled", succeeded: 0, failed: 0 });
      expect(status.tasks.every((t) => t.state === "cancelled")).toBe(true);
    });

    it("knows nothing of an execution it did not start", async () => {
      expect(await launcher.getExecution(fixture.unknownExecution)).toBeNull();
      await expect(launcher.cancel(fixture.unknownExecution)).resolves.toBeUndefined();
    });

    it("knows an execution by the name its tasks give it (jobs/<CLOUD_RUN_JOB>/executions/<CLOUD_RUN_EXECUTION>)", async () => {
      // Protocol 6: a task claims its launch under that name, and the driver reads it back.
      const execution = await launch(request({ launch: 2 }));
      await finished(execution);
      const env = (await envs())[0]!.env;
      const named = `jobs/${env.CLOUD_RUN_JOB}/executions/${env.CLOUD_RUN_EXECUTION}`;
      expect((await launcher.getExecution(named))?.state).toBe("succeeded");
      expect(env).toMatchObject({ SHARDRUN_LAUNCH: "2" });
    });
  });
}

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
/** The real task program: the compiled worker. */
export const WORKER_COMMAND = [process.execPath, join(REPO, "dist/src/worker/main.js")];

/**
 * The compiled LocalLauncher, copied to a private folder. Its executions run a supervisor as a
 * separate node process, which cannot load the TypeScript sources; and others rebuild dist/
 * while tests run, so a supervisor started from dist/ could find its modules half written. The
 * copy sits under node_modules/.cache so that it still resolves zod. Builds dist/ first when a
 * copied module is older than its source. Tasks need an explicit `command` (see WORKER_COMMAND).
 */
export async function compiledLocalLauncher(): Promise<{ LocalLauncher: typeof import("../../src/launcher/local.js").LocalLauncher; dispose: () => Promise<void> }> {
  const dist = join(REPO, "dist/src");
  const modules = () => {
    // The relative-import closure of the launcher and its supervisor, as compiled.
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const m of readFileSync(file, "utf8").matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+\.js)"/g)) visit(resolve(dirname(file), m[1]!));
    };
    for (const entry of ["launcher/local.js", "launcher/local-supervisor.js"]) visit(join(dist, entry));
    return [...seen].map((f) => relative(dist, f));
  };
  const stale = () => {
    try {
      return modules().some((m) => statSync(join(REPO, "src", m.replace(/\.js$/, ".ts"))).mtimeMs > statSync(join(dist, m)).mtimeMs);
    } catch {
      return true; // not built, or being rebuilt right now
    }
  };
  await mkdir(join(REPO, "node_modules/.cache"), { recursive: true });
  const folder = await mkdtemp(join(REPO, "node_modules/.cache/shardrun-launcher-"));
  await writeFile(join(folder, "package.json"), '{ "type": "module" }\n');
  for (let attempt = 1; ; attempt++) {
    // Others' unfinished files may fail the type check; tsc still emits, so only the output counts.
    if (stale()) spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: REPO, stdio: "ignore" });
    try {
      for (const m of modules()) {
        await mkdir(dirname(join(folder, "src", m)), { recursive: true });
        await copyFile(join(dist, m), join(folder, "src", m));
      }
      const url = pathToFileURL(join(folder, "src/launcher/local.js")).href;
      // A copy taken while tsc rewrote a file would be cut short: prove the supervisor loads.
      const check = spawnSync(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify(url)}); await import(${JSON.stringify(url.replace(/local\.js$/, "local-supervisor.js"))})`]);
      if (check.status !== 0) throw new Error(check.stderr.toString());
      const { LocalLauncher } = (await import(url)) as typeof import("../../src/launcher/local.js");
      return { LocalLauncher, dispose: () => rm(folder, { recursive: true, force: true }) };
    } catch (error) {
      if (attempt === 3) {
        await rm(folder, { recursive: true, force: true });
        throw new Error("could not load the compiled LocalLauncher: run `npx tsc -p tsconfig.build.json`", { cause: error });
      }
    }
  }
}
