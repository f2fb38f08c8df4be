/** Help texts, one per command. */

export const MAIN_HELP = `shardrun — checkpointed, resumable batch runs on Cloud Run Jobs (or on this machine)

Usage: shardrun <command> [options]

Commands:
  run <job>          plan a run of a job, launch its tasks, watch it to the end
  status <runId>     show a run's state, items, shards and launches
  runs               list runs, newest first
  output <runId>     print the merged outputs (JSONL, one line per succeeded item)
  rerun <runId>      launch what is not done (or, with --failed-items, the failed items)
  deploy             create or update the Cloud Run jobs (one per job under jobs/)
  serve              the scheduler service: HTTP API, dashboard, reconcile, schedules
  schedules list|sync  list the jobs' cron schedules, or make Cloud Scheduler match them
  worker             the task entrypoint (run by the launcher, not by people)

Every command takes --store DIR (default ./.shardrun) and --help.
Exit codes: 0 ok, 1 internal error, 2 bad usage or input, 3 run finished with failed items,
            4 run stopped with items unfinished (launch limit, failure tolerance or budget).
`;

const STORE = `  --store DIR|URL        where runs live: a folder (default ./.shardrun), file:///path or
                         gs://bucket/prefix (default: SHARDRUN_STORE_URL, else ./.shardrun)
  --project P, --region R  Cloud Run project and region (without --local; also from
                         SHARDRUN_PROJECT, SHARDRUN_REGION or manifests/shardrun.json)`;

