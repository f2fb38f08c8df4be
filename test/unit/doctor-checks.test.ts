/**
 * The doctor's checks on ports answered in memory: which roles count, what a missing resource
 * or a refusing API does to one check and not the others, and the commands printed as fixes.
 * (test/e2e/doctor.test.ts runs the same checks through the real clients against the fakes.)
 */
import { describe, expect, it } from "vitest";
import { grantingRole, memberOf, type IamPolicy } from "../../src/core/iam.js";
import { runChecks } from "../../src/doctor/checks.js";
import type { DoctorContext, DoctorPorts, ServiceInfo } from "../../src/doctor/ports.js";
import type { DeployJobSpec } from "../../src/launcher/cloud-run-deploy.js";

const W = "shardrun-worker@p.iam.gserviceaccount.com";
const S = "shardrun-scheduler@p.iam.gserviceaccount.com";
const URI = "https://shardrun-scheduler-abc-ew.a.run.app";
const sa = (e: string) => `serviceAccount:${e}`;
const spec: DeployJobSpec = { project: "p", region: "r", name: "shardrun-docs", image: "img", taskTimeoutSeconds: 60, maxRetries: 0 };

const ctx: DoctorContext = {
  project: "p",
  region: "r",
  bucket: "b",
  store: "gs://b/x",
  workerServiceAccount: W,
  serviceName: "shardrun-scheduler",
  jobs: [{ job: "docs", spec }],
  schedules: [],
  keepJobsOf: [],
  shardrun: "npx shardrun",
  deployFlags: [],
};

const service: ServiceInfo = {
  resource: "projects/p/locations/r/services/shardrun-scheduler",
  uri: URI,
  urls: [URI],
  customAudiences: [],
  serviceAccount: S,
  env: { SHARDRUN_OIDC_AUDIENCE: URI, SHARDRUN_INVOKER_IAM_CHECK: "on" },
  invokerIamDisabled: false,
};

function healthy(): DoctorPorts & { project: IamPolicy } {
  const project: IamPolicy = { bindings: [{ role: "roles/run.developer", members: [sa(S)] }] };
  return {
    project,
    credentials: async () => ({ kind: "the metadata server", email: "me@p.iam.gserviceaccount.com", token: true }),
    bucketPermissions: async (_b, p) => [...p],
    bucketPolicy: async () => ({ bindings: [{ role: "roles/storage.objectUser", members: [sa(W), sa(S)] }] }),
    projectPolicy: async () => project,
    serviceAccountPolicy: async () => ({ bindings: [{ role: "roles/iam.serviceAccountUser", members: [sa(S)] }] }),
    deployDryRun: async () => ({ action: "unchanged", job: {}, changes: [] }),
    service: async () => structuredClone(service),
    servicePolicy: async () => ({ bindings: [{ role: "roles/run.invoker", members: [sa(S)] }] }),
    schedulesDryRun: async () => ({ dryRun: true, parent: "projects/p/locations/r", create: [], update: [], pause: [], resume: [], delete: [], unchanged: ["shardrun-reconcile"] }),
    schedulerJobs: async () => [{ name: "projects/p/locations/r/jobs/shardrun-reconcile", httpTarget: { oidcToken: { audience: URI } } }],
  };
}

const failing = async (ports: DoctorPorts, c: DoctorContext = ctx) => (await runChecks(c, ports)).filter((x) => !x.ok);

