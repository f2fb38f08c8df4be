/**
 * `shardrun doctor`: checks a Google Cloud project before a first run, as `deploy` and
 * `schedules sync` would see it, and prints a checklist: each check with what it found and,
 * when it fails, the command that fixes it. It changes nothing. Exit 0 when every check
 * passes, 2 when some fail.
 */
import { ExitCode, UsageError } from "../core/errors.js";
import { cloudSettings, SETTINGS_FILE } from "../config/cloud.js";
import { ENV } from "../config/env.js";
import { jobFolderNames, prepareJobs } from "../config/jobs.js";
import { packageVersion } from "../config/paths.js";
import type { Check, DoctorContext } from "../doctor/ports.js";
import { colorsFor } from "./format.js";
import { cliPrefix } from "./hints.js";
import type { Io } from "./io.js";

export interface DoctorFlags {
  project?: string;
  region?: string;
  store?: string;
  image?: string;
  service?: string;
  serviceUrl?: string;
  serviceAccount?: string;
  json?: boolean;
}

/** The scheduler service's name in manifests/service.yaml. */
export const SERVICE_NAME = "shardrun-scheduler";

function bucketOf(store: string): string {
  const m = /^gs:\/\/([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(\/.*)?$/.exec(store);
  if (!m) throw new UsageError(`doctor: --store "${store}": expected gs://bucket or gs://bucket/prefix`);
  return m[1]!;
}

export async function doctorCommand(flags: DoctorFlags, io: Io): Promise<number> {
  const env = io.env ?? process.env;
  const settings = cloudSettings({ ...(flags.project !== undefined ? { project: flags.project } : {}), ...(flags.region !== undefined ? { region: flags.region } : {}) }, io.cwd, env);
  const { project, region } = settings;
  if (!project || !region) {
    const missing = [!project && "--project (or SHARDRUN_PROJECT)", !region && "--region (or SHARDRUN_REGION)"].filter(Boolean).join(" and ");
    const left = settings.placeholders.filter((k) => k === "project" || k === "region");
    throw new UsageError(`doctor: needs ${missing}, or set them in ${SETTINGS_FILE}${left.length ? ` (${left.join(" and ")} there still ${left.length > 1 ? "hold placeholders" : "holds a placeholder"})` : ""}`);
  }
  if (flags.serviceUrl !== undefined && !/^https?:\/\/[^/?#\s]+/.test(flags.serviceUrl)) throw new UsageError(`doctor: --service-url "${flags.serviceUrl}": expected an http(s) URL`);
  const store = flags.store ?? (env[ENV.defaultStore] || settings.store);
  const bucket = store?.startsWith("gs://") ? bucketOf(store) : undefined;
  const image = flags.image ?? settings.image;

  const [{ deploySpecFor }, { collectSchedules }, { listed }, { runChecks }, { googlePorts }] = await Promise.all([
    import("../launcher/cloud-run-deploy.js"),
    import("../schedules/load.js"),
    import("../schedules/schedule.js"),
    import("../doctor/checks.js"),
    import("../doctor/google.js"),
  ]);
  // Every job under jobs/, as deploy and schedules sync would load them; one that does not load fails its own check.
  const { prepared, unavailable } = await prepareJobs(jobFolderNames(), { cwd: io.cwd });
  const version = packageVersion();
  const schedules = collectSchedules(prepared.map((p) => ({ job: p.job, module: p.module, version: p.version, bundle: { key: p.key, bytes: p.bundle.bytes } }))).map(listed);
  const ctx: DoctorContext = {
    project,
    region,
    ...(bucket ? { bucket } : {}),
    ...(store ? { store } : {}),
    ...(settings.serviceAccount ? { workerServiceAccount: settings.serviceAccount } : {}),
    serviceName: flags.service ?? SERVICE_NAME,
    jobs: prepared.map((p) => ({ job: p.job.name, spec: deploySpecFor(p.job, { ...settings, image }, version) })),
    schedules,
    keepJobsOf: unavailable.map((u) => u.job),
    ...((flags.serviceUrl ?? env[ENV.serviceUrl]) ? { serviceUrl: (flags.serviceUrl ?? env[ENV.serviceUrl])!.replace(/\/+$/, "") } : {}),
    ...(flags.serviceAccount ? { oidcServiceAccount: flags.serviceAccount } : {}),
    shardrun: cliPrefix({ env, cwd: io.cwd, script: io.script }),
    deployFlags: flags.image ? ["--image", flags.image] : [],
  };
  const checks: Check[] = [
    ...(await runChecks(ctx, await googlePorts(env))),
    ...unavailable.map((u) => ({ name: `job ${u.job}`, ok: false, found: `the job does not load, so it cannot be deployed: ${u.reason}`, fix: null })),
  ];
  const allOk = checks.every((c) => c.ok);

  if (flags.json) {
    io.stdout.write(JSON.stringify({ project, region, ok: allOk, checks }, null, 2) + "\n");
  } else {
    const c = colorsFor(io.stdout, env);
    const width = Math.max(...checks.map((x) => x.name.length));
    io.stdout.write(`shardrun doctor: project ${project}, region ${region}${bucket ? `, bucket gs://${bucket}` : ""}\n`);
    for (const x of checks) {
      io.stdout.write(`${x.ok ? c.green("✓") : c.red("✗")} ${x.name.padEnd(width)}  ${x.found}\n`);
      for (const line of x.fix?.split("\n") ?? []) io.stdout.write(`  ${" ".repeat(width)}  fix: ${line}\n`);
    }
    const failedCount = checks.filter((x) => !x.ok).length;
    io.stdout.write(allOk ? "every check passed\n" : `${failedCount} of ${checks.length} checks failed\n`);
  }
  return allOk ? ExitCode.ok : ExitCode.usage;
}
