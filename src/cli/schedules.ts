/**
 * `shardrun schedules list|sync`: the schedules declared in the job definitions, and making Cloud
 * Scheduler match them. `sync --dry-run` compares and prints, changing nothing; without a project
 * and region it prints the jobs it would create, not compared.
 */
import { Cron } from "croner";
import { ExitCode, UsageError } from "../core/errors.js";
import { cloudSettings, hasDefaultCredentials, SETTINGS_FILE } from "../config/cloud.js";
import { ENV } from "../config/env.js";
import { listSchedules, type ListedSchedule } from "../scheduler/schedules.js";
import { parse } from "./args.js";
import type { Io } from "./commands.js";

export async function schedulesCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "list") return listCommand(rest, io);
  if (sub === "sync") return syncCommand(rest, io);
  throw new UsageError(`schedules: expected \`list\` or \`sync\`, got ${sub ? `"${sub}"` : "nothing"} (see \`shardrun schedules --help\`)`);
}

/** The next time a schedule fires, for people reading the list. */
function nextFire(s: ListedSchedule, now = new Date()): string | null {
  if (s.paused) return null;
  return new Cron(s.cron, { mode: "5-part", timezone: s.timeZone, paused: true }).nextRun(now)?.toISOString() ?? null;
}

async function listCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("schedules list", argv, { json: { type: "boolean" }, help: { type: "boolean", short: "h" } });
  if (positionals.length) throw new UsageError(`schedules list: takes no arguments, got ${positionals.join(" ")}`);
  const schedules = (await listSchedules()).map((s) => ({ ...s, next: nextFire(s) }));
  if (values.json) {
    io.stdout.write(JSON.stringify(schedules, null, 2) + "\n");
    return ExitCode.ok;
  }
  if (!schedules.length) io.stdout.write("no schedules: add `schedules: [{ name, cron, timeZone, args }]` to a job definition\n");
  for (const s of schedules) {
    const args = Object.keys(s.args).length ? `  args ${JSON.stringify(s.args)}` : "";
    io.stdout.write(`${s.name.padEnd(28)} ${s.job.padEnd(20)} ${`${s.cron} (${s.timeZone})`.padEnd(32)} ${s.paused ? "paused" : `next ${s.next}`}${args}\n`);
  }
  return ExitCode.ok;
}

async function syncCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("schedules sync", argv, {
    "dry-run": { type: "boolean" },
    project: { type: "string" },
    region: { type: "string" },
    "service-url": { type: "string" },
    "service-account": { type: "string" },
    audience: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  // A subset of the jobs would delete the others' schedules: sync always takes them all.
  if (positionals.length) throw new UsageError(`schedules sync: takes no arguments (it syncs the schedules of every job), got ${positionals.join(" ")}`);
  const dryRun = values["dry-run"] === true;
  const str = (name: string) => (typeof values[name] === "string" ? (values[name] as string) : undefined);
  const settings = cloudSettings(
    { ...(str("project") ? { project: str("project")! } : {}), ...(str("region") ? { region: str("region")! } : {}) },
    io.cwd,
    process.env,
    { allowPlaceholders: dryRun },
  );
  const serviceUrl = str("service-url") ?? (process.env[ENV.serviceUrl] || undefined);
  const serviceAccount = str("service-account") ?? settings.serviceAccount;
  const audience = str("audience") ?? (process.env[ENV.oidcAudience] || undefined);
  const { cloudSchedulerClientOptions, desiredJobs, syncSchedules, parentOf } = await import("../scheduler/cloud-scheduler.js");
  // A dry run without credentials compares nothing rather than fail on them.
  const noCredentials = dryRun && !cloudSchedulerClientOptions() && !hasDefaultCredentials();
  const offline = !settings.project || !settings.region || noCredentials;
  const missing = [
    offline && "--project and --region",
    !serviceUrl && `--service-url (or ${ENV.serviceUrl})`,
    !serviceAccount && `--service-account (or serviceAccount in ${SETTINGS_FILE})`,
  ].filter(Boolean);
  if (!dryRun && missing.length) throw new UsageError(`schedules sync: needs ${missing.join(" and ")}; --dry-run shows what it would do`);

  const schedules = await listSchedules();
  const spec = {
    project: settings.project ?? "PROJECT_ID",
    region: settings.region ?? "REGION",
    serviceUrl: serviceUrl ?? "https://SERVICE_URL",
    serviceAccountEmail: serviceAccount ?? "SERVICE_ACCOUNT@PROJECT_ID.iam.gserviceaccount.com",
    ...(audience ? { audience } : {}),
    schedules,
  };
  let result;
  if (offline) {
    // Nothing to compare with: every job would be created.
    const desired = desiredJobs(spec);
    const create = [...desired].map(([id, d]) => ({ id, ...(d.schedule ? { schedule: d.schedule.name } : {}), changes: [], job: d.job }));
    const pause = create.filter((c) => desired.get(c.id)?.schedule?.paused).map((c) => ({ ...c, changes: ["state: new -> PAUSED"] }));
    result = { dryRun, compared: false, parent: parentOf(spec.project, spec.region), create, update: [], pause, resume: [], delete: [], unchanged: [] };
  } else {
    const clientOptions = cloudSchedulerClientOptions();
    result = { ...(await syncSchedules({ ...spec, dryRun, ...(clientOptions ? { clientOptions } : {}) })), compared: true };
  }

  if (values.json) {
    io.stdout.write(JSON.stringify(result, null, 2) + "\n");
    return ExitCode.ok;
  }
  if (!result.compared) {
    const why = noCredentials && settings.project && settings.region
      ? "no Google credentials found: run `gcloud auth application-default login` to compare"
      : settings.placeholders.length
        ? `${settings.placeholders.join(", ")} in ${SETTINGS_FILE} still hold placeholders`
        : "no project/region";
    io.stdout.write(`dry run, not compared with Cloud Scheduler (${why}: pass --project and --region, or fill ${SETTINGS_FILE})\n`);
  } else if (dryRun) {
    io.stdout.write(`dry run: compared with Cloud Scheduler in ${result.parent}; nothing changed\n`);
  }
  if (dryRun && missing.length && result.compared) io.stdout.write(`note: placeholders stand for ${missing.join(" and ")}\n`);
  const verb = (action: string) => (dryRun ? `would ${action}` : `${action.replace(/e$/, "")}ed`);
  for (const action of ["create", "update", "pause", "resume", "delete"] as const) {
    for (const c of result[action]) {
      io.stdout.write(`${c.id}: ${verb(action)}${c.changes.length ? ` (${c.changes.join(", ")})` : ""}\n`);
      if (dryRun && (action === "create" || action === "update")) io.stdout.write(JSON.stringify(c.job, null, 2).replace(/^/gm, "  ") + "\n");
    }
  }
  if (result.unchanged.length) io.stdout.write(`${result.unchanged.length} unchanged: ${result.unchanged.join(", ")}\n`);
  return ExitCode.ok;
}