describe("doctor checks", () => {
  it("all pass on a healthy project", async () => {
    expect(await failing(healthy())).toEqual([]);
  });

  it("an API that refuses fails only the check that asked it, with its reason and no invented fix", async () => {
    const ports = healthy();
    ports.projectPolicy = async () => {
      throw new Error("could not read the IAM policy of project p: 403 (permission denied)");
    };
    expect(await failing(ports)).toEqual([{ name: "roles", ok: false, found: "could not read the IAM policy of project p: 403 (permission denied)", fix: null }]);
  });

  it("without the service: schedules and audience say how to deploy it; roles skip the invoker", async () => {
    const ports = healthy();
    ports.service = async () => null;
    const failed = await failing(ports);
    expect(failed.map((c) => c.name)).toEqual(["schedules", "audience"]);
    const fix = "sed -e s/PROJECT_ID/p/g -e s/REGION-docker/r-docker/g -e 's/: REGION$/: r/' -e 's#gs://BUCKET/#gs://b/#' manifests/service.yaml > service.yaml && gcloud run services replace service.yaml --region r --project p";
    for (const c of failed) expect(c.fix).toBe(fix);
    const roles = (await runChecks(ctx, ports)).find((c) => c.name === "roles")!;
    expect(roles.found).toContain("invoker role not checked (no service shardrun-scheduler)");
  });

  it("a worker account that does not exist is named, with the command that makes it", async () => {
    const ports = healthy();
    ports.serviceAccountPolicy = async () => null;
    const [roles] = await failing(ports);
    expect(roles).toMatchObject({ name: "roles", found: `service account ${W} does not exist`, fix: "gcloud iam service-accounts create shardrun-worker --project p" });
  });

  it("a role on the project counts for the bucket, and owner counts only on the project", async () => {
    const ports = healthy();
    ports.bucketPolicy = async () => ({ bindings: [{ role: "roles/owner", members: [sa(W), sa(S)] }] });
    expect((await failing(ports)).map((c) => c.name)).toEqual(["roles"]);
    ports.project.bindings.push({ role: "roles/storage.objectAdmin", members: [sa(W), sa(S)] });
    expect(await failing(ports)).toEqual([]);
  });

  it("a store that is not a bucket fails the bucket check and leaves bucket roles unchecked", async () => {
    const { bucket: _b, ...local } = ctx;
    const checks = await runChecks({ ...local, store: "./.shardrun" }, healthy());
    expect(checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(["bucket"]);
    expect(checks.find((c) => c.name === "bucket")!.fix).toBe("npx shardrun doctor --project p --region r --store gs://BUCKET/shardrun");
    expect(checks.find((c) => c.name === "roles")!.found).toContain("bucket roles not checked (no gs:// store)");
  });

  it("a Cloud Scheduler job sending tokens for another audience fails the audience check, fixed by a sync", async () => {
    const ports = healthy();
    ports.schedulerJobs = async () => [{ name: "projects/p/locations/r/jobs/shardrun-nightly", httpTarget: { oidcToken: { audience: "https://old.example" } } }];
    const [audience] = await failing(ports);
    expect(audience).toMatchObject({ name: "audience", found: `${URI}: Cloud Scheduler job shardrun-nightly sends tokens for https://old.example` });
    expect(audience!.fix).toBe(`npx shardrun schedules sync --project p --region r --service-url ${URI} --service-account ${S}`);
  });

  it("a deployed job that differs names each difference, and the fix carries the deploy flags given", async () => {
    const ports = healthy();
    ports.deployDryRun = async () => ({ action: "update", job: {}, changes: ["image", "parallelism"], details: ["image a -> b", "parallelism 5 -> unset"] });
    const [job] = await failing(ports, { ...ctx, deployFlags: ["--image", "my image"] });
    expect(job).toEqual({ name: "job docs", ok: false, found: "Cloud Run job shardrun-docs differs from what deploy sets: image a -> b; parallelism 5 -> unset", fix: "npx shardrun deploy docs --project p --region r --image 'my image'" });
  });
});

describe("grantingRole", () => {
  const policy: IamPolicy = {
    bindings: [
      { role: "roles/run.admin", members: [sa(S)] },
      { role: "roles/editor", members: ["user:ana@example.com"] },
      { role: "roles/run.invoker", members: ["allUsers"] },
      { role: "roles/iam.serviceAccountUser", members: [sa(W)], conditional: true },
    ],
  };

  it("finds the role that grants a need, by member kind", () => {
    expect(memberOf(S)).toBe(`serviceAccount:${S}`);
    expect(memberOf("ana@example.com")).toBe("user:ana@example.com");
    expect(grantingRole(policy, S, "runJobs")).toBe("roles/run.admin");
    expect(grantingRole(policy, S.toUpperCase(), "runJobs")).toBe("roles/run.admin");
  });

  it("counts basic roles only on a project, conditional bindings never, and allUsers for anyone", () => {
    expect(grantingRole(policy, "ana@example.com", "objects")).toBeNull();
    expect(grantingRole(policy, "ana@example.com", "objects", true)).toBe("roles/editor");
    expect(grantingRole(policy, W, "actAs", true)).toBeNull();
    expect(grantingRole(policy, "someone@example.com", "invoke")).toBe("roles/run.invoker");
  });
});
