/**
 * Google Cloud settings for commands that talk to Cloud Run: flags win over the environment,
 * which wins over `manifests/shardrun.json` (found from the working directory). A value still
 * holding a placeholder (PROJECT_ID, BUCKET) is refused by name rather than sent to the API.
 */
import { existsSync, readFileSync } from "node:fs";
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

export function cloudSettings(
  flags: { project?: string; region?: string },
  cwd: string,
  env: NodeJS.ProcessEnv = process.env,
  options: { allowPlaceholders?: boolean } = {},
): CloudSettings {
  const file = readSettingsFile(cwd) ?? {};
  const source: Record<string, string> = {};
  const placeholders: string[] = [];
  const pick = (name: string, ...candidates: [string | undefined, string][]): string | undefined => {
    for (const [value, from] of candidates) {
      if (value) {
        if (PLACEHOLDER.test(value)) {
          if (options.allowPlaceholders) {
            placeholders.push(name);
            return undefined;
          }
          throw new UsageError(`${name} "${value}" from ${from} is still a placeholder: edit ${SETTINGS_FILE} or pass --${name}`);
        }
        source[name] = from;
        return value;
      }
    }
    return undefined;
  };
  const project = pick("project", [flags.project, "--project"], [env[ENV.project], ENV.project], [env[ENV.googleProject], ENV.googleProject], [file.project, SETTINGS_FILE]);
  const region = pick("region", [flags.region, "--region"], [env[ENV.region], ENV.region], [file.region, SETTINGS_FILE]);
  const image = pick("image", [env[ENV.image], ENV.image], [file.image, SETTINGS_FILE]);
  const serviceAccount = pick("service-account", [file.serviceAccount, SETTINGS_FILE]);
  // Only what was picked (and checked for placeholders) stands for these five.
  const { project: _p, region: _r, image: _i, serviceAccount: _s, ...rest } = file;
  return {
    ...rest,
    ...(project ? { project } : {}),
    ...(region ? { region } : {}),
    ...(image ? { image } : {}),
    ...(serviceAccount ? { serviceAccount } : {}),
    source,
    placeholders,
  };
}

export function requireProjectRegion(s: CloudSettings, command: string): { project: string; region: string } {
  if (!s.project || !s.region) {
    const missing = [!s.project && "--project (or SHARDRUN_PROJECT)", !s.region && "--region (or SHARDRUN_REGION)"].filter(Boolean).join(" and ");
    throw new UsageError(`${command}: Cloud Run needs ${missing}, or set them in ${SETTINGS_FILE}; add --local to run on this machine`);
  }
  return { project: s.project, region: s.region };
}
