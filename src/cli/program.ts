/**
 * The `shardrun` command on commander: every command, its typed flags, and help generated from
 * them with examples. The actions load their implementation on first use, so that `--help` or
 * `status` does not pay for the service or the Cloud Run clients.
 */
import { Command } from "commander";
import { SETTING_DEFAULTS } from "../core/settings.js";
import { addLaunchOptions, addStoreOptions, collect, type RerunFlags, type RunFlags, type StoreFlags } from "./flags.js";
import type { DeployFlags } from "./deploy.js";
import type { DoctorFlags } from "./doctor.js";
import type { Io } from "./io.js";
import type { SyncFlags } from "./schedules.js";
import type { ServeFlags } from "./serve.js";

/** What an action returns: the process's exit code. */
export type Exit = (code: number) => void;

const EXIT_CODES = `Exit codes: 0 ok, 1 internal error, 2 bad usage or input (one line naming the flag, nothing
written), 3 the run finished with failed items, 4 it stopped with items unfinished (launch
limit, failure tolerance or budget).`;

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
    .addHelpText("after", `\nEvery command takes --help; run, status, runs, rerun, deploy, doctor and schedules take --json.\n${EXIT_CODES}\n${examples("shardrun run summarize-docs --local --tasks 2 --shards 8", "shardrun status <runId>", "shardrun help run")}`);

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
      .option("--arg <key=value>", "a job argument (repeatable), checked by the job's args schema", collect, []),
    { maxLaunchesDefault: true },
  )
    .addHelpText(
      "after",
      `\nPlans a run (writes its shards to the store), launches tasks and watches them with progress bars until every\nshard is done; when a launch ends with shards unfinished, it launches again for what is left.\n${EXIT_CODES}\n${examples(
        "shardrun run summarize-docs --local --tasks 2 --shards 8",
        "shardrun run ./jobs/echo/index.ts --local --arg count=100 --max-failed-items 2%",
        "shardrun run summarize-docs --store gs://my-bucket/shardrun --tasks 20 --shards 200 --budget-usd 5",
      )}`,
    )
    .action(act(async (job: string, flags: RunFlags) => (await import("./commands.js")).runCommand(job, flags, io)));

  addStoreOptions(program.command("status").description("show a run's state, items, shards and launches").argument("<runId>"))
    .option("--json", "the status object as JSON")
    .addHelpText("after", examples("shardrun status 20261122-020000-summarize-docs-ab12", "shardrun status 20261122-020000-summarize-docs-ab12 --json | jq .items"))
    .action(act(async (runId: string, flags: StoreFlags & { json?: boolean }) => (await import("./commands.js")).statusCommand(runId, flags, io)));

  addStoreOptions(program.command("runs").description("list runs, newest first"))
    .option("--limit <n>", "at most n runs (default 50)")
    .option("--json", "an array of {runId, job, state, createdAt, ...}")
    .addHelpText("after", examples("shardrun runs", "shardrun runs --limit 5 --json"))
    .action(act(async (flags: StoreFlags & { json?: boolean; limit?: string }) => (await import("./commands.js")).runsCommand(flags, io)));

  addStoreOptions(program.command("output").description("print the merged outputs (JSONL, one line per succeeded item)").argument("<runId>"))
    .addHelpText(
      "after",
      `\nEach succeeded item once, {"i","key","output"}, in shard order; while the run is live, what is committed so far.\n${examples("shardrun output 20261122-020000-summarize-docs-ab12 > out.jsonl")}`,
    )
    .action(act(async (runId: string, flags: StoreFlags) => (await import("./commands.js")).outputCommand(runId, flags, io)));

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
      `\nFinished items are never redone. The budget flags raise (or set) the run's budget, e.g. to finish a\nbudget_exhausted run.\n${EXIT_CODES}\n${examples(
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
