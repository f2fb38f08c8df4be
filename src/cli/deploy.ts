/**
 * `shardrun deploy`: one Cloud Run job per shardrun job (`shardrun-<job>`), created or updated
 * through the Cloud Run Admin API so that the cloud matches the job definitions and
 * manifests/shardrun.json. `--dry-run` compares and prints, changing nothing; without a project
 * or credentials it prints the jobs it would create.
 */
import { ExitCode, UsageError } from "../core/errors.js";
import { cloudSettings, hasDefaultCredentials, SETTINGS_FILE } from "../config/cloud.js";
import { jobFolderNames, prepareJob, resolveJob } from "../config/jobs.js";
import { packageVersion } from "../config/paths.js";
import type { Io } from "./io.js";

export interface DeployFlags {
  dryRun?: boolean;
  project?: string;
  region?: string;
  image?: string;
  json?: boolean;
}

/** Why a job's parallelism is left unset, for people reading what deploy did. */
const PARALLELISM_NOTE = "parallelism unset: every task of an execution runs at once, so a run's --tasks is its parallelism and every launch is valid";

export async function deployCommand(positionals: string[], flags: DeployFlags, io: Io): Promise<number> {
  const dryRun = flags.dryRun === true;
  const settings = cloudSettings(
    {
      ...(flags.project !== undefined ? { project: flags.project } : {}),
      ...(flags.region !== undefined ? { region: flags.region } : {}),
    },
    io.cwd,
    io.env ?? process.env,
    { allowPlaceholders: dryRun },
  );
  const image = flags.image ?? settings.image;
  const { cloudRunClientOptions } = await import("../launcher/cloud-run-endpoint.js");
  const clientOptions = cloudRunClientOptions();
  // A dry run without credentials compares nothing rather than fail on them.
  const noCredentials = dryRun && !clientOptions && !hasDefaultCredentials(io.env ?? process.env);
  const offline = !settings.project || !settings.region || noCredentials;
  if (!dryRun) {
    const missing = [offline && "--project and --region", !image && "--image (or SHARDRUN_IMAGE)"].filter(Boolean);
    if (missing.length) throw new UsageError(`deploy: needs ${missing.join(" and ")}, or set them in ${SETTINGS_FILE}; --dry-run shows what it would create`);
  }

  const names = positionals.length ? positionals : jobFolderNames();
  const { buildJob, deployJob, deploySpecFor, jobJson } = await import("../launcher/cloud-run-deploy.js");
  const version = packageVersion();

  const results: { job: string; action: string; changes: string[]; resource: unknown; compared: boolean }[] = [];
  for (const name of names) {
    const { job } = await prepareJob(resolveJob(name, io.cwd));
    const spec = deploySpecFor(job, { ...settings, image }, version);
    if (dryRun && offline) {
      // Named as it would be, so that the project and region it goes to show.
      results.push({ job: job.name, action: "create", changes: [], resource: jobJson({ name: `projects/${spec.project}/locations/${spec.region}/jobs/${spec.name}`, ...buildJob(spec) }), compared: false });
      continue;
    }
    const r = await deployJob(spec, { dryRun, ...(clientOptions ? { clientOptions } : {}) });
    results.push({ job: job.name, action: r.action, changes: r.changes, resource: r.job, compared: true });
  }

  const target = {
    project: settings.project ?? null,
    region: settings.region ?? null,
    image: image ?? null,
    serviceAccount: settings.serviceAccount ?? null,
    parallelism: "unset",
  };
  if (flags.json) {
    io.stdout.write(JSON.stringify({ dryRun, ...target, results }, null, 2) + "\n");
    return ExitCode.ok;
  }
  const unknown = (v: string | null, what: string) => v ?? `(no ${what}${settings.placeholders.includes(what) ? `: a placeholder in ${SETTINGS_FILE}` : ""})`;
  io.stdout.write(
    `${dryRun ? "would deploy" : "deploying"} to project ${unknown(target.project, "project")}, region ${unknown(target.region, "region")}\n` +
      `  image            ${unknown(target.image, "image")}\n` +
      `  service account  ${target.serviceAccount ?? "(none: Cloud Run's default compute account)"}\n` +
      `  ${PARALLELISM_NOTE}\n`,
  );
  if (dryRun && offline) {
    const why = noCredentials && settings.project && settings.region
      ? "no Google credentials found; run `gcloud auth application-default login` to compare"
      : settings.placeholders.some((p) => p === "project" || p === "region")
        ? `the project or region in ${SETTINGS_FILE} still holds a placeholder; pass --project and --region, or fill it in`
        : `no project or region; pass --project and --region, or set them in ${SETTINGS_FILE}`;
    io.stdout.write(`dry run, not compared with Cloud Run (${why})\n`);
  }
  for (const r of results) {
    const verb = dryRun ? `would ${r.action === "unchanged" ? "leave unchanged" : r.action}` : r.action === "unchanged" ? "unchanged" : `${r.action}d`;
    io.stdout.write(`shardrun-${r.job}: ${verb}${r.changes.length ? ` (${r.changes.join(", ")})` : ""}\n`);
    if (dryRun && r.action !== "unchanged") io.stdout.write(JSON.stringify(r.resource, null, 2).replace(/^/gm, "  ") + "\n");
  }
  return ExitCode.ok;
}
