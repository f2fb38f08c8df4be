/**
 * The operator's toolkit through the CLI, on a night's worth of trouble: a 5,000-item job with 2%
 * random upstream failures and 1% malformed items (`failures`, `rerun --failed-items`, `logs`,
 * `output`), a run cancelled and watched, a run whose watcher (Ctrl-C) and supervisor (SIGKILL)
 * both died, finished by `rerun` and by `watch`, and the facts printed about runs (`status`,
 * `runs`, finish times that only work moves).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { failingItems } from "../fixtures/jobs/flaky.js";
import { ROOT, SLEEPY, cli, parseLines, sleep, startCli, tempDir, type CliResult } from "./helpers.js";

const FLAKY = join(ROOT, "test", "fixtures", "jobs", "flaky.ts");
const key = (n: number) => `doc-${String(n).padStart(5, "0")}`;
/** No npm and no shardrun on PATH: hints name the script by its path, so they run here as printed. */
const PLAIN = { npm_command: "", npm_lifecycle_event: "", npm_execpath: "", PATH: `${join(ROOT, "node_modules", ".bin")}:/usr/bin:/bin` };

interface Status {
  runId: string;
  state: string;
  reason?: string;
  createdAt: string;
  finishedAt?: string;
  items: { total: number; succeeded: number; failed: number; pending: number };
  launches: { n: number; state: string; execution?: string; taskList?: { index: number; attempts: number; timeouts?: number; lastExit?: string }[] }[];
}

interface Failure {
  i: number;
  key: string;
  reason: string;
  error: string;
  group: string;
}

const json = <T>(r: CliResult): T => JSON.parse(r.stdout) as T;

/** Waits until some item of the run is done (its tasks are working). */
async function untilProgress(dir: string, runId: () => string | undefined, min = 1): Promise<string> {
  for (let tries = 0; tries < 300; tries++) {
    const id = runId();
    if (id) {
      const st = await cli(["status", id, "--json"], dir);
      if (st.code === 0 && json<Status>(st).items.succeeded >= min) return id;
    }
    await sleep(100);
  }
  throw new Error("the run made no progress");
}

const newestRun = (dir: string) => () => {
  const runs = join(dir, ".shardrun", "runs");
  return existsSync(runs) ? readdirSync(runs).sort().pop() : undefined;
};

/** Kills a local execution's supervisor and its tasks at once, as a lost machine or session would. */
function killSupervisors(dir: string): number {
  const exec = join(dir, ".shardrun", ".executions");
  let killed = 0;
  for (const f of readdirSync(exec).filter((f) => f.endsWith(".pid"))) {
    const pid = Number(readFileSync(join(exec, f), "utf8"));
    try {
      process.kill(-pid, "SIGKILL");
      killed++;
    } catch {
      // gone already
    }
  }
  return killed;
}

