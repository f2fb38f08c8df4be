/**
 * `shardrun schedules list|sync`: the schedules declared in the job definitions, and making Cloud
 * Scheduler match them. `sync --dry-run` compares and prints, changing nothing; without a project
 * and region it prints the jobs it would create, not compared.
 */
import { Cron } from "croner";
import { ExitCode, UsageError } from "../core/errors.js";
import { cloudSettings, hasDefaultCredentials, SETTINGS_FILE } from "../config/cloud.js";
import { ENV } from "../config/env.js";
import { loadScheduleCatalog } from "../schedules/load.js";
import { listed, type ListedSchedule } from "../schedules/schedule.js";
import type { Io } from "./io.js";

/** The next time a schedule fires, for people reading the list. */
function nextFire(s: ListedSchedule, now = new Date()): string | null {
  if (s.paused) return null;
  return new Cron(s.cron, { mode: "5-part", timezone: s.timeZone, paused: true }).nextRun(now)?.toISOString() ?? null;
}

export async function listCommand(flags: { json?: boolean }, io: Io): Promise<number> {
  const catalog = await loadScheduleCatalog();
  const schedules = catalog.schedules.map((s) => ({ ...listed(s), next: nextFire(s) }));
  // A job that does not build hides its own schedules only: it is listed with the reason.
  const unavailable = catalog.unavailable.map((u) => ({ job: u.job, module: u.module, unavailable: true as const, reason: u.reason }));
  if (flags.json) {
    io.stdout.write(JSON.stringify([...schedules, ...unavailable], null, 2) + "\n");
    return ExitCode.ok;
  }
  if (!schedules.length && !unavailable.length) io.stdout.write("no schedules: add `schedules: [{ name, cron, timeZone, args }]` to a job definition\n");
  for (const s of schedules) {
    const args = Object.keys(s.args).length ? `  args ${JSON.stringify(s.args)}` : "";
    io.stdout.write(`${s.name.padEnd(28)} ${s.job.padEnd(20)} ${`${s.cron} (${s.timeZone})`.padEnd(32)} ${s.paused ? "paused" : `next ${s.next}`}${args}\n`);
  }
  for (const u of unavailable) io.stdout.write(`${"(unavailable)".padEnd(28)} ${u.job.padEnd(20)} the job does not load, so its schedules are unknown: ${u.reason}\n`);
  return ExitCode.ok;
}

export interface SyncFlags {
  dryRun?: boolean;
  project?: string;
  region?: string;
  serviceUrl?: string;
  serviceAccount?: string;
  audience?: string;
  json?: boolean;
}

export async function syncCommand(flags: SyncFlags, io: Io): Promise<number> {
  const env = io.env ?? process.env;
  const dryRun = flags.dryRun === true;
  const settings = cloudSettings(
    { ...(flags.project ? { project: flags.project } : {}), ...(flags.region ? { region: flags.region } : {}) },
    io.cwd,
    env,
    { allowPlaceholders: dryRun },
  );
  const serviceUrl = flags.serviceUrl ?? (env[ENV.serviceUrl] || undefined);
  const serviceAccount = flags.serviceAccount ?? settings.serviceAccount;
  const audience = flags.audience ?? (env[ENV.oidcAudience] || undefined);
  const { cloudSchedulerClientOptions, desiredJobs, syncSchedules, parentOf } = await import("../schedules/cloud-scheduler.js");
  // A dry run without credentials compares nothing rather than fail on them.
  const noCredentials = dryRun && !cloudSchedulerClientOptions() && !hasDefaultCredentials();
  const offline = !settings.project || !settings.region || noCredentials;
  const missing = [
    offline && "--project and --region",
    !serviceUrl && `--service-url (or ${ENV.serviceUrl})`,
    !serviceAccount && `--service-account (or serviceAccount in ${SETTINGS_FILE})`,
  ].filter(Boolean);
  if (!dryRun && missing.length) throw new UsageError(`schedules sync: needs ${missing.join(" and ")}; --dry-run shows what it would do`);

  const catalog = await loadScheduleCatalog();
  const schedules = catalog.schedules.map(listed);
  // Cloud Scheduler jobs of a job that does not build are left as they are, not deleted.
  const keepJobsOf = catalog.unavailable.map((u) => u.job);
  for (const u of catalog.unavailable) io.stderr.write(`schedules sync: job ${u.job} does not load; its Cloud Scheduler jobs are left as they are: ${u.reason}\n`);
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
    result = { ...(await syncSchedules({ ...spec, dryRun, keepJobsOf, ...(clientOptions ? { clientOptions } : {}) })), compared: true };
  }

  if (flags.json) {
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
  if ("kept" in result && result.kept?.length) io.stdout.write(`${result.kept.length} kept as they are (their job does not load): ${result.kept.join(", ")}\n`);
  return ExitCode.ok;
}
