/**
 * `shardrun doctor` against a fake Google Cloud project assembled from the fakes, all reached
 * through the real client libraries: Cloud Run (jobs and the scheduler service), Cloud Storage
 * (fake-gcs-server behind the throttle, which answers bucket IAM), Cloud Scheduler, the
 * metadata server (Application Default Credentials, as on Cloud Run) and the Resource Manager
 * and IAM REST APIs.
 *
 * The healthy project is made the way a user makes one: `shardrun deploy`, the service as
 * manifests/service.yaml deploys it, the grants of manifests/iam.sh, `shardrun schedules sync`.
 * Every check passes on it. Then one thing at a time is broken; exactly that check fails, and
 * running the fix it prints (the shardrun command itself, or for a gcloud command the same
 * change made in the fake) makes every check pass again.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Launcher } from "../../src/launcher/port.js";
import { findFakeGcs, startFakeGcs, type FakeGcs } from "../contract/fault-proxy.js";
import { CloudRunFake } from "../fakes/cloud-run-fake.js";
import { CloudSchedulerFake } from "../fakes/cloud-scheduler-fake.js";
import { FakeBucketIam } from "../fakes/gcs-iam.js";
import { GcsThrottle } from "../fakes/gcs-throttle.js";
import { FakeIam } from "../fakes/iam-fake.js";
import { FakeMetadataServer } from "../fakes/metadata-server.js";
import { ROOT, cli, tempDir } from "./helpers.js";

const PROJECT = "fake-project";
const REGION = "europe-west1";
const BUCKET = "shardrun-doctor";
const STORE = `gs://${BUCKET}/shardrun`;
const SERVICE = "shardrun-scheduler";
/** Who runs the doctor: the identity the metadata server hands out. */
const DEPLOYER = `deployer@${PROJECT}.iam.gserviceaccount.com`;
/** What manifests/iam.sh makes. */
const WORKER = `shardrun-worker@${PROJECT}.iam.gserviceaccount.com`;
const SCHEDULER = `shardrun-scheduler@${PROJECT}.iam.gserviceaccount.com`;
const sa = (email: string) => `serviceAccount:${email}`;

const found = findFakeGcs();
if (found.missing) {
  if (process.env.CI) throw new Error(`CI must run the doctor's test: ${found.missing}`);
  console.warn(`skipping the doctor e2e test: ${found.missing}`);
}

interface Check {
  name: string;
  ok: boolean;
  found: string;
  fix: string | null;
}
interface Report {
  project: string;
  region: string;
  ok: boolean;
  checks: Check[];
}

/** Nothing launches here: the doctor only reads. */
const noLaunches: Launcher = {
  kind: "local",
  launch: async () => {
    throw new Error("the doctor's test starts no execution");
  },
  getExecution: async () => null,
  cancel: async () => {},
};