describe("a 5,000-item night: random upstream failures and malformed documents", () => {
  it("failures shows the two groups; rerun --failed-items retries only the retriable; the run ends partial with exactly the malformed ones failed", async () => {
    const dir = tempDir();
    const cause = join(dir, "upstream-down");
    writeFileSync(cause, "");
    const { transient, fatal } = failingItems(5000, 2, 1);
    expect([transient.size, fatal.size]).toEqual([100, 50]);

    const first = await cli(["run", FLAKY, "--local", "--json", "--tasks", "4", "--arg", `failIfExists=${cause}`], dir);
    expect(first.code).toBe(3);
    const st = json<Status>(first);
    expect(st).toMatchObject({ state: "partial", items: { total: 5000, succeeded: 4850, failed: 150, pending: 0 } });
    const runId = st.runId;

    // Two groups, whatever the numbers and request ids in each message.
    const text = await cli(["failures", runId], dir, PLAIN);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`run ${runId}: 150 failed items in 2 groups`);
    expect(text.stdout).toMatch(/^\s+100 {2}error {2}upstream timed out after <n> ms \(request <id>\)$/m);
    expect(text.stdout).toMatch(/^\s+50 {2}non_retriable {2}document <n> is malformed: no body after byte <n>$/m);
    expect(text.stdout).toMatch(/first stack trace:\n\s+at /);
    expect(text.stdout).toMatch(/retry the 100 retriable: .* rerun \S+ --local --failed-items$/m);
    const lines = parseLines<Failure>((await cli(["failures", runId, "--json"], dir)).stdout);
    expect(lines).toHaveLength(150);
    expect(new Set(lines.filter((l) => l.reason === "non_retriable").map((l) => l.i))).toEqual(fatal);
    expect(new Set(lines.filter((l) => l.reason === "error").map((l) => l.i))).toEqual(transient);
    expect(new Set(lines.map((l) => `${l.reason} ${l.group}`)).size).toBe(2);
    const onlyFatal = parseLines<Failure>((await cli(["failures", runId, "--reason", "non_retriable", "--json"], dir)).stdout);
    expect(onlyFatal.map((l) => l.i).sort((a, b) => a - b)).toEqual([...fatal].sort((a, b) => a - b));
    const limited = await cli(["failures", runId, "--limit", "1"], dir);
    expect(limited.stdout).toContain("… 1 more groups (--limit 2 to see them all)");
    const badReason = await cli(["failures", runId, "--reason", "flaky"], dir);
    expect(badReason.code).toBe(2);
    expect(badReason.stderr).toBe('shardrun: --reason: expected reasons among error, schema, non_retriable, budget, timeout, crashed, corrupt (comma-separated), got "flaky"\n');

    // An item's log lines: the attempt that failed it, and the line that dead-lettered it.
    const someFatal = [...fatal][0]!;
    const logs = parseLines<{ message: string; labels: Record<string, string>; fields: Record<string, unknown> }>((await cli(["logs", runId, "--item", key(someFatal), "--json"], dir)).stdout);
    expect(logs.map((l) => l.message)).toEqual(["summarizing document", "item failed"]);

    // The cause is fixed: only the retriable failures run again.
    rmSync(cause);
    const again = await cli(["rerun", runId, "--local", "--failed-items"], dir);
    expect(again.stderr).toContain(`rerun ${runId}: 100 failed items re-planned`);
    expect(again.stderr).toContain("left out 50 non_retriable failures (choose with --reason)");
    expect(again.code).toBe(3);
    expect(json<Status>(await cli(["status", runId, "--json"], dir))).toMatchObject({ state: "partial", items: { total: 5000, succeeded: 4950, failed: 50, pending: 0 } });
    const still = parseLines<Failure>((await cli(["failures", runId, "--json"], dir)).stdout);
    expect(new Set(still.map((l) => l.i))).toEqual(fatal);
    expect(still.every((l) => l.reason === "non_retriable")).toBe(true);
    // The malformed documents were not tried again.
    const fatalLogs = parseLines<{ message: string }>((await cli(["logs", runId, "--item", key(someFatal), "--json"], dir)).stdout);
    expect(fatalLogs.filter((l) => l.message === "summarizing document")).toHaveLength(1);

    // Every other item once in the output.
    const out = parseLines((await cli(["output", runId], dir)).stdout).map((l) => l.i);
    expect(out).toHaveLength(4950);
    expect(new Set(out).size).toBe(4950);
    for (const n of fatal) expect(out.includes(n)).toBe(false);
    // With --failed, the dead letter too: every item once, one way or the other.
    const both = parseLines<{ i: number; failed?: { reason: string } }>((await cli(["output", runId, "--failed"], dir)).stdout);
    expect(both).toHaveLength(5000);
    expect(new Set(both.map((l) => l.i)).size).toBe(5000);
    expect(both.filter((l) => l.failed).every((l) => l.failed!.reason === "non_retriable")).toBe(true);

    const summary = await cli(["status", runId], dir, PLAIN);
    expect(summary.stdout).toMatch(/^\s+50 failed for good \(non_retriable\); after a fix: .* rerun \S+ --local --failed-items --reason non_retriable$/m);
    expect(summary.stdout).not.toContain("retry the");
    const exit = await cli(["status", runId, "--exit-status"], dir);
    expect(exit.code).toBe(3);
  }, 240_000);
});

