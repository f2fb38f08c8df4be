/**
 * The manifests agree with the code that drives the deployment: the scheduler service lets a
 * request run at least as long as Cloud Scheduler waits for it. Cloud Scheduler gives up on an
 * attempt after its attempt deadline, and Cloud Run ends a request at the service's timeout; a
 * timeout below the deadline cuts a long plan off while Cloud Scheduler still waits for it.
 */
import { describe, expect, it } from "vitest";
import { desiredJobs } from "../../src/schedules/cloud-scheduler.js";
import { readServiceManifest } from "../support/manifests.js";

const seconds = (d: unknown) => Number((d as { seconds?: unknown } | undefined)?.seconds ?? 0);

describe("manifests/service.yaml", () => {
  const manifest = readServiceManifest();
  // Every job `schedules sync` makes: one schedule and the reconcile job.
  const jobs = [
    ...desiredJobs({
      project: "p",
      region: "europe-west1",
      serviceUrl: "https://shardrun-scheduler-abc123-ew.a.run.app",
      serviceAccountEmail: "shardrun-scheduler@p.iam.gserviceaccount.com",
      schedules: [{ name: "nightly", job: "docs", cron: "0 2 * * *", timeZone: "Etc/UTC", paused: false }],
    }).values(),
  ].map((d) => d.job);

  it("lets a request run at least as long as Cloud Scheduler's attempt deadline for each of its jobs", () => {
    expect(jobs.length).toBe(2);
    for (const job of jobs) {
      const deadline = seconds(job.attemptDeadline);
      expect(deadline, `${String(job.name)}: attempt deadline`).toBeGreaterThan(0);
      expect(manifest.timeoutSeconds, `timeoutSeconds against ${String(job.name)}'s attempt deadline`).toBeGreaterThanOrEqual(deadline);
    }
  });

  it("stays within Cloud Run's longest request timeout (3600 s)", () => {
    expect(manifest.timeoutSeconds).toBeLessThanOrEqual(3600);
  });
});
