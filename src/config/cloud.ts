/**
 * Google Cloud settings for commands that talk to Cloud Run: flags win over the environment,
 * which wins over `manifests/shardrun.json` (found from the working directory). Placeholders in
 * the file (PROJECT_ID, REGION, BUCKET) are filled in from the project and region in force, or
 * left out and named when a command needs them; they never reach the API.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { InvalidInputError, UsageError } from "../core/errors.js";
import { formatZodError } from "../core/zod-format.js";
import { ENV } from "./env.js";

export const CloudSettingsFile = z.strictObject({
  project: z.string().optional(),
  region: z.string().optional(),
  store: z.string().optional(),
  image: z.string().optional(),
  serviceAccount: z.string().optional(),
  taskTimeoutSeconds: z.number().int().min(1).max(7 * 24 * 3600).optional(),
  maxRetries: z.number().int().min(0).max(10).optional(),
  /** Only 0 (unset) deploys: `shardrun deploy` refuses any other value, saying why. */
  parallelism: z.number().int().min(0).optional(),
  memory: z.string().optional(),
  cpu: z.string().optional(),
});
export type CloudSettings = z.infer<typeof CloudSettingsFile> & {
  source: Record<string, string>;
  /** Settings left out because they still hold a placeholder (with `allowPlaceholders`). */
  placeholders: string[];
};

const PLACEHOLDER = /\b(PROJECT_ID|BUCKET|REGION)\b/;
export const SETTINGS_FILE = join("manifests", "shardrun.json");

export function readSettingsFile(cwd: string): z.infer<typeof CloudSettingsFile> | null {
  const path = join(cwd, SETTINGS_FILE);
  if (!existsSync(path)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new InvalidInputError(`${path} is not valid JSON`, { cause: e });
  }
  const parsed = CloudSettingsFile.safeParse(raw);
  if (!parsed.success) throw new InvalidInputError(`${path}: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

/**
 * The settings for Google Cloud commands. A value in manifests/shardrun.json may name the
 * project and region as placeholders (`REGION-docker.pkg.dev/PROJECT_ID/…`): they are filled in
 * from the project and region in force. A placeholder left over (no project known, `BUCKET`)
 * leaves the setting out and is listed in `placeholders`, so that commands which do not need it
 * (`serve --local`, a dry run) work from a fresh clone; `requireProjectRegion` names it when a
 * command does need it. A placeholder given as a flag or in the environment is a mistake, and
 * refused by name unless `allowPlaceholders`.
 */
export function cloudSettings(
  flags: { project?: string; region?: string },
  cwd: string,
  env: NodeJS.ProcessEnv = process.env,
  options: { allowPlaceholders?: boolean } = {},
): CloudSettings {
  const file = readSettingsFile(cwd) ?? {};
  const source: Record<string, string> = {};
  const placeholders: string[] = [];
  const filled = { project: undefined as string | undefined, region: undefined as string | undefined };
  const fill = (value: string) =>
    value.replace(/\bPROJECT_ID\b/g, (m) => filled.project ?? m).replace(/\bREGION\b/g, (m) => filled.region ?? m);
  const pick = (name: string, ...candidates: [string | undefined, string][]): string | undefined => {
    for (const [raw, from] of candidates) {
      if (!raw) continue;
      const value = from === SETTINGS_FILE ? fill(raw) : raw;
      if (PLACEHOLDER.test(value)) {
        if (from !== SETTINGS_FILE && !options.allowPlaceholders) {
          throw new UsageError(`${name} "${value}" from ${from} is still a placeholder: edit ${SETTINGS_FILE} or pass --${name}`);
        }
        placeholders.push(name);
        return undefined;
      }
      source[name] = from;
      return value;
    }
    return undefined;
  };
  const project = pick("project", [flags.project, "--project"], [env[ENV.project], ENV.project], [env[ENV.googleProject], ENV.googleProject], [file.project, SETTINGS_FILE]);
  const region = pick("region", [flags.region, "--region"], [env[ENV.region], ENV.region], [file.region, SETTINGS_FILE]);
  filled.project = project;
  filled.region = region;
  const image = pick("image", [env[ENV.image], ENV.image], [file.image, SETTINGS_FILE]);
  const serviceAccount = pick("service-account", [file.serviceAccount, SETTINGS_FILE]);
  const store = pick("store", [file.store, SETTINGS_FILE]);
  // Only what was picked (and checked for placeholders) stands for these.
  const { project: _p, region: _r, image: _i, serviceAccount: _s, store: _st, ...rest } = file;
  return {
    ...rest,
    ...(project ? { project } : {}),
    ...(region ? { region } : {}),
    ...(image ? { image } : {}),
    ...(serviceAccount ? { serviceAccount } : {}),
    ...(store ? { store } : {}),
    source,
    placeholders,
  };
}

/**
 * Whether Application Default Credentials could be found without a network call: a key file
 * named by GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, or a Google runtime (Cloud Run,
 * which has a metadata server). A dry run without any compares nothing rather than fail on
 * "Could not load the default credentials".
 */
export function hasDefaultCredentials(env: NodeJS.ProcessEnv = process.env, home = homedir()): boolean {
  const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS;
  if (keyFile) return existsSync(keyFile);
  if (env.K_SERVICE || env.CLOUD_RUN_JOB || env.GCE_METADATA_HOST) return true;
  const gcloud = env.CLOUDSDK_CONFIG ?? (process.platform === "win32" && env.APPDATA ? join(env.APPDATA, "gcloud") : join(home, ".config", "gcloud"));
  return existsSync(join(gcloud, "application_default_credentials.json"));
}

export function requireProjectRegion(s: CloudSettings, command: string): { project: string; region: string } {
  if (!s.project || !s.region) {
    const missing = [!s.project && "--project (or SHARDRUN_PROJECT)", !s.region && "--region (or SHARDRUN_REGION)"].filter(Boolean).join(" and ");
    const left = (["project", "region"] as const).filter((k) => !s[k] && s.placeholders.includes(k));
    const why = left.length ? ` (${left.join(" and ")} in ${SETTINGS_FILE} still ${left.length > 1 ? "hold placeholders" : "holds a placeholder"})` : "";
    throw new UsageError(`${command}: Cloud Run needs ${missing}, or set them in ${SETTINGS_FILE}${why}; add --local to run on this machine`);
  }
  return { project: s.project, region: s.region };
}