describe("cancel, watch, and runs nobody watches", () => {
  it("cancel stops a live run; watch then prints it cancelled and exits 5; rerun resumes it and every item comes out once", async () => {
    const dir = tempDir();
    const run = startCli(["run", SLEEPY, "--local", "--json", "--tasks", "2", "--arg", "count=300", "--arg", "sleepMs=80"], dir);
    const runId = await untilProgress(dir, newestRun(dir), 20);
    const cancel = await cli(["cancel", runId], dir, PLAIN);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`^run ${runId}: cancelled; `));
    // The watcher sees the cancel and ends with the run's state.
    const watched = await run.done;
    expect(watched.code).toBe(5);
    expect(json<Status>(watched)).toMatchObject({ state: "cancelled", reason: "cancelled on request" });

    const watch = await cli(["watch", runId], dir, PLAIN);
    expect(watch.code).toBe(5);
    expect(watch.stdout).toMatch(new RegExp(`^run ${runId} \\(sleepy\\): cancelled in \\S+ — cancelled on request$`, "m"));
    const resume = /^\s+unfinished \d+ items: (.+)$/m.exec(watch.stdout)?.[1];
    expect(resume).toMatch(/ rerun \S+ --local$/);
    expect((await cli(["status", runId, "--exit-status"], dir)).code).toBe(5);
    const again = await cli(["cancel", runId], dir);
    expect(again.stdout).toContain("was cancelled already");

    // The resume command runs as printed.
    const resumed = spawnSync("/bin/sh", ["-c", `${resume} --json`], { cwd: dir, env: { ...process.env, ...PLAIN }, encoding: "utf8" });
    expect(resumed.status).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ state: "succeeded", items: { total: 300, succeeded: 300 } });
    const keys = parseLines((await cli(["output", runId], dir)).stdout).map((l) => l.key);
    expect(keys).toHaveLength(300);
    expect(new Set(keys).size).toBe(300);
    // Finished: nothing to cancel.
    const late = await cli(["cancel", runId], dir);
    expect(late).toMatchObject({ code: 0, stdout: `run ${runId} already finished (succeeded): nothing to cancel\n` });
  }, 180_000);

  it.each([["rerun"], ["watch"]])(
    "a run whose watcher (Ctrl-C, exit 130) and supervisor (SIGKILL) both died is finished by %s",
    async (how) => {
      const dir = tempDir();
      const run = startCli(["run", SLEEPY, "--local", "--tasks", "2", "--arg", "count=200", "--arg", "sleepMs=60"], dir, PLAIN);
      const runId = await untilProgress(dir, newestRun(dir), 10);
      run.child.kill("SIGINT");
      const stopped = await run.done;
      expect(stopped.code).toBe(130);
      const watchHint = /Watch it again \(and let it continue\): (.+)$/m.exec(stopped.stderr)?.[1];
      expect(watchHint).toMatch(new RegExp(` watch ${runId}$`));
      expect(stopped.stdout).toBe("");
      expect(killSupervisors(dir)).toBe(1);

      // Recorded as running, with a launch whose supervisor is gone.
      const before = json<Status>(await cli(["status", runId, "--json"], dir));
      expect(before.items.pending).toBeGreaterThan(0);
      const finished =
        how === "rerun"
          ? await cli(["rerun", runId, "--local", "--json"], dir)
          : // As printed after the Ctrl-C.
            ((r) => ({ code: r.status, stdout: r.stdout, stderr: r.stderr }))(spawnSync("/bin/sh", ["-c", `${watchHint} --json`], { cwd: dir, env: { ...process.env, ...PLAIN }, encoding: "utf8" }));
      expect(finished.stderr).not.toContain("live launch");
      expect(finished.code).toBe(0);
      const st = json<Status>(finished as CliResult);
      expect(st).toMatchObject({ state: "succeeded", items: { total: 200, succeeded: 200, failed: 0, pending: 0 } });
      // The dead launch was settled as failed, and a continuation finished the rest.
      expect(st.launches[0]!.state).toBe("failed");
      expect(st.launches.length).toBeGreaterThan(1);
      const keys = parseLines((await cli(["output", runId], dir)).stdout).map((l) => l.key);
      expect(keys).toHaveLength(200);
      expect(new Set(keys).size).toBe(200);
    },
    180_000,
  );
});

