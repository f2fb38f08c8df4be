/**
 * The `shardrun` command on commander: every command, its typed flags, and help generated from
 * them with examples. The actions load their implementation on first use, so that `--help` or
 * `status` does not pay for the service or the Cloud Run clients.
 */
import { Command } from "commander";
import { SETTING_DEFAULTS } from "../core/settings.js";
import { EXIT_CODES as EXIT_CODE_TABLE, RUN_STATES } from "../core/states.js";
import type { ControlFlags } from "./control-commands.js";
import { addLaunchOptions, addStoreOptions, collect, type RerunFlags, type RunFlags, type StoreFlags } from "./flags.js";
import type { InitFlags } from "./init.js";
import type { FailuresFlags, RunsFlags, StatusFlags } from "./inspect.js";
import type { LogsFlags } from "./logs.js";
import type { OutputFlags } from "./output-command.js";
import type { DeployFlags } from "./deploy.js";
import type { DoctorFlags } from "./doctor.js";
import type { Io } from "./io.js";
import type { SyncFlags } from "./schedules.js";
import type { ServeFlags } from "./serve.js";

/** What an action returns: the process's exit code. */
export type Exit = (code: number) => void;

/** The exit-code table (core/states.ts), as help prints it. */
const EXIT_CODES = `Exit codes (run, rerun, watch and status --exit-status exit with the run's state):\n${EXIT_CODE_TABLE.map((e) => `  ${String(e.code).padStart(3)}  ${e.meaning}`).join("\n")}`;

const RUN_ID = "20261122-020000-summarize-docs-ab12";

