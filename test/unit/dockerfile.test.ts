/**
 * No Docker engine runs here, so this checks what the Dockerfile would put in the image: its COPY
 * sources after .dockerignore, taken from every file of the working tree plus files a careless
 * developer might leave around (keys, .env). Compiled code and production dependencies only.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { copiedFromContext, isIgnored, parseCopies, parseDockerignore } from "../support/dockerignore.js";

const ROOT = join(import.meta.dirname, "../..");
const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
const rules = parseDockerignore(readFileSync(join(ROOT, ".dockerignore"), "utf8"));
const tracked = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8" }).split("\n").filter(Boolean);
const planted = [
  ".env",
  "src/.env.local",
  "jobs/summarize-docs/credentials.json",
  "service-account-key.json",
  "src/store/gcs.pem",
  "node_modules/zod/package.json",
  "dist/src/cli/main.js",
  ".shardrun/runs/x/run.json@/1",
  "src/core/plan.test.ts",
  "test/unit/x.test.ts",
  "bench/run.ts",
  ".git/config",
];
const context = [...tracked, ...planted].filter((f) => !isIgnored(rules, f));
const copies = parseCopies(dockerfile);
const copied = [...copiedFromContext(copies, context)];

describe("the task image", () => {
  it("matches .dockerignore as Docker does", () => {
    const r = parseDockerignore("*\n!src/\n**/*.pem\n!keep.pem\n");
    expect(isIgnored(r, "README.md")).toBe(true);
    expect(isIgnored(r, "src/a/b.ts")).toBe(false);
    expect(isIgnored(r, "src/a/key.pem")).toBe(true);
    expect(isIgnored(r, "keep.pem")).toBe(false);
  });

  it("copies the sources it compiles and the lock file", () => {
    expect(copied).toContain("package.json");
    expect(copied).toContain("package-lock.json");
    expect(copied).toContain("tsconfig.image.json");
    expect(copied).toContain("src/worker/main.ts");
    expect(copied).toContain("jobs/summarize-docs/index.ts");
    expect(copied).toContain("bin/shardrun.js");
  });

  it("copies no tests, benchmarks, secrets, local state or build output from the context", () => {
    const bad = copied.filter((f) =>
      /^(test|bench|scripts|node_modules|dist|\.shardrun|\.git|\.ci|manifests)\//.test(f) ||
      /(^|\/)\.env/.test(f) ||
      /\.(pem|key)$/.test(f) ||
      /credentials.*\.json$|service-account.*\.json$/.test(f) ||
      /\.test\.ts$/.test(f),
    );
    expect(bad).toEqual([]);
  });

  it("builds the final stage from compiled code and pruned production dependencies only", () => {
    const stages = Math.max(...copies.map((c) => c.stage));
    const final = copies.filter((c) => c.stage === stages);
    const fromBuild = final.filter((c) => c.from === "build").flatMap((c) => c.sources);
    expect(fromBuild.sort()).toEqual(["/app/dist", "/app/job-data/jobs", "/app/node_modules", "/app/package.json"]);
    // Only the jobs' JSON data goes into job-data, never their sources.
    expect(dockerfile).toMatch(/find jobs -name '\*\.json'/);
    expect(final.filter((c) => !c.from).flatMap((c) => c.sources)).toEqual(["bin"]);
    expect(dockerfile).toMatch(/npm prune --omit=dev/);
    expect(dockerfile).toMatch(/^FROM node:24-slim$/m);
    const image = JSON.parse(readFileSync(join(ROOT, "tsconfig.image.json"), "utf8")) as { include: string[] };
    expect(image.include.sort()).toEqual(["jobs", "src"]);
    expect(dockerfile).toMatch(/ENTRYPOINT \["node", "dist\/worker\.mjs"\]/);
    // The entrypoint is made in the build stage, before the prune, by the same function as `make build`.
    expect(dockerfile).toMatch(/RUN npx tsc -p tsconfig\.image\.json \\\n\s+&& node -e '[^']*bundleWorker\("dist"\)[^']*' \\\n\s+&& npm prune --omit=dev/);
  });

  it("starts its tasks from a bundled worker that needs production dependencies only", () => {
    // make build writes the same files as the image's build stage (bundleWorker("dist")).
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const files = [join(ROOT, "dist", "worker.mjs"), ...readdirSync(join(ROOT, "dist", "worker-chunks")).map((f) => join(ROOT, "dist", "worker-chunks", f))];
    const packages = new Set<string>();
    for (const f of files) {
      for (const m of readFileSync(f, "utf8").matchAll(/(?:\bfrom|\bimport\(?)\s*"([^"]+)"/g)) {
        const spec = m[1]!;
        if (spec.startsWith("node:") || spec.startsWith("./") || spec.startsWith("../")) continue;
        packages.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
      }
    }
    expect([...packages].filter((p) => !(p in pkg.dependencies))).toEqual([]);
    // Loading the Cloud Storage client is left to the tasks whose store is in a bucket.
    expect(readFileSync(join(ROOT, "dist", "worker.mjs"), "utf8")).not.toMatch(/from\s*"@google-cloud\/storage"/);
    // esbuild is what `serve` builds jobs with in the image: it must survive the prune.
    expect(pkg.dependencies).toHaveProperty("esbuild");
  });
});