describe("facts about runs", () => {
  it("a rerun that did nothing keeps the finish time and the duration; runs lists by creation time with duration and failed count", async () => {
    const dir = tempDir();
    const r = await cli(["run", SLEEPY, "--local", "--json", "--arg", "count=20", "--arg", "sleepMs=1", "--arg", "failEvery=10"], dir);
    expect(r.code).toBe(3);
    const first = json<Status>(r);
    expect(first.finishedAt).toBeDefined();
    await sleep(1200);
    // Nothing open, nothing retriable left out: nothing to do, twice over.
    const plain = await cli(["rerun", first.runId, "--local", "--json"], dir);
    expect(plain.code).toBe(3);
    expect(json<Status>(plain).finishedAt).toBe(first.finishedAt);
    const none = await cli(["rerun", first.runId, "--local", "--failed-items", "--reason", "budget"], dir);
    expect(none.code).toBe(3);
    expect(none.stderr).toContain("no failed items to rerun; left out 2 error failures (choose with --reason)");
    expect(none.stdout).toMatch(/: partial in \d+s$/m);
    expect(json<Status>(await cli(["status", first.runId, "--json"], dir)).finishedAt).toBe(first.finishedAt);

    // A second run, then the list: newest first, with its header, duration and failed count.
    const second = json<Status>(await cli(["run", SLEEPY, "--local", "--json", "--arg", "count=5", "--arg", "sleepMs=1"], dir));
    const list = json<{ runId: string; state: string; failed?: number; finishedAt?: string }[]>(await cli(["runs", "--json"], dir));
    expect(list.map((x) => x.runId)).toEqual([second.runId, first.runId]);
    expect(list[1]).toMatchObject({ state: "partial", failed: 2, finishedAt: first.finishedAt });
    const table = (await cli(["runs"], dir)).stdout.split("\n");
    expect(table[0]).toMatch(/^RUN\s+JOB\s+STATE\s+ITEMS\s+FAILED\s+CREATED\s+DURATION\s+TRIGGER$/);
    expect(table[2]).toMatch(new RegExp(`^${first.runId}\\s+sleepy\\s+partial\\s+20\\s+2\\s+\\S+ \\S+\\s+\\d+s\\s+cli$`));
    expect(json<unknown[]>(await cli(["runs", "--state", "partial", "--json"], dir))).toHaveLength(1);
    expect(json<unknown[]>(await cli(["runs", "--job", "flaky", "--json"], dir))).toHaveLength(0);
    expect(json<unknown[]>(await cli(["runs", "--since", "1h", "--json"], dir))).toHaveLength(2);
    expect(json<unknown[]>(await cli(["runs", "--since", "2099-01-01", "--json"], dir))).toHaveLength(0);
    expect((await cli(["runs", "--limit", "1"], dir)).stdout).toContain("(the newest 1; --limit to see more)");
    for (const [flags, message] of [
      [["--state", "done"], "--state: expected one of planning, pending, running, succeeded, partial, failed, cancelled, budget_exhausted, unreadable"],
      [["--since", "last week"], "--since: expected a date"],
      [["--job", "Bad_Job"], "--job: expected a job name"],
    ] as const) {
      const bad = await cli(["runs", ...flags], dir);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain(message);
    }
  });

  it("a garbage run.json does not break runs: it is listed as unreadable with the reason and the object", async () => {
    const dir = tempDir();
    const good = json<Status>(await cli(["run", SLEEPY, "--local", "--json", "--arg", "count=3", "--arg", "sleepMs=1"], dir));
    // A run folder written by hand (or by a bug), and an index entry that cannot be read.
    const bad = "20260101-000000-sleepy-dead";
    const fs = await import("../../src/store/fs.js");
    const store = new fs.FsObjectStore(join(dir, ".shardrun"));
    await store.put(`runs/${bad}/run.json`, "{ not json");
    await store.put(`index/runs/20260101/${bad}`, JSON.stringify({ runId: bad, unreadable: "run.json: Unexpected token" }));
    const list = json<{ runId: string; state: string; reason?: string; object?: string }[]>(await cli(["runs", "--json"], dir));
    expect(list.map((x) => x.runId)).toEqual([good.runId, bad]);
    expect(list[1]).toMatchObject({ state: "unreadable", reason: expect.stringContaining("Unexpected token"), object: `runs/${bad}/run.json` });
    const text = await cli(["runs"], dir);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`${bad}  sleepy  unreadable`);
    expect(text.stdout).toContain(`runs/${bad}/run.json: run.json: Unexpected token`);
  });

  it("status shows each launch's tasks with attempts, timeouts and how they ended, and the overshoot of a budget", async () => {
    const dir = tempDir();
    // An item that blocks its event loop: its task times out (2 s), is killed, retried once, and times out again.
    const r = await cli(
      ["run", join(ROOT, "test", "fixtures", "jobs", "poison.ts"), "--local", "--json", "--tasks", "1", "--task-timeout", "2", "--max-retries", "1", "--kill-grace", "1", "--max-launches", "1", "--arg", "count=5", "--arg", "bad=0", "--arg", "mode=spin"],
      dir,
    );
    expect(r.code).toBe(4);
    const st = json<Status>(r);
    expect(st.launches[0]!.taskList).toEqual([expect.objectContaining({ index: 0, state: "failed", attempts: 2, timeouts: 2, lastExit: "killed by SIGKILL" })]);
    const text = await cli(["status", st.runId], dir);
    expect(text.stdout).toMatch(/^\s+task 0: failed, 2 attempts, 2 timed out, last: killed by SIGKILL$/m);
    // Stopped at its launch limit: the hint is the plain rerun that finishes it.
    expect(text.stdout).toMatch(/^ {2}unfinished \d+ items: .* rerun \S+ --local$/m);
    expect(text.stdout).not.toContain("--failed-items");

    const b = await cli(["run", SLEEPY, "--local", "--json", "--tasks", "2", "--budget-tokens", "300", "--arg", "count=40", "--arg", "sleepMs=50", "--arg", "tokens=100"], dir);
    expect(b.code).toBe(4);
    const spent = json<Status & { overshoot?: { tokens: number } }>(b);
    expect(spent.state).toBe("budget_exhausted");
    const shown = await cli(["status", spent.runId], dir, PLAIN);
    // Overshoot is what items in flight spent past the budget: shown exactly when there is some.
    const usage = (json<{ usage: { tokens: number } }>(await cli(["status", spent.runId, "--json"], dir))).usage.tokens;
    expect(spent.overshoot?.tokens ?? 0).toBe(Math.max(0, usage - 300));
    expect(shown.stdout.includes(`overshoot: ${usage - 300} tokens past the budget`)).toBe(usage > 300);
    expect(shown.stdout).toMatch(/^\s+budget\s+raise it and go on: .* rerun \S+ --local --budget-tokens 600$/m);
  }, 120_000);
});
