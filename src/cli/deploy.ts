/**
 * `shardrun deploy`: one Cloud Run job per shardrun job (`shardrun-<job>`), created or updated
 * through the Cloud Run Admin API so that the cloud matches the job definitions and
 * manifests/shardrun.json. `--dry-run` compares and prints, changing nothing; without a project
 * it prints the jobs it would create.
 */
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { ExitCode, UsageError } from "../core/errors.js";
import { cloudSettings, hasDefaultCredentials, SETTINGS_FILE } from "../config/cloud.js";
import { ENV } from "../config/env.js";
import { prepareJob, resolveJob } from "../config/jobs.js";
import { packageRoot } from "../config/paths.js";
import type { Io } from "./io.js";

export interface DeployFlags {
  dryRun?: boolean;
  project?: string;
  region?: string;
  image?: string;
  json?: boolean;
}

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
  const noCredentials = dryRun && !clientOptions && !hasDefaultCredentials();
  const offline = !settings.project || !settings.region || noCredentials;
  if (!dryRun) {
    const missing = [offline && "--project and --region", !image && "--image (or SHARDRUN_IMAGE)"].filter(Boolean);
    if (missing.length) throw new UsageError(`deploy: needs ${missing.join(" and ")}, or set them in ${SETTINGS_FILE}; --dry-run shows what it would create`);
  }

  const root = packageRoot();
  const names = positionals.length ? positionals : readdirSync(join(root, "jobs"), { withFileTypes: true }).filter((d) => d.isDirectory() && existsSync(join(root, "jobs", d.name, "index.ts"))).map((d) => d.name);
  const { buildJob, deployJob } = await import("../launcher/cloud-run-deploy.js");

  const results: { job: string; action: string; changes: string[]; resource: unknown; compared: boolean }[] = [];
  for (const name of names) {
    const { job } = await prepareJob(resolveJob(name, io.cwd));
    const spec = {
      project: settings.project ?? "PROJECT_ID",
      region: settings.region ?? "REGION",
      name: `shardrun-${job.name}`,
      image: image ?? "REGION-docker.pkg.dev/PROJECT_ID/shardrun/shardrun:latest",
      taskTimeoutSeconds: settings.taskTimeoutSeconds ?? 3600,
      maxRetries: settings.maxRetries ?? 3,
      // Unset on the job (see DeployJobSpec.parallelism); a value left in the settings file is refused by name.
      parallelism: settings.parallelism ?? 0,
      taskCount: job.tasks ?? 10,
      env: { [ENV.logFormat]: "json" },
      ...(settings.serviceAccount ? { serviceAccount: settings.serviceAccount } : {}),
      ...(settings.memory ? { memory: settings.memory } : {}),
      ...(settings.cpu ? { cpu: settings.cpu } : {}),
    };
    if (dryRun && offline) {
      results.push({ job: job.name, action: "create", changes: [], resource: buildJob(spec), compared: false });
      continue;
    }
    const r = await deployJob(spec, { dryRun, ...(clientOptions ? { clientOptions } : {}) });
    results.push({ job: job.name, action: r.action, changes: r.changes, resource: r.job, compared: true });
  }

  if (flags.json) {
    io.stdout.write(JSON.stringify({ dryRun, results }, null, 2) + "\n");
    return ExitCode.ok;
  }
  if (dryRun && offline) {
    const why = noCredentials && settings.project && settings.region
      ? "no Google credentials found: run `gcloud auth application-default login` to compare"
      : settings.placeholders.length
        ? `${settings.placeholders.join(", ")} in ${SETTINGS_FILE} still hold placeholders`
        : "no project/region";
    io.stdout.write(`dry run, not compared with the cloud (${why}: pass --project and --region, or fill ${SETTINGS_FILE})\n`);
  }
  for (const r of results) {
    const verb = dryRun ? `would ${r.action === "unchanged" ? "leave unchanged" : r.action}` : r.action === "unchanged" ? "unchanged" : `${r.action}d`;
    io.stdout.write(`shardrun-${r.job}: ${verb}${r.changes.length ? ` (${r.changes.join(", ")})` : ""}\n`);
    if (dryRun && r.action !== "unchanged") io.stdout.write(JSON.stringify(r.resource, null, 2).replace(/^/gm, "  ") + "\n");
  }
  return ExitCode.ok;
}
