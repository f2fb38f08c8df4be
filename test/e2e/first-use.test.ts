/**
 * A new user's first commands, from the repository root of a clean clone: manifests/shardrun.json
 * still holds its placeholders, no Google credentials, no cloud settings in the environment.
 * `serve --local` answers and runs a job through its API; `run --local` and `rerun --local`
 * work; `deploy --dry-run` says where it would deploy, with which image and identity, without
 * asking Google anything.
 */
import { readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ROOT, SLEEPY, cli, parseLines, sleep, startCli, tempDir } from "./helpers.js";

const TOKEN = "first-use-token-0123456789abcdef";

/** An environment with no cloud settings and no credentials to find. */
let clean: NodeJS.ProcessEnv;
beforeAll(() => {
  const home = tempDir("shardrun-first-use-home-");
  clean = {
    HOME: home,
    CLOUDSDK_CONFIG: join(home, "gcloud"),
    GOOGLE_APPLICATION_CREDENTIALS: "",
    GCE_METADATA_HOST: "",
    METADATA_SERVER_DETECTION: "none",
    SHARDRUN_PROJECT: "",
    GOOGLE_CLOUD_PROJECT: "",
    SHARDRUN_REGION: "",
    SHARDRUN_IMAGE: "",
    SHARDRUN_STORE_URL: "",
    SHARDRUN_CLOUD_RUN_ENDPOINT: "",
    SHARDRUN_OIDC_AUDIENCE: "",
    SHARDRUN_ALLOWED_SERVICE_ACCOUNTS: "",
    SHARDRUN_API_TOKEN: "",
    NO_COLOR: "1",
  };
  // The premise: the manifest is as shipped.
  const manifest = JSON.parse(readFileSync(join(ROOT, "manifests", "shardrun.json"), "utf8")) as Record<string, string>;
  expect(manifest.project).toBe("PROJECT_ID");
  expect(manifest.region).toBe("REGION");
});

describe("first use from the repository root, with the manifest's placeholders and no credentials", () => {
  it("serve --local answers /healthz, and a run started through its API succeeds", async () => {
    const store = tempDir("shardrun-first-serve-");
    const proc = startCli(["serve", "--local", "--port", "0", "--reconcile-every", "1", "--store", store], ROOT, { ...clean, SHARDRUN_API_TOKEN: TOKEN });
    let buffer = "";
    const url = await new Promise<string>((resolve, reject) => {
      proc.child.stdout!.on("data", (d: Buffer) => {
        buffer += d.toString();
        for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
          const line = JSON.parse(buffer.slice(0, nl)) as { message?: string; url?: string };
          buffer = buffer.slice(nl + 1);
          if (line.message === "serving") resolve(line.url!);
        }
      });
      void proc.done.then((r) => reject(new Error(`serve exited ${r.code}: ${r.stderr}`)));
    });
    try {
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const call = (method: string, path: string, body?: unknown) =>
        fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { "content-type": "application/json" } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
      const started = await call("POST", "/v1/jobs/summarize-docs/runs", { args: { limit: 4 }, shards: 2, tasks: 2 });
      expect(started.status).toBe(202);
      const { runId } = (await started.json()) as { runId: string };
      let state = "";
      for (let i = 0; i < 600 && state !== "succeeded" && state !== "failed"; i++) {
        await sleep(200);
        state = ((await (await call("GET", `/v1/runs/${runId}`)).json()) as { state: string }).state;
      }
      expect(state).toBe("succeeded");
    } finally {
      proc.child.kill("SIGTERM");
    }
    const r = await proc.done;
    expect(r.code).toBe(0);
    // Nothing asked for flags serve does not take, nothing about placeholders or credentials.
    expect(r.stderr).toBe("");
    expect(r.stdout).not.toMatch(/--image|--service-account|PROJECT_ID|credentials/);
  });

  it("run --local, then rerun --local of its failed items, with no cloud settings", async () => {
    const store = tempDir("shardrun-first-run-");
    const broken = join(store, "broken");
    writeFileSync(broken, "");
    const first = await cli(["run", SLEEPY, "--local", "--store", store, "--json", "--arg", "count=12", "--arg", "sleepMs=1", "--arg", "failEvery=5", "--arg", `failIfExists=${broken}`], ROOT, clean);
    expect(first.code).toBe(3);
    const { runId } = JSON.parse(first.stdout) as { runId: string };
    rmSync(broken);
    const rerun = await cli(["rerun", runId, "--local", "--failed-items", "--store", store, "--json"], ROOT, clean);
    expect(rerun.stderr).toBe("");
    expect(rerun.code).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ state: "succeeded", items: { total: 12, succeeded: 12, failed: 0 } });
    const keys = parseLines((await cli(["output", runId, "--store", store], ROOT, clean)).stdout).map((l) => l.key);
    expect(keys.sort()).toEqual(Array.from({ length: 12 }, (_, n) => `item-${n}`).sort());
  });

  it("deploy --dry-run prints the region, the image in that region's registry and the service account, asking Google nothing", async () => {
    const r = await cli(["deploy", "--dry-run", "--project", "p", "--region", "europe-west1"], ROOT, clean);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("would deploy to project p, region europe-west1\n");
    expect(r.stdout).toContain("  image            europe-west1-docker.pkg.dev/p/shardrun/shardrun:latest\n");
    expect(r.stdout).toContain("  service account  shardrun-worker@p.iam.gserviceaccount.com\n");
    expect(r.stdout).toContain("parallelism unset: every task of an execution runs at once");
    expect(r.stdout).toContain("dry run, not compared with Cloud Run (no Google credentials found; run `gcloud auth application-default login` to compare)\n");
    expect(r.stdout).toContain('"name": "projects/p/locations/europe-west1/jobs/shardrun-summarize-docs"');
    expect(r.stdout).not.toMatch(/PROJECT_ID|REGION-docker/);
    const json = JSON.parse((await cli(["deploy", "--dry-run", "--project", "p", "--region", "europe-west1", "--json"], ROOT, clean)).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ dryRun: true, project: "p", region: "europe-west1", image: "europe-west1-docker.pkg.dev/p/shardrun/shardrun:latest", serviceAccount: "shardrun-worker@p.iam.gserviceaccount.com", parallelism: "unset" });
  });

  it("deploy --dry-run without a project names the placeholders instead of sending them", async () => {
    const r = await cli(["deploy", "--dry-run"], ROOT, clean);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("would deploy to project (no project: a placeholder in manifests/shardrun.json), region (no region: a placeholder in manifests/shardrun.json)\n");
    expect(r.stdout).toContain("the project or region in manifests/shardrun.json still holds a placeholder; pass --project and --region, or fill it in");
  });

  it("deploy refuses a parallelism in the settings file, saying why, and sends nothing", async () => {
    const dir = tempDir("shardrun-first-deploy-");
    mkdirSync(join(dir, "manifests"));
    writeFileSync(join(dir, "manifests", "shardrun.json"), JSON.stringify({ project: "p", region: "europe-west1", image: "img", parallelism: 5 }));
    const r = await cli(["deploy", "--dry-run"], dir, clean);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("parallelism: Expected parallelism 0 (unset): Cloud Run refuses an execution whose task count is below its job's parallelism");
  });
});
