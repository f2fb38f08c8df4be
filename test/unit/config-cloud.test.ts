/**
 * Cloud settings with manifests/shardrun.json as the repository ships it (placeholders): local
 * commands and dry runs work from a fresh clone, placeholders are filled in from the project and
 * region in force, and a command that needs a setting names the placeholder left in its way.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cloudSettings, hasDefaultCredentials, requireProjectRegion } from "../../src/config/cloud.js";
import { ROOT } from "../e2e/helpers.js";

describe("cloudSettings with the shipped manifests/shardrun.json", () => {
  it("leaves the placeholders out and lists them, without refusing anything", () => {
    const s = cloudSettings({}, ROOT, {});
    expect(s.project).toBeUndefined();
    expect(s.region).toBeUndefined();
    expect(s.image).toBeUndefined();
    expect(s.placeholders.sort()).toEqual(["image", "project", "region", "service-account"]);
    expect(s).toMatchObject({ taskTimeoutSeconds: 3600, maxRetries: 3 });
  });

  it("fills PROJECT_ID and REGION in from the project and region in force", () => {
    const s = cloudSettings({ project: "my-project", region: "europe-west1" }, ROOT, {});
    expect(s).toMatchObject({
      project: "my-project",
      region: "europe-west1",
      image: "europe-west1-docker.pkg.dev/my-project/shardrun/shardrun:latest",
      serviceAccount: "shardrun-worker@my-project.iam.gserviceaccount.com",
      placeholders: [],
    });
    expect(cloudSettings({}, ROOT, { SHARDRUN_PROJECT: "p2", SHARDRUN_REGION: "asia-northeast1" }).image).toBe("asia-northeast1-docker.pkg.dev/p2/shardrun/shardrun:latest");
  });

  it("names the placeholder in the way when a command needs the project and region", () => {
    expect(() => requireProjectRegion(cloudSettings({}, ROOT, {}), "run")).toThrow(/run: Cloud Run needs --project .* and --region .*project and region in manifests\/shardrun\.json still hold placeholders.*--local/);
    expect(requireProjectRegion(cloudSettings({ project: "p", region: "r" }, ROOT, {}), "run")).toEqual({ project: "p", region: "r" });
  });

  it("refuses a placeholder given as a flag or in the environment", () => {
    expect(() => cloudSettings({ project: "PROJECT_ID" }, ROOT, {})).toThrow(/project "PROJECT_ID" from --project is still a placeholder/);
    expect(() => cloudSettings({}, ROOT, { SHARDRUN_IMAGE: "REGION-docker.pkg.dev/x/y:z" })).toThrow(/image .* from SHARDRUN_IMAGE is still a placeholder/);
  });

  it("keeps a store whose bucket is still a placeholder out", () => {
    const dir = mkdtempSync(join(tmpdir(), "shardrun-settings-"));
    mkdirSync(join(dir, "manifests"));
    writeFileSync(join(dir, "manifests", "shardrun.json"), JSON.stringify({ project: "p", region: "r", store: "gs://BUCKET/shardrun" }));
    const s = cloudSettings({}, dir, {});
    expect(s.store).toBeUndefined();
    expect(s.placeholders).toEqual(["store"]);
  });
});

describe("hasDefaultCredentials", () => {
  it("finds a key file, gcloud's ADC file or a Google runtime, without a network call", () => {
    const home = mkdtempSync(join(tmpdir(), "shardrun-home-"));
    expect(hasDefaultCredentials({}, home)).toBe(false);
    expect(hasDefaultCredentials({ GOOGLE_APPLICATION_CREDENTIALS: join(home, "missing.json") }, home)).toBe(false);
    expect(hasDefaultCredentials({ K_SERVICE: "shardrun-scheduler" }, home)).toBe(true);
    mkdirSync(join(home, ".config", "gcloud"), { recursive: true });
    writeFileSync(join(home, ".config", "gcloud", "application_default_credentials.json"), "{}");
    expect(hasDefaultCredentials({}, home)).toBe(true);
  });
});
