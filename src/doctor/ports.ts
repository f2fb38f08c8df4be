/**
 * What `shardrun doctor` checks against, as narrow ports: the checks (checks.ts) decide, the
 * ports answer. google.ts implements them over the Google adapters; a test may implement them
 * over anything.
 */
import type { IamPolicy } from "../core/iam.js";
import type { DeployJobSpec, DeployResult } from "../launcher/cloud-run-deploy.js";
import type { ServiceInfo } from "../launcher/cloud-run-service.js";
import type { SchedulerJobJson, SyncableSchedule, SyncResult } from "../schedules/cloud-scheduler.js";
import type { FoundCredentials } from "./google-auth.js";

export type { FoundCredentials, IamPolicy, ServiceInfo };

/** One line of the checklist. */
export interface Check {
  /** e.g. "credentials", "bucket", "job summarize-docs", "roles", "schedules", "audience". */
  name: string;
  ok: boolean;
  /** What was found, in a sentence. */
  found: string;
  /** For a failed check: the command(s) that fix it, one a line, as a user would type them; null when no command can. */
  fix: string | null;
}

/** What the checks compare the project with: the settings shardrun would deploy and sync with. */
export interface DoctorContext {
  project: string;
  region: string;
  /** The bucket of the gs:// store; undefined when no gs:// store was given. */
  bucket?: string;
  /** The store as given, to say what is wrong with it when it is not gs://. */
  store?: string;
  /** The identity tasks run as (manifests/shardrun.json); undefined: Cloud Run's default. */
  workerServiceAccount?: string;
  /** The scheduler service's name. @default "shardrun-scheduler" */
  serviceName: string;
  /** The specs `shardrun deploy` would send, one per job under jobs/. */
  jobs: { job: string; spec: DeployJobSpec }[];
  /** The jobs' schedules, and the jobs whose schedules are unknown (their definitions do not build). */
  schedules: readonly SyncableSchedule[];
  keepJobsOf: readonly string[];
  /** A service URL given by flag or SHARDRUN_SERVICE_URL; else the deployed service's. */
  serviceUrl?: string;
  /** The identity of Cloud Scheduler's OIDC tokens given by flag; else the service's own. */
  oidcServiceAccount?: string;
  /** How to invoke shardrun in a printed command ("npx shardrun", "shardrun", "./bin/shardrun.js"). */
  shardrun: string;
  /** Flags the printed deploy commands carry besides --project and --region (e.g. --image). */
  deployFlags: string[];
}

/** The questions the checks ask; each may throw, which fails only its check. */
export interface DoctorPorts {
  credentials(): Promise<FoundCredentials>;
  /** The permissions of `permissions` the caller holds on the bucket; null: no such bucket. */
  bucketPermissions(bucket: string, permissions: readonly string[]): Promise<string[] | null>;
  /** null: no such bucket. */
  bucketPolicy(bucket: string): Promise<IamPolicy | null>;
  projectPolicy(project: string): Promise<IamPolicy>;
  /** null: no such service account. */
  serviceAccountPolicy(project: string, email: string): Promise<IamPolicy | null>;
  /** What `shardrun deploy` would do for the spec (a dry run: only reads). */
  deployDryRun(spec: DeployJobSpec): Promise<DeployResult>;
  /** null: no such service. */
  service(project: string, region: string, name: string): Promise<ServiceInfo | null>;
  servicePolicy(project: string, region: string, name: string): Promise<IamPolicy>;
  /** What `shardrun schedules sync` would do (a dry run: only lists). */
  schedulesDryRun(o: { project: string; region: string; serviceUrl: string; serviceAccountEmail: string; schedules: readonly SyncableSchedule[]; keepJobsOf: readonly string[] }): Promise<SyncResult>;
  /** The Cloud Scheduler jobs shardrun made in the location. */
  schedulerJobs(project: string, region: string): Promise<SchedulerJobJson[]>;
}
