/**
 * The fakes `shardrun doctor` is tested against refuse what Google refuses, through the same
 * adapters the doctor uses: the metadata server without its header, IAM's getIamPolicy by GET,
 * for an unknown project or account or below version 3 with conditions, bucket IAM of a bucket
 * that does not exist, a Cloud Run service that does not exist.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectIamPolicy, serviceAccountIamPolicy } from "../../src/doctor/google-auth.js";
import { readService, serviceIamPolicy } from "../../src/launcher/cloud-run-service.js";
import type { Launcher } from "../../src/launcher/port.js";
import { bucketIamPolicy, bucketPermissions } from "../../src/store/gcs-bucket.js";
import { CloudRunFake } from "../fakes/cloud-run-fake.js";
import { FakeBucketIam } from "../fakes/gcs-iam.js";
import { GcsThrottle } from "../fakes/gcs-throttle.js";
import { FakeIam } from "../fakes/iam-fake.js";
import { FakeMetadataServer } from "../fakes/metadata-server.js";
import { findFakeGcs, startFakeGcs, type FakeGcs } from "./fault-proxy.js";

const SA = "worker@fake-project.iam.gserviceaccount.com";

describe("the metadata server fake", () => {
  let metadata: FakeMetadataServer;
  beforeAll(async () => {
    metadata = await FakeMetadataServer.start({ email: SA });
  });
  afterAll(() => metadata.close());

  it("answers only with Metadata-Flavor: Google, and marks its answers so", async () => {
    const url = `http://${metadata.host}/computeMetadata/v1/instance/service-accounts/default/email`;
    expect((await fetch(url)).status).toBe(403);
    expect((await fetch(url, { headers: { "Metadata-Flavor": "Google", "X-Forwarded-For": "10.0.0.1" } })).status).toBe(403);
    const ok = await fetch(url, { headers: { "Metadata-Flavor": "Google" } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("metadata-flavor")).toBe("Google");
    expect(await ok.text()).toBe(SA);
    expect((await fetch(`http://${metadata.host}/computeMetadata/v1/instance/no-such-thing`, { headers: { "Metadata-Flavor": "Google" } })).status).toBe(404);
  });
});

describe("the IAM REST fake, through the doctor's adapter", () => {
  let iam: FakeIam;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    iam = await FakeIam.start("fake-project");
    env = { SHARDRUN_RESOURCE_MANAGER_ENDPOINT: iam.url, SHARDRUN_IAM_ENDPOINT: iam.url };
  });
  afterAll(() => iam.close());

  it("answers getIamPolicy by POST only, 403 for a project it does not hold, 404 for an unknown account", async () => {
    expect((await fetch(`${iam.url}/v1/projects/fake-project:getIamPolicy`)).status).toBe(404);
    expect((await fetch(`${iam.url}/v1/projects/fake-project:getIamPolicy`, { method: "POST", body: "{not json" })).status).toBe(400);
    await expect(projectIamPolicy("other-project", env)).rejects.toThrow(/could not read the IAM policy of project other-project: .*permission denied/);
    expect(await serviceAccountIamPolicy("fake-project", SA, env)).toBeNull();
    iam.createServiceAccount(SA);
    expect(await serviceAccountIamPolicy("fake-project", SA, env)).toEqual({ bindings: [] });
  });

  it("gives conditional bindings only at policy version 3, which the adapter asks for", async () => {
    iam.addConditionalProjectBinding("roles/run.developer", `serviceAccount:${SA}`);
    const v1 = await fetch(`${iam.url}/v1/projects/fake-project:getIamPolicy`, { method: "POST", body: JSON.stringify({ options: { requestedPolicyVersion: 1 } }) });
    expect(v1.status).toBe(400);
    expect(await projectIamPolicy("fake-project", env)).toEqual({ bindings: [{ role: "roles/run.developer", members: [`serviceAccount:${SA}`], conditional: true }] });
  });
});

describe("Cloud Run services in the Cloud Run fake, through the doctor's adapter", () => {
  const none: Launcher = { kind: "local", launch: async () => "never", getExecution: async () => null, cancel: async () => {} };
  let run: CloudRunFake;
  beforeAll(async () => {
    run = await CloudRunFake.start({ backing: none });
  });
  afterAll(() => run.close());

  it("answers NOT_FOUND for a service that does not exist, and its URLs, env and identity for one that does", async () => {
    const ref = { project: run.project, region: run.region, name: "shardrun-scheduler", clientOptions: run.clientOptions() };
    expect(await readService(ref)).toBeNull();
    await expect(serviceIamPolicy(ref)).rejects.toThrow(/could not read the IAM policy of Cloud Run service .*: 5 NOT_FOUND/);
    run.services.put("shardrun-scheduler", { serviceAccount: SA, env: { A: "1" } });
    run.services.addIamBinding("shardrun-scheduler", "roles/run.invoker", `serviceAccount:${SA}`);
    const s = await readService(ref);
    expect(s).toMatchObject({ uri: run.services.uri("shardrun-scheduler"), serviceAccount: SA, env: { A: "1" }, invokerIamDisabled: false });
    expect(s!.urls).toHaveLength(2);
    expect(await serviceIamPolicy(ref)).toEqual({ bindings: [{ role: "roles/run.invoker", members: [`serviceAccount:${SA}`] }] });
  });
});

const found = findFakeGcs();
describe.skipIf(!found.bin)("bucket IAM in the Cloud Storage throttle, through the doctor's adapter", () => {
  let gcs: FakeGcs;
  let throttle: GcsThrottle;
  let bucketIam: FakeBucketIam;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    gcs = await startFakeGcs(found.bin!);
    await gcs.createBucket("doctor-iam");
    bucketIam = new FakeBucketIam(`serviceAccount:${SA}`);
    throttle = await GcsThrottle.start({ target: gcs.url, iam: bucketIam });
    env = { STORAGE_EMULATOR_HOST: throttle.url };
  });
  afterAll(async () => {
    await throttle?.close();
    await gcs?.stop();
  });

  it("answers 404 for a bucket that does not exist, and the caller's permissions from the bucket's bindings", async () => {
    const wanted = ["storage.objects.get", "storage.objects.create", "storage.objects.delete"];
    expect(await bucketPermissions("no-such-bucket", wanted, { env })).toBeNull();
    expect(await bucketIamPolicy("no-such-bucket", { env })).toBeNull();
    expect(await bucketPermissions("doctor-iam", wanted, { env })).toEqual([]);
    bucketIam.addBinding("doctor-iam", "roles/storage.objectViewer", `serviceAccount:${SA}`);
    expect(await bucketPermissions("doctor-iam", wanted, { env })).toEqual(["storage.objects.get"]);
    bucketIam.addBinding("doctor-iam", "roles/storage.objectUser", `serviceAccount:${SA}`);
    expect(await bucketPermissions("doctor-iam", wanted, { env })).toEqual(wanted);
    expect(await bucketIamPolicy("doctor-iam", { env })).toEqual({
      bindings: [
        { role: "roles/storage.objectViewer", members: [`serviceAccount:${SA}`] },
        { role: "roles/storage.objectUser", members: [`serviceAccount:${SA}`] },
      ],
    });
  });
});