function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`;
}

/**
 * Builds the program. `exit` receives each action's exit code; commander's own errors (unknown
 * flags, missing arguments) surface as CommanderError from `parseAsync` (see main.ts).
 */
export function buildProgram(io: Io, exit: Exit, version: string): Command {
  const program = new Command("shardrun")
    .description("checkpointed, resumable batch runs on Cloud Run Jobs (or on this machine)")
    .version(version, "--version", "print the version")
    .helpOption("-h, --help", "show help")
    .helpCommand("help [command]", "show help for a command")
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // main.ts prints commander's errors itself, as one line.
      outputError: () => {},
    })
    .addHelpText(
      "after",
      `\nEvery command takes --help; every command that reports takes --json (doctor too).\nRun states: ${RUN_STATES.join(", ")} (lists also show unreadable).\n${EXIT_CODES}\n${examples("shardrun run summarize-docs --local --tasks 2 --shards 8", "shardrun status <runId>", "shardrun help run")}`,
    );

  const act = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => async (...args: A) => exit(await fn(...args));

  addLaunchOptions(
    program
      .command("run")
      .description("plan a run of a job, launch its tasks, watch it to the end")
      .argument("<job>", "a folder name under jobs/, or a path to a job module")
      .option("--shards <n>", "split the items into n shards, balanced by the job's weight (1-100000)")
      .option("--items-per-shard <n>", "or: n items per shard")
      .option("--task-timeout <seconds>", `task timeout; a task stops taking items shortly before it (default ${SETTING_DEFAULTS.taskTimeoutSeconds})`)
      .option("--max-retries <n>", `retries per task after a failed attempt (0-10; default ${SETTING_DEFAULTS.maxRetries})`)
      .option("--max-failed-items <n|p%>", "failure tolerance: stop and fail the run beyond n failed items or p percent of its items (default: the job's, or none)")
      .option("--item-timeout <seconds>", "abort an item attempt running longer (ctx.signal); fail it `timeout` if it ignores the abort (default: the job's, or none)")
      .option("--crash-limit <n>", "crashes of a task process with an item in flight before that item fails `crashed` (1-100; default: the job's, 2)")
      .option("--concurrency <n>", "items at once in each task (1-1000; default: the job's)")
      .option("--items <file.jsonl|gs://bucket/items.jsonl>", "take the items from a JSONL file or bucket object (one JSON item a line, streamed), not from the job's source; each is checked by the job's item schema")
      .option("--max-items <n>", "refuse to plan more items than this (1-1000000000; default: SHARDRUN_MAX_ITEMS, else 10000000)")
      .option("--max-shards <n>", "refuse more shards than this, rerun rounds included (1-1000000; default: SHARDRUN_MAX_SHARDS, else 200000)")
      .option("--arg <key=value>", "a job argument (repeatable), checked by the job's args schema", collect, []),
    { maxLaunchesDefault: true },
  )
    .addHelpText(
      "after",
      `\nPlans a run (writes its shards to the store), launches tasks and watches them with progress bars until every\nshard is done; when a launch ends with shards unfinished, it launches again for what is left. Ctrl-C stops\nwatching only: the tasks go on, and the printed \`watch\` command re-attaches.\n${EXIT_CODES}\n${examples(
        "shardrun run summarize-docs --local --tasks 2 --shards 8",
        "shardrun run ./jobs/echo/index.ts --local --arg count=100 --max-failed-items 2%",
        "shardrun run summarize-docs --local --items ./inputs/items.jsonl --max-items 50000",
        "shardrun run summarize-docs --store gs://my-bucket/shardrun --tasks 20 --shards 200 --budget-usd 5",
      )}`,
    )
    .action(act(async (job: string, flags: RunFlags) => (await import("./commands.js")).runCommand(job, flags, io)));

  addStoreOptions(program.command("status").description("show a run's state, items, shards, launches and their tasks").argument("<runId>"))
    .option("--json", "the status object as JSON")
    .option("--exit-status", "exit with the run's state (see the exit codes below) instead of 0")
    .addHelpText(
      "after",
      `\nShows each launch's tasks that were retried, timed out or failed (attempts, timeouts, how the last attempt\nended), the spend against the budget and any overshoot, and the command that finishes the run.\n${EXIT_CODES}\n${examples(`shardrun status ${RUN_ID}`, `shardrun status ${RUN_ID} --json | jq .items`, `shardrun status ${RUN_ID} --exit-status || echo "not succeeded: $?"`)}`,
    )
    .action(act(async (runId: string, flags: StatusFlags) => (await import("./inspect.js")).statusCommand(runId, flags, io)));

  addStoreOptions(program.command("runs").description("list runs, newest first (by creation time)"))
    .option("--limit <n>", "at most n runs (default 50)")
    .option("--job <job>", "only runs of this job")
    .option("--state <state>", `only runs in this state: ${RUN_STATES.join(", ")} or unreadable`)
    .option("--since <when>", "only runs created since: a date (2026-11-22), a date-time, or an age (90m, 24h, 7d)")
    .option("--json", "an array of {runId, job, state, createdAt, finishedAt, items, failed, trigger}; unreadable runs carry reason and object")
    .addHelpText(
      "after",
      `\nReads the runs index (a few listings, whatever the number of runs). A run whose records cannot be read is\nlisted as unreadable, with the reason and the object, and never hides the others.\n${examples("shardrun runs", "shardrun runs --job summarize-docs --state partial --since 7d", "shardrun runs --limit 5 --json")}`,
    )
    .action(act(async (flags: RunsFlags) => (await import("./inspect.js")).runsCommand(flags, io)));

  addStoreOptions(program.command("output").description("write the merged outputs: each succeeded item once (JSONL or CSV)").argument("<runId>"))
    .option("--out <file|gs://bucket/key>", "write to this file (whole or not at all) or bucket object instead of stdout")
    .option("--format <format>", "jsonl (default): {\"i\",\"key\",\"output\"} a line; csv: a row per item, a column per top-level output field")
    .option("--failed", "add the failed items (the dead letter): jsonl lines {\"i\",\"key\",\"failed\":{reason,error,attempts,…}}; csv rows with status, reason, error, attempts")
    .addHelpText(
      "after",
      `
Each succeeded item once, in shard order; while the run is live, what is committed so far. Every output part is
checked (size, CRC32C, lines) before a line of it is written: a damaged part stops the output (exit 1, naming it).
CSV: columns i, key, then the outputs' top-level fields in the order they first appear (a field named like a
fixed column is prefixed "output."); nested objects and arrays are written as JSON text in their cell; an output
that is not an object goes in one "output" column. A gs:// object is uploaded in one request once it is whole.
${examples(`shardrun output ${RUN_ID} > out.jsonl`, `shardrun output ${RUN_ID} --format csv --out results.csv --failed`, `shardrun output ${RUN_ID} --out gs://my-bucket/exports/${RUN_ID}.jsonl`)}`,
    )
    .action(act(async (runId: string, flags: OutputFlags) => (await import("./output-command.js")).outputCommand(runId, flags, io)));

  addStoreOptions(program.command("failures").description("failed items grouped by reason and error, with counts, sample keys and a stack trace").argument("<runId>"))
    .option("--reason <reasons>", "only failures of these reasons, comma-separated: error, timeout, crashed, schema, budget, non_retriable, corrupt")
    .option("--limit <n>", "at most n groups (default 20); with --json, at most n items")
    .option("--json", "one line per failed item: {i, key, shard, reason, error, attempts, stack, lastLog, group}")
    .addHelpText(
      "after",
      `
Groups are by reason and by the error's shape: in a message, the item's own key becomes <key>, UUIDs and words
mixing letters and digits (request ids, hashes) become <id>, numbers become <n> and quoted text becomes "…", so
"timeout after 1203 ms (req 8f3a9c21)" and "timeout after 977 ms (req 0b5e1d44)" are one group. Largest first.
${examples(`shardrun failures ${RUN_ID}`, `shardrun failures ${RUN_ID} --reason non_retriable`, `shardrun failures ${RUN_ID} --json | jq -r .key`)}`,
    )
    .action(act(async (runId: string, flags: FailuresFlags) => (await import("./inspect.js")).failuresCommand(runId, flags, io)));

  addStoreOptions(program.command("cancel").description("stop a run: mark it cancelled and stop its live executions").argument("<runId>"))
    .option("--local", "the run's tasks are local processes (the default for a folder store, or when its launches were local)")
    .option("--json", "the run's status after the cancel")
    .addHelpText(
      "after",
      `
Marks the run cancelled first (so that nothing launches it again), then tells its live executions to stop: tasks
checkpoint the items in flight and exit. A run still being planned stops planning and removes what it wrote.
Finished items stay finished: \`rerun\` resumes a cancelled run, and \`watch\` on it prints its state and exits 5.
${examples(`shardrun cancel ${RUN_ID}`, `shardrun rerun ${RUN_ID} --local`)}`,
    )
    .action(act(async (runId: string, flags: ControlFlags) => (await import("./control-commands.js")).cancelCommand(runId, flags, io)));

  addStoreOptions(program.command("watch").description("re-attach to a run: progress bars until it ends, continuing it as run does").argument("<runId>"))
    .option("--local", "launch continuations as local processes (the default for a folder store, or when its launches were local)")
    .option("--json", "print the final status as JSON on stdout (no progress bars)")
    .addHelpText(
      "after",
      `
Drives the run as \`run\` did: when a launch ends with shards open it launches again for them (within the run's
--max-launches), and a launch whose supervisor or execution is gone is settled, so a run whose watcher and
tasks died is finished by watching it. A finished or cancelled run prints its state at once. Ctrl-C stops
watching only (exit 130).
${EXIT_CODES}
${examples(`shardrun watch ${RUN_ID}`, `shardrun watch ${RUN_ID} --json | jq .state`)}`,
    )
    .action(act(async (runId: string, flags: ControlFlags) => (await import("./control-commands.js")).watchCommand(runId, flags, io)));

  addStoreOptions(program.command("logs").description("the log lines of a run's tasks, by shard, item or task").argument("<runId>"))
    .option("--shard <shard>", "only lines of this shard (s000012, or 12)")
    .option("--item <key>", "only lines about this item (its key)")
    .option("--task <n>", "only lines of this task index")
    .option("--follow", "keep printing new lines until the run has no live launch (Ctrl-C to stop)")
    .option("--json", "one record a line: {time, severity, message, labels, fields, source}")
    .addHelpText(
      "after",
      `
Local runs: read from the executions folder next to the store (<store>/.executions/<execution>/task-N.log, every
attempt of a task in one file). Cloud Run runs: read from Cloud Logging (give --project), entries of resource
type cloud_run_job with the run's labels. Lines are the worker's structured lines, labelled run, task, attempt,
and shard and item where they are about one; other lines (a crash's output) are shown as they are.
${examples(`shardrun logs ${RUN_ID} --item doc-0042`, `shardrun logs ${RUN_ID} --shard 3 --follow`, `shardrun logs ${RUN_ID} --task 0 --json | jq -r .message`)}`,
    )
    .action(act(async (runId: string, flags: LogsFlags) => (await import("./logs.js")).logsCommand(runId, flags, io)));

  program
    .command("init")
    .description("start a new job: jobs/<name>/index.ts and a test, ready to run")
    .argument("<name>", "the job's name: lowercase letters, digits and dashes")
    .option("--root <folder>", "the project to add it to (default: this shardrun package; elsewhere the job imports \"shardrun\")")
    .option("--json", "{job, files}")
    .addHelpText(
      "after",
      `\nWrites <root>/jobs/<name>/index.ts (a job that counts words, to change into yours) and <root>/test/jobs/<name>.test.ts\n(its test, for vitest). Nothing is written when the job exists.\n${examples("shardrun init enrich-leads", "shardrun run enrich-leads --local --arg count=100", "npx vitest run test/jobs/enrich-leads.test.ts")}`,
    )
    .action(act(async (name: string, flags: InitFlags) => (await import("./init.js")).initCommand(name, flags, io)));

  addLaunchOptions(
    program
      .command("rerun")
      .description("launch what is not done (or, with --failed-items, the failed items)")
      .argument("<runId>")
      .option("--failed-items", "rerun exactly the failed items, re-planned into new shards")
      .option("--upgrade", "build the job as it is now and run that (default: the code the run recorded when it was planned)")
      .option("--reason <reasons>", "with --failed-items: only failures of these reasons, comma-separated: error, timeout, crashed, schema, budget, non_retriable (default: all but non_retriable)")
      .option("--repair", "first take damaged output parts out (and rebuild checkpoints that do not add up), so exactly their items run again"),
    { maxLaunchesDefault: true },
  )
    .addHelpText(
      "after",
      `\nFinished items are never redone. The budget flags raise (or set) the run's budget, e.g. to finish a\nbudget_exhausted run. A launch recorded as live whose supervisor or execution is gone is settled first.\n${EXIT_CODES}\n${examples(
        "shardrun rerun 20261122-020000-summarize-docs-ab12 --local",
        "shardrun rerun 20261122-020000-summarize-docs-ab12 --local --failed-items",
        "shardrun rerun 20261122-020000-summarize-docs-ab12 --local --budget-tokens 200000",
        "shardrun rerun 20261122-020000-summarize-docs-ab12 --local --repair",
      )}`,
    )
    .action(act(async (runId: string, flags: RerunFlags) => (await import("./commands.js")).rerunCommand(runId, flags, io)));

  addStoreOptions(program.command("verify").description("check every object of a run against what its checkpoints recorded").argument("<runId>"))
    .option("--json", "{runId, ok, problems: [{object, problem, repairable}]}")
    .addHelpText(
      "after",
      `
Checks that checkpoints add up, that every output part they name is there and whole (size, CRC32C, lines),
and lists orphan parts. Exit 0 when all is well, 1 when something is damaged (then: rerun --repair).
${examples("shardrun verify 20261122-020000-summarize-docs-ab12", "shardrun rerun 20261122-020000-summarize-docs-ab12 --local --repair")}`,
    )
    .action(act(async (runId: string, flags: StoreFlags & { json?: boolean }) => (await import("./commands.js")).verifyCommand(runId, flags, io)));

  program
    .command("deploy")
    .description("create or update the Cloud Run jobs (one per job under jobs/)")
    .argument("[job...]", "jobs to deploy (default: every job under jobs/)")
    .option("--dry-run", "change nothing: show what would be created or updated (without a project and region, what it would create)")
    .option("--project <project>", "Google Cloud project")
    .option("--region <region>", "Cloud Run region")
    .option("--image <image>", "container image (see the Dockerfile)")
    .option("--json", "the results as JSON")
    .addHelpText(
      "after",
      `\nOne Cloud Run job shardrun-<job> per job, through the Cloud Run Admin API: image, task timeout, retries,\nparallelism, service account, memory and CPU from manifests/shardrun.json, the environment (SHARDRUN_PROJECT,\nSHARDRUN_REGION, SHARDRUN_IMAGE) and these flags.\n${examples("shardrun deploy --dry-run", "shardrun deploy summarize-docs --project my-project --region europe-west1")}`,
    )
    .action(act(async (jobs: string[], flags: DeployFlags) => (await import("./deploy.js")).deployCommand(jobs, flags, io)));

  program
    .command("doctor")
    .description("check a Google Cloud project before a first run: credentials, bucket, jobs, roles, schedules, audience")
    .option("--project <project>", "Google Cloud project (or SHARDRUN_PROJECT, GOOGLE_CLOUD_PROJECT, manifests/shardrun.json)")
    .option("--region <region>", "Cloud Run region (or SHARDRUN_REGION, manifests/shardrun.json)")
    .option("--store <url>", "the runs' bucket, gs://bucket/prefix (or SHARDRUN_STORE_URL, manifests/shardrun.json)")
    .option("--image <image>", "the image the jobs should run, as given to deploy (or SHARDRUN_IMAGE, manifests/shardrun.json)")
    .option("--service <name>", "the scheduler service's name (default shardrun-scheduler)")
    .option("--service-url <url>", "the URL Cloud Scheduler calls, as given to schedules sync (default: the service's URL, or SHARDRUN_SERVICE_URL)")
    .option("--service-account <email>", "the identity of Cloud Scheduler's OIDC tokens, as given to schedules sync (default: the service's own)")
    .option("--json", "{project, region, ok, checks: [{name, ok, found, fix}]}")
    .addHelpText(
      "after",
      `
Reads the project, changes nothing, and prints one line per check with what it found; a failed check comes
with the command that fixes it (a gcloud command, or shardrun deploy / schedules sync):
  credentials  which Application Default Credentials are found, whose they are, and that they give a token
  bucket       the bucket exists, and you hold the object permissions the store uses on it
  job <name>   each job under jobs/ is deployed as Cloud Run job shardrun-<name> as deploy would set it
               (image, version label, parallelism unset, task count, timeout, retries, service account)
  roles        the worker and scheduler service accounts hold the roles manifests/iam.sh grants, and
               Cloud Scheduler's identity may invoke the service
  schedules    Cloud Scheduler matches the jobs' schedules (schedules sync --dry-run would change nothing)
  audience     the service's URL, its SHARDRUN_OIDC_AUDIENCE and the audience of Cloud Scheduler's tokens
               agree, and SHARDRUN_INVOKER_IAM_CHECK matches the service's invoker IAM check
Exit codes: 0 every check passed, 2 some check failed (or bad usage: one line naming the flag), 1 internal error.
${examples("shardrun doctor --project my-project --region europe-west1 --store gs://my-bucket/shardrun", "shardrun doctor --json | jq '.checks[] | select(.ok == false)'")}`,
    )
    .action(act(async (flags: DoctorFlags) => (await import("./doctor.js")).doctorCommand(flags, io)));

  addStoreOptions(program.command("serve").description("the scheduler service: HTTP API, dashboard, reconcile, schedules"))
    .option("--local", "launch local processes, listen on 127.0.0.1, reconcile on a timer and fire the jobs' schedules from this process")
    .option("--port <port>", "port (default: PORT, which Cloud Run sets, else 8080)")
    .option("--host <host>", "interface (default 127.0.0.1 with --local, else 0.0.0.0)")
    .option("--reconcile-every <seconds>", "reconcile every s seconds; 0 turns the timer off (default 10 with --local, else 0: Cloud Scheduler calls /v1/reconcile)")
    .option("--kill-grace <seconds>", `local: seconds from SIGTERM to SIGKILL at a task timeout (default ${SETTING_DEFAULTS.killGraceSeconds})`)
    .addHelpText(
      "after",
      `\nAn HTTP API to start, list, rerun and cancel runs (OpenAPI at /openapi.json), the dashboard at /, schedule
fires (POST /v1/schedules/<name>:fire) and reconcile (POST /v1/reconcile). Logs are Cloud Logging JSON lines on
stdout. SIGTERM stops it gracefully.

Auth: every endpoint but /healthz and /openapi.json needs "Authorization: Bearer <token>".
  Cloud Run: a Google-signed OIDC ID token for SHARDRUN_OIDC_AUDIENCE (the service URL) from an email in
  SHARDRUN_ALLOWED_SERVICE_ACCOUNTS (comma-separated).
  --local: SHARDRUN_API_TOKEN (at least 16 characters); without it a random token is made and logged.
  Dashboard pages also take it as ?token=.
${examples("shardrun serve --local", "SHARDRUN_API_TOKEN=$(openssl rand -hex 16) shardrun serve --local --port 8080", "shardrun serve --store gs://my-bucket/shardrun --project my-project --region europe-west1")}`,
    )
    .action(act(async (flags: ServeFlags) => (await import("./serve.js")).serveCommand(flags, io)));

  const schedules = program.command("schedules").description("list the jobs' cron schedules, or make Cloud Scheduler match them");
  schedules
    .command("list")
    .description("every schedule declared in the job definitions, with its job and next fire time")
    .option("--json", "the schedules as JSON")
    .addHelpText("after", examples("shardrun schedules list", "shardrun schedules list --json"))
    .action(act(async (flags: { json?: boolean }) => (await import("./schedules.js")).listCommand(flags, io)));
  schedules
    .command("sync")
    .description("create, update, pause, resume and delete Cloud Scheduler jobs to match the schedules")
    .option("--dry-run", "change nothing: show the diff (without a project and region: what would be created, not compared)")
    .option("--project <project>", "Google Cloud project (or SHARDRUN_PROJECT, manifests/shardrun.json)")
    .option("--region <region>", "Cloud Scheduler location (or SHARDRUN_REGION, manifests/shardrun.json)")
    .option("--service-url <url>", "the scheduler service's URL (or SHARDRUN_SERVICE_URL)")
    .option("--service-account <email>", "the identity of the OIDC tokens; it needs roles/run.invoker on the service (default: serviceAccount in manifests/shardrun.json)")
    .option("--audience <audience>", "the tokens' audience (default: SHARDRUN_OIDC_AUDIENCE, else the service URL)")
    .option("--json", "the diff as JSON")
    .addHelpText(
      "after",
      `\nOne Cloud Scheduler job shardrun-<schedule> per schedule, which POSTs to <service-url>/v1/schedules/<schedule>:fire
with an OIDC token of the service account (retried with backoff; a fire is idempotent per scheduled time), and
shardrun-reconcile, which POSTs to <service-url>/v1/reconcile every 5 minutes. Only jobs shardrun made are changed.
${examples("shardrun schedules sync --dry-run", "shardrun schedules sync --service-url https://shardrun-scheduler-abc-ew.a.run.app --service-account invoker@my-project.iam.gserviceaccount.com")}`,
    )
    .action(act(async (flags: SyncFlags) => (await import("./schedules.js")).syncCommand(flags, io)));
  schedules.addHelpText("after", examples("shardrun schedules list", "shardrun schedules sync --dry-run"));

  program
    .command("worker")
    .description("the task entrypoint (run by the launcher, not by people)")
    .addHelpText(
      "after",
      `\nReads CLOUD_RUN_EXECUTION, CLOUD_RUN_TASK_INDEX, CLOUD_RUN_TASK_COUNT, CLOUD_RUN_TASK_ATTEMPT, SHARDRUN_STORE,
SHARDRUN_RUN, SHARDRUN_LAUNCH and SHARDRUN_DEADLINE_S, works its shards and exits 0 (done), 75 (stopped with work
left: retry me) or 1.
${examples("CLOUD_RUN_EXECUTION=e1 CLOUD_RUN_TASK_INDEX=0 CLOUD_RUN_TASK_COUNT=1 SHARDRUN_STORE=./.shardrun SHARDRUN_RUN=<runId> SHARDRUN_LAUNCH=0 shardrun worker")}`,
    )
    .action(act(async () => (await import("../worker/main.js")).workerMain()));

  return program;
}
