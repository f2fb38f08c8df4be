/**
 * The doctor's ports on Google Cloud, over the project's adapters: Cloud Run (jobs, the
 * service), Cloud Storage (the bucket), Cloud Scheduler, and google-auth-library for
 * credentials and IAM policies. Each endpoint override the other commands honour
 * (SHARDRUN_CLOUD_RUN_ENDPOINT, STORAGE_EMULATOR_HOST, SHARDRUN_CLOUD_SCHEDULER_ENDPOINT) is
 * honoured here too, so the doctor can be pointed at fakes.
 */
import type { DoctorPorts } from "./ports.js";

export async function googlePorts(env: NodeJS.ProcessEnv = process.env): Promise<DoctorPorts> {
  const [deploy, service, bucket, scheduler, auth, endpoint] = await Promise.all([
    import("../launcher/cloud-run-deploy.js"),
    import("../launcher/cloud-run-service.js"),
    import("../store/gcs-bucket.js"),
    import("../schedules/cloud-scheduler.js"),
    import("./google-auth.js"),
    import("../launcher/cloud-run-endpoint.js"),
  ]);
  const runOptions = endpoint.cloudRunClientOptions(env);
  const schedulerOptions = scheduler.cloudSchedulerClientOptions(env);
  const run = runOptions ? { clientOptions: runOptions } : {};
  return {
    credentials: () => auth.findCredentials(env),
    bucketPermissions: (name, permissions) => bucket.bucketPermissions(name, permissions, { env }),
    bucketPolicy: (name) => bucket.bucketIamPolicy(name, { env }),
    projectPolicy: (project) => auth.projectIamPolicy(project, env),
    serviceAccountPolicy: (project, email) => auth.serviceAccountIamPolicy(project, email, env),
    deployDryRun: (spec) => deploy.deployJob(spec, { dryRun: true, ...run }),
    service: (project, region, name) => service.readService({ project, region, name, ...run }),
    servicePolicy: (project, region, name) => service.serviceIamPolicy({ project, region, name, ...run }),
    schedulesDryRun: (o) => scheduler.syncSchedules({ ...o, dryRun: true, ...(schedulerOptions ? { clientOptions: schedulerOptions } : {}) }),
    schedulerJobs: (project, region) => scheduler.listManagedJobs({ project, region, ...(schedulerOptions ? { clientOptions: schedulerOptions } : {}) }),
  };
}