describe.skipIf(!found.bin)("shardrun doctor against a fake project", () => {
  let gcs: FakeGcs;
  let bucketIam: FakeBucketIam;
  let throttle: GcsThrottle;
  let run: CloudRunFake;
  let scheduler: CloudSchedulerFake;
  let metadata: FakeMetadataServer;
  let iam: FakeIam;
  let home: string;
  let env: NodeJS.ProcessEnv;
  const where = ["--project", PROJECT, "--region", REGION];

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "shardrun-doctor-home-"));
    gcs = await startFakeGcs(found.bin!);
    await gcs.createBucket(BUCKET);
    bucketIam = new FakeBucketIam(sa(DEPLOYER));
    throttle = await GcsThrottle.start({ target: gcs.url, iam: bucketIam });
    run = await CloudRunFake.start({ backing: noLaunches, project: PROJECT, region: REGION });
    scheduler = await CloudSchedulerFake.start({ project: PROJECT, region: REGION });
    metadata = await FakeMetadataServer.start({ email: DEPLOYER, project: PROJECT });
    iam = await FakeIam.start(PROJECT);
    env = {
      SHARDRUN_CLOUD_RUN_ENDPOINT: `127.0.0.1:${run.port}`,
      SHARDRUN_CLOUD_SCHEDULER_ENDPOINT: `127.0.0.1:${scheduler.port}`,
      STORAGE_EMULATOR_HOST: throttle.url,
      SHARDRUN_RESOURCE_MANAGER_ENDPOINT: iam.url,
      SHARDRUN_IAM_ENDPOINT: iam.url,
      // Credentials come from the metadata server only: no key file, no gcloud ADC file.
      GCE_METADATA_HOST: metadata.host,
      GOOGLE_APPLICATION_CREDENTIALS: "",
      HOME: home,
      CLOUDSDK_CONFIG: join(home, "gcloud"),
      // Nothing from the machine's environment stands in for the flags.
      SHARDRUN_PROJECT: "",
      GOOGLE_CLOUD_PROJECT: "",
      SHARDRUN_REGION: "",
      SHARDRUN_STORE_URL: "",
      SHARDRUN_IMAGE: "",
      SHARDRUN_SERVICE_URL: "",
      SHARDRUN_OIDC_AUDIENCE: "",
      NO_COLOR: "1",
    };

    // The project as the README's steps make it.
    const deployed = await cli(["deploy", ...where], ROOT, env);
    expect(deployed.stderr).toBe("");
    expect(deployed.code).toBe(0);
    const uri = run.services.uri(SERVICE);
    run.services.put(SERVICE, {
      serviceAccount: SCHEDULER,
      env: { SHARDRUN_STORE_URL: STORE, SHARDRUN_OIDC_AUDIENCE: uri, SHARDRUN_ALLOWED_SERVICE_ACCOUNTS: SCHEDULER, SHARDRUN_INVOKER_IAM_CHECK: "on" },
    });
    for (const member of [WORKER, SCHEDULER, DEPLOYER]) bucketIam.addBinding(BUCKET, "roles/storage.objectUser", sa(member));
    iam.addProjectBinding("roles/run.developer", sa(SCHEDULER));
    for (const account of [WORKER, SCHEDULER]) iam.createServiceAccount(account);
    iam.addServiceAccountBinding(WORKER, "roles/iam.serviceAccountUser", sa(SCHEDULER));
    run.services.addIamBinding(SERVICE, "roles/run.invoker", sa(SCHEDULER));
    const synced = await cli(["schedules", "sync", ...where, "--service-url", uri, "--service-account", SCHEDULER], ROOT, env);
    expect(synced.stderr).toBe("");
    expect(synced.code).toBe(0);
  });

  afterAll(async () => {
    await run?.close();
    await scheduler?.close();
    await metadata?.close();
    await iam?.close();
    await throttle?.close();
    await gcs?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  });

  async function doctor(extraEnv: NodeJS.ProcessEnv = {}): Promise<Report & { code: number | null }> {
    const r = await cli(["doctor", ...where, "--store", STORE, "--json"], ROOT, { ...env, ...extraEnv });
    expect(r.stderr).toBe("");
    const report = JSON.parse(r.stdout) as Report;
    expect(r.code, JSON.stringify(report.checks.filter((c) => !c.ok))).toBe(report.ok ? 0 : 2);
    return { ...report, code: r.code };
  }

  const failing = (r: Report) => r.checks.filter((c) => !c.ok).map((c) => c.name);

  /** Breaks one thing, expects exactly `check` to fail, applies its fix and expects all to pass. */
  async function breakAndFix(check: string, brk: () => void, fix: (printed: string) => void | Promise<void>, extraEnv: NodeJS.ProcessEnv = {}): Promise<Check> {
    brk();
    const broken = await doctor(extraEnv);
    expect(broken.code).toBe(2);
    expect(failing(broken)).toEqual([check]);
    const c = broken.checks.find((x) => x.name === check)!;
    expect(c.fix).toBeTruthy();
    await fix(c.fix!);
    const fixed = await doctor();
    expect(failing(fixed)).toEqual([]);
    expect(fixed.code).toBe(0);
    return c;
  }

  /** Runs a printed shardrun command as a user would paste it (not spawnSync: the fakes live in this process). */
  async function runPrinted(command: string): Promise<void> {
    const child = spawn("/bin/sh", ["-c", command], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(stderr).toBe("");
    expect(status).toBe(0);
  }

  it("passes every check on the healthy project, each saying what it found", async () => {
    const r = await doctor();
    expect(r).toMatchObject({ project: PROJECT, region: REGION, ok: true, code: 0 });
    expect(r.checks.map((c) => c.name)).toEqual(["credentials", "bucket", "job research-sweep", "job summarize-docs", "roles", "schedules", "audience"]);
    for (const c of r.checks) expect(c).toEqual({ name: c.name, ok: true, found: expect.any(String), fix: null });
    const by = (name: string) => r.checks.find((c) => c.name === name)!.found;
    expect(by("credentials")).toContain(`the metadata server`);
    expect(by("credentials")).toContain(DEPLOYER);
    expect(metadata.tokens.length).toBeGreaterThan(0);
    expect(by("bucket")).toContain(`gs://${BUCKET} exists`);
    expect(by("job summarize-docs")).toContain(`image ${REGION}-docker.pkg.dev/${PROJECT}/shardrun/shardrun:latest`);
    expect(by("job summarize-docs")).toContain("parallelism unset");
    expect(by("job summarize-docs")).toContain(`service account ${WORKER}`);
    expect(by("job summarize-docs")).toMatch(/version \d+-\d+-\d+/);
    expect(by("roles")).toContain(`${SCHEDULER}: roles/run.developer on project ${PROJECT}`);
    expect(by("schedules")).toContain("shardrun-summarize-docs-nightly");
    expect(by("audience")).toContain(run.services.uri(SERVICE));
    // The doctor read the IAM policies through the REST methods, as POSTs.
    expect(iam.requests).toContain(`POST /v1/projects/${PROJECT}:getIamPolicy`);
  });

  it("prints a checklist with ✓ and ✗, the fix under a failed check, and exits 2", async () => {
    bucketIam.removeBinding(BUCKET, "roles/storage.objectUser", sa(DEPLOYER));
    try {
      const r = await cli(["doctor", ...where, "--store", STORE], ROOT, env);
      expect(r.code).toBe(2);
      expect(r.stdout).toMatch(/^✓ credentials /m);
      expect(r.stdout).toMatch(/^✗ bucket +gs:\/\/shardrun-doctor exists, but you \(deployer@fake-project\.iam\.gserviceaccount\.com\) lack storage\.objects\.create/m);
      expect(r.stdout).toContain(`fix: gcloud storage buckets add-iam-policy-binding gs://${BUCKET} --member ${sa(DEPLOYER)} --role roles/storage.objectUser`);
      expect(r.stdout).toMatch(/1 of 7 checks failed\n$/);
    } finally {
      bucketIam.addBinding(BUCKET, "roles/storage.objectUser", sa(DEPLOYER));
    }
  });

  it("bucket: a permission taken away fails the bucket check, and its gcloud grant fixes it", async () => {
    const c = await breakAndFix(
      "bucket",
      () => bucketIam.removeBinding(BUCKET, "roles/storage.objectUser", sa(DEPLOYER)),
      (fix) => {
        expect(fix).toBe(`gcloud storage buckets add-iam-policy-binding gs://${BUCKET} --member ${sa(DEPLOYER)} --role roles/storage.objectUser`);
        bucketIam.addBinding(BUCKET, "roles/storage.objectUser", sa(DEPLOYER));
      },
    );
    expect(c.found).toContain("lack storage.objects.create, storage.objects.delete, storage.objects.get, storage.objects.list");
  });

  it("job: a parallelism changed in the console fails that job's check, and the printed deploy fixes it", async () => {
    const c = await breakAndFix(
      "job summarize-docs",
      () => run.editJob("shardrun-summarize-docs", (job) => (job.template.parallelism = 5)),
      async (fix) => {
        expect(fix).toMatch(/ deploy summarize-docs --project fake-project --region europe-west1$/);
        await runPrinted(fix);
      },
    );
    expect(c.found).toContain("parallelism 5 -> unset");
  });

  it("roles: a role dropped from the scheduler's account fails the roles check, and its gcloud grant fixes it", async () => {
    const c = await breakAndFix(
      "roles",
      () => iam.removeProjectBinding("roles/run.developer", sa(SCHEDULER)),
      (fix) => {
        expect(fix).toBe(`gcloud projects add-iam-policy-binding ${PROJECT} --member ${sa(SCHEDULER)} --role roles/run.developer --condition=None`);
        iam.addProjectBinding("roles/run.developer", sa(SCHEDULER));
      },
    );
    expect(c.found).toBe(`${SCHEDULER} lacks roles/run.developer on project ${PROJECT}`);
  });

  it("roles: a conditional grant does not count, and neither does a missing invoker", async () => {
    iam.removeProjectBinding("roles/run.developer", sa(SCHEDULER));
    iam.addConditionalProjectBinding("roles/run.developer", sa(SCHEDULER));
    run.services.removeIamBinding(SERVICE, "roles/run.invoker", sa(SCHEDULER));
    try {
      const r = await doctor();
      expect(failing(r)).toEqual(["roles"]);
      const fixes = r.checks.find((c) => c.name === "roles")!.fix!.split("\n");
      expect(fixes).toEqual([
        `gcloud projects add-iam-policy-binding ${PROJECT} --member ${sa(SCHEDULER)} --role roles/run.developer --condition=None`,
        `gcloud run services add-iam-policy-binding ${SERVICE} --region ${REGION} --project ${PROJECT} --member ${sa(SCHEDULER)} --role roles/run.invoker`,
      ]);
    } finally {
      iam.removeProjectBinding("roles/run.developer", sa(SCHEDULER));
      iam.addProjectBinding("roles/run.developer", sa(SCHEDULER));
      run.services.addIamBinding(SERVICE, "roles/run.invoker", sa(SCHEDULER));
    }
    expect(failing(await doctor())).toEqual([]);
  });

  it("schedules: a Cloud Scheduler job changed by hand fails the schedules check, and the printed sync fixes it", async () => {
    const id = "shardrun-summarize-docs-nightly";
    const c = await breakAndFix(
      "schedules",
      () => {
        const job = scheduler.job(id)!;
        scheduler.putJob(id, { ...job, schedule: "30 3 * * *" });
      },
      async (fix) => {
        expect(fix).toMatch(new RegExp(` schedules sync --project ${PROJECT} --region ${REGION} --service-url ${run.services.uri(SERVICE).replace(/\./g, "\\.")} --service-account ${SCHEDULER.replace(/\./g, "\\.")}$`));
        await runPrinted(fix);
      },
    );
    expect(c.found).toContain(`would update ${id} (schedule)`);
  });

  it("audience: a service whose SHARDRUN_OIDC_AUDIENCE is not its URL fails the audience check, and the printed update fixes it", async () => {
    const uri = run.services.uri(SERVICE);
    const c = await breakAndFix(
      "audience",
      () => run.services.updateEnv(SERVICE, { SHARDRUN_OIDC_AUDIENCE: "https://shardrun-scheduler-old.a.run.app" }),
      (fix) => {
        expect(fix).toBe(`gcloud run services update ${SERVICE} --region ${REGION} --project ${PROJECT} --update-env-vars SHARDRUN_OIDC_AUDIENCE=${uri}`);
        const value = /--update-env-vars SHARDRUN_OIDC_AUDIENCE=(\S+)$/.exec(fix)![1]!;
        run.services.updateEnv(SERVICE, { SHARDRUN_OIDC_AUDIENCE: value });
      },
    );
    expect(c.found).toContain(`SHARDRUN_OIDC_AUDIENCE is https://shardrun-scheduler-old.a.run.app, not its URL ${uri}`);
  });

  it("audience: trusting stripped signatures with Cloud Run's invoker check off fails, and the printed update fixes it", async () => {
    const c = await breakAndFix(
      "audience",
      () => run.services.setInvokerIamCheck(SERVICE, false),
      (fix) => {
        expect(fix).toBe(`gcloud run services update ${SERVICE} --region ${REGION} --project ${PROJECT} --update-env-vars SHARDRUN_INVOKER_IAM_CHECK=off`);
        // The user's other way out: turn the check back on.
        run.services.setInvokerIamCheck(SERVICE, true);
      },
    );
    expect(c.found).toContain("would trust tokens anyone can forge");
  });

  it("credentials: with none to be found only the credentials check fails, and logging in fixes it", async () => {
    const c = await breakAndFix(
      "credentials",
      () => {},
      (fix) => {
        expect(fix).toBe("gcloud auth application-default login");
        // Logging in gives ADC credentials again: here, the metadata server comes back.
      },
      // No metadata server (not on Google Cloud), no key file, no gcloud ADC file.
      { GCE_METADATA_HOST: "", METADATA_SERVER_DETECTION: "none" },
    );
    expect(c.found).toMatch(/^Application Default Credentials found none: Could not load the default credentials/);
  });

  it("refuses a project it cannot name in one line, and says what a non-gs:// store lacks", async () => {
    const dir = tempDir("shardrun-doctor-");
    const r = await cli(["doctor"], dir, { ...env });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("shardrun: doctor: needs --project (or SHARDRUN_PROJECT) and --region (or SHARDRUN_REGION), or set them in manifests/shardrun.json\n");
    expect(r.stdout).toBe("");
    const bad = await cli(["doctor", ...where, "--store", "gs://"], ROOT, env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('shardrun: doctor: --store "gs://": expected gs://bucket or gs://bucket/prefix\n');
    const local = JSON.parse((await cli(["doctor", ...where, "--store", "./.shardrun", "--json"], ROOT, env)).stdout) as Report;
    expect(failing(local)).toEqual(["bucket"]);
    expect(local.checks.find((c) => c.name === "bucket")!.found).toBe("the store is ./.shardrun, not a gs:// bucket: Cloud Run tasks keep their state in a Cloud Storage bucket");
  });

  it("has help that says what exit 2 means", async () => {
    const r = await cli(["doctor", "--help"], ROOT, env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("2 some check failed");
  });
});