export const HELP: Record<string, string> = {
  run: `Usage: shardrun run <job> --local [options]

Plans a run of <job> (a folder name under jobs/, or a path to a job module, .ts or .js), writes
its shards to the store, launches tasks and watches them with progress bars until every shard is
done. When a launch ends with shards unfinished, it launches again for what is left. The job is
built as it is now (no \`make build\`) into one bundle, which the run records and its tasks run.

Options:
  --local                run tasks as local processes that behave like Cloud Run Jobs tasks
                         (without it: Cloud Run Jobs, which needs a gs:// store)
${STORE}
  --shards N             split the items into N shards (balanced by the job's weight)
  --items-per-shard N    or: N items per shard
  --tasks N              tasks per launch (default: shards, at most 10); fewer tasks than shards
                         claim shards dynamically
  --parallelism N        tasks running at once (default: all)
  --task-timeout SECONDS task timeout; a task stops taking items shortly before it (default 3600)
  --max-retries N        retries per task after a failed attempt (default 3)
  --max-launches N       launches before giving up on unfinished shards (default 5)
  --budget-tokens N      run budget in tokens (ctx.usage); the run stops at it, budget_exhausted
  --budget-usd X         run budget in dollars
  --budget-minutes M     run budget in wall time since the run was planned
  --max-failed-items N|P%  failure tolerance: stop and fail the run beyond N failed items or
                         P percent of its items (default: the job's, or no limit)
  --kill-grace SECONDS   local: seconds from SIGTERM to SIGKILL at a timeout (default 10)
  --arg KEY=VALUE        a job argument (repeatable), checked by the job's args schema
  --json                 print the final status as JSON on stdout (no progress bars)

Exit: 0 all items succeeded, 3 finished with failed items, 4 stopped with items unfinished
(launch limit, failure tolerance, budget), 2 bad usage, 1 internal.
Example: shardrun run summarize-docs --local --tasks 2 --shards 8
`,
  status: `Usage: shardrun status <runId> [--json]

Shows a run's state (pending, running, succeeded, partial, failed, cancelled), its items
(total, succeeded, failed, pending), shards, launches and item executions.

Options:
${STORE}
  --json                 the status object as JSON
`,
  runs: `Usage: shardrun runs [--json] [--limit N]

Lists runs, newest first: run id, job, state, creation time.

Options:
${STORE}
  --limit N              at most N runs (default 50)
  --json                 an array of {runId, job, state, createdAt, ...}
`,
  output: `Usage: shardrun output <runId>

Prints the run's merged outputs as JSONL on stdout: one line {"i","key","output"} per succeeded
item, each item once, in shard order. Works while the run is live (what is committed so far).

Options:
${STORE}
`,
  rerun: `Usage: shardrun rerun <runId> --local [--failed-items] [options]

Launches the shards of a run that are not done; finished items are never redone. With
--failed-items, the items that failed are re-planned into new shards and run again.

Options:
  --local                run tasks as local processes
${STORE}
  --failed-items         rerun exactly the failed items
  --upgrade              build the job as it is now and run that (default: the code the run
                         recorded when it was planned)
  --budget-tokens N      raise (or set) the run budget in tokens, e.g. to finish a budget_exhausted run
  --budget-usd X         the same in dollars
  --budget-minutes M     the same in wall time
  --tasks N              tasks per launch
  --parallelism N        tasks running at once
  --max-launches N       launches before giving up (default 5)
  --kill-grace SECONDS   local: seconds from SIGTERM to SIGKILL at a timeout (default 10)
  --json                 print the final status as JSON on stdout
`,
  deploy: `Usage: shardrun deploy [job...] [--dry-run] [--project P] [--region R] [--image I] [--json]

Creates or updates one Cloud Run job per shardrun job (named shardrun-<job>; all jobs under
jobs/ unless named) through the Cloud Run Admin API: image, task timeout, retries,
parallelism, service account, memory, CPU, from manifests/shardrun.json, the environment
(SHARDRUN_PROJECT, SHARDRUN_REGION, SHARDRUN_IMAGE) and these flags.

Options:
  --dry-run              change nothing: show what would be created or updated (without a
                         project and region, the jobs it would create, not compared)
  --project P            Google Cloud project
  --region R             Cloud Run region
  --image I              container image (see the Dockerfile)
  --json                 the results as JSON
`,
  schedules: `Usage: shardrun schedules list [--json]
       shardrun schedules sync [--dry-run] [--project P] [--region R] [--service-url URL]
                               [--service-account EMAIL] [--audience A] [--json]

list: every schedule declared in the job definitions (\`schedules: [{ name, cron, timeZone,
args }]\`), with the job it runs and its next fire time.

sync: creates, updates, pauses, resumes and deletes Cloud Scheduler jobs so that they match the
schedules: one job shardrun-<schedule> per schedule, which POSTs to
<service-url>/v1/schedules/<schedule>:fire with an OIDC token of the service account (retried 3
times with backoff; a fire is idempotent per scheduled time), and shardrun-reconcile, which POSTs
to <service-url>/v1/reconcile every 5 minutes. Only jobs shardrun made are changed or deleted.

Options:
  --dry-run              change nothing: show what would be created, updated, paused, resumed or
                         deleted (without a project and region: what would be created, not compared)
  --project P            Google Cloud project (or SHARDRUN_PROJECT, manifests/shardrun.json)
  --region R             Cloud Scheduler location (or SHARDRUN_REGION, manifests/shardrun.json)
  --service-url URL      the scheduler service's URL (or SHARDRUN_SERVICE_URL)
  --service-account EMAIL  the identity of the OIDC tokens; it needs roles/run.invoker on the
                         service (default: serviceAccount in manifests/shardrun.json)
  --audience A           the tokens' audience (default: SHARDRUN_OIDC_AUDIENCE, else the service URL)
  --json                 the schedules (list) or the diff (sync) as JSON
`,
  serve: `Usage: shardrun serve [--local] [--port P] [--store DIR|URL] [--reconcile-every SECONDS]

The scheduler service (a Cloud Run service): an HTTP API to start, list, rerun and cancel runs
(OpenAPI at /openapi.json), the dashboard at /, schedule fires (POST /v1/schedules/<name>:fire),
and reconcile (POST /v1/reconcile), which continues runs whose launches ended with shards left.
Logs are Cloud Logging JSON lines on stdout. SIGTERM stops it gracefully.

Auth: every endpoint but /healthz and /openapi.json needs "Authorization: Bearer <token>".
  Cloud Run: a Google-signed OIDC ID token for SHARDRUN_OIDC_AUDIENCE (the service URL) from an
  email in SHARDRUN_ALLOWED_SERVICE_ACCOUNTS (comma-separated).
  --local: SHARDRUN_API_TOKEN (at least 16 characters); without it a random token is made and
  logged. Dashboard pages also take it as ?token=.

Options:
  --local                launch local processes, listen on 127.0.0.1, reconcile on a timer and
                         fire the jobs' schedules from this process
${STORE}
  --port P               port (default: PORT, which Cloud Run sets, else 8080)
  --host H               interface (default 127.0.0.1 with --local, else 0.0.0.0)
  --reconcile-every S    reconcile every S seconds; 0 turns the timer off (default 10 with
                         --local, else 0: on Cloud Run a Cloud Scheduler job calls /v1/reconcile,
                         since an idle service gets no CPU)
  --kill-grace SECONDS   local: seconds from SIGTERM to SIGKILL at a task timeout (default 10)
`,
  worker: `Usage: shardrun worker

The task entrypoint. Reads CLOUD_RUN_EXECUTION, CLOUD_RUN_TASK_INDEX, CLOUD_RUN_TASK_COUNT,
CLOUD_RUN_TASK_ATTEMPT, SHARDRUN_STORE, SHARDRUN_RUN, SHARDRUN_LAUNCH and SHARDRUN_DEADLINE_S,
works its shards and exits 0 (done), 75 (stopped with work left: retry me) or 1.
`,
};
