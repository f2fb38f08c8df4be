/**
 * The checks of `shardrun doctor`: what a project needs before a first run, each one line of a
 * checklist with what was found and, when it fails, the command that fixes it. They read only.
 * Each check stands alone: one that cannot ask its question (an API refuses, a resource is
 * missing) fails with the reason, and the others still run.
 */
import { shellCommand } from "../core/shell.js";
import { errorMessage } from "../core/errors.js";
import { grantingRole, memberOf, NEEDS, STORE_PERMISSIONS, type Need } from "../core/iam.js";
import type { SchedulerJobJson } from "../schedules/cloud-scheduler.js";
import type { Check, DoctorContext, DoctorPorts, FoundCredentials, IamPolicy, ServiceInfo } from "./ports.js";

const ENV_AUDIENCE = "SHARDRUN_OIDC_AUDIENCE";
const ENV_INVOKER_CHECK = "SHARDRUN_INVOKER_IAM_CHECK";

const ok = (name: string, found: string): Check => ({ name, ok: true, found, fix: null });
const failed = (name: string, found: string, fix: string | string[] | null): Check => ({ name, ok: false, found, fix: Array.isArray(fix) ? fix.join("\n") : fix });

/** Runs `fn`; an error fails the check with its message (and no fix: nothing known to fix it). */
async function guarded(name: string, fn: () => Promise<Check>): Promise<Check> {
  try {
    return await fn();
  } catch (e) {
    return failed(name, errorMessage(e), null);
  }
}

/** Every check, in checklist order. */
export async function runChecks(ctx: DoctorContext, ports: DoctorPorts): Promise<Check[]> {
  const credentials = ports.credentials().catch((e: unknown): FoundCredentials => ({ token: false, error: errorMessage(e) }));
  // Read once: the roles, schedules and audience checks all look at the service.
  const service = ports.service(ctx.project, ctx.region, ctx.serviceName);
  service.catch(() => {});
  const checks = await Promise.all([
    guarded("credentials", async () => credentialsCheck(await credentials)),
    guarded("bucket", async () => bucketCheck(ctx, ports, await credentials)),
    ...ctx.jobs.map(({ job, spec }) => guarded(`job ${job}`, () => jobCheck(ctx, ports, job, spec))),
    guarded("roles", async () => rolesCheck(ctx, ports, await service)),
    guarded("schedules", async () => schedulesCheck(ctx, ports, await service)),
    guarded("audience", async () => audienceCheck(ctx, ports, await service)),
  ]);
  return checks;
}

const LOGIN = "gcloud auth application-default login";

function credentialsCheck(c: FoundCredentials): Check {
  if (!c.kind) return failed("credentials", `Application Default Credentials found none${c.error ? `: ${c.error}` : ""}`, LOGIN);
  const what = `${c.kind}${c.source ? ` (${c.source})` : ""}, as ${c.email ?? "an identity that cannot be told offline"}`;
  if (!c.token) return failed("credentials", `${what}, but ${c.error ?? "no access token"}`, LOGIN);
  return ok("credentials", `${what}; an access token was issued`);
}

async function bucketCheck(ctx: DoctorContext, ports: DoctorPorts, c: FoundCredentials): Promise<Check> {
  const name = "bucket";
  if (!ctx.bucket) {
    const given = ctx.store ? `the store is ${ctx.store}, not a gs:// bucket` : "no store was given";
    return failed(name, `${given}: Cloud Run tasks keep their state in a Cloud Storage bucket`, `${ctx.shardrun} ${shellCommand("doctor", "--project", ctx.project, "--region", ctx.region, "--store", "gs://BUCKET/shardrun")}`);
  }
  const held = await ports.bucketPermissions(ctx.bucket, STORE_PERMISSIONS);
  if (held === null) {
    return failed(name, `gs://${ctx.bucket} does not exist`, shellCommand("gcloud", "storage", "buckets", "create", `gs://${ctx.bucket}`, "--project", ctx.project, "--location", ctx.region, "--uniform-bucket-level-access"));
  }
  const who = c.email ? `you (${c.email})` : "you";
  const missing = STORE_PERMISSIONS.filter((p) => !held.includes(p));
  if (missing.length) {
    const member = c.email ? memberOf(c.email) : "user:YOUR_EMAIL";
    return failed(
      name,
      `gs://${ctx.bucket} exists, but ${who} lack ${missing.join(", ")}`,
      shellCommand("gcloud", "storage", "buckets", "add-iam-policy-binding", `gs://${ctx.bucket}`, "--member", member, "--role", NEEDS.objects.role),
    );
  }
  return ok(name, `gs://${ctx.bucket} exists, and ${who} hold ${STORE_PERMISSIONS.join(", ")}`);
}

async function jobCheck(ctx: DoctorContext, ports: DoctorPorts, job: string, spec: DoctorContext["jobs"][number]["spec"]): Promise<Check> {
  const name = `job ${job}`;
  const fix = `${ctx.shardrun} ${shellCommand("deploy", job, "--project", ctx.project, "--region", ctx.region, ...ctx.deployFlags)}`;
  const r = await ports.deployDryRun(spec);
  const where = `projects/${ctx.project}/locations/${ctx.region}`;
  if (r.action === "create") return failed(name, `Cloud Run job ${spec.name} is not deployed in ${where}`, fix);
  if (r.action === "update") return failed(name, `Cloud Run job ${spec.name} differs from what deploy sets: ${(r.details ?? r.changes).join("; ")}`, fix);
  const { describeJob } = await import("../launcher/cloud-run-deploy.js");
  return ok(name, `Cloud Run job ${spec.name}: ${describeJob(r.job)}`);
}

/** The scheduler service's identity: the one it runs as, else the one manifests/iam.sh makes. */
function schedulerAccount(ctx: DoctorContext, service: ServiceInfo | null): string {
  return service?.serviceAccount ?? `shardrun-scheduler@${ctx.project}.iam.gserviceaccount.com`;
}

function oidcAccount(ctx: DoctorContext, service: ServiceInfo | null): string {
  return ctx.oidcServiceAccount ?? schedulerAccount(ctx, service);
}

async function rolesCheck(ctx: DoctorContext, ports: DoctorPorts, service: ServiceInfo | null): Promise<Check> {
  const name = "roles";
  const scheduler = schedulerAccount(ctx, service);
  const worker = ctx.workerServiceAccount;
  const [project, bucket, actAs, invoke] = await Promise.all([
    ports.projectPolicy(ctx.project),
    ctx.bucket ? ports.bucketPolicy(ctx.bucket) : Promise.resolve(null),
    worker ? ports.serviceAccountPolicy(ctx.project, worker) : Promise.resolve(null),
    service && !service.invokerIamDisabled ? ports.servicePolicy(ctx.project, ctx.region, ctx.serviceName) : Promise.resolve(null),
  ]);
  const held: string[] = [];
  const lacking: string[] = [];
  const fixes: string[] = [];
  const need = (email: string, n: Need, where: string, policy: IamPolicy | null, fix: string) => {
    const role = (policy && grantingRole(policy, email, n)) ?? grantingRole(project, email, n, true);
    if (role) held.push(`${email}: ${role} ${where}`);
    else {
      lacking.push(`${email} lacks ${NEEDS[n].role} ${where}`);
      fixes.push(fix);
    }
  };
  const bucketGrant = (email: string) =>
    shellCommand("gcloud", "storage", "buckets", "add-iam-policy-binding", `gs://${ctx.bucket}`, "--member", memberOf(email), "--role", NEEDS.objects.role);
  for (const email of worker ? [worker, scheduler] : [scheduler]) {
    if (ctx.bucket) need(email, "objects", `on gs://${ctx.bucket}`, bucket, bucketGrant(email));
  }
  need(scheduler, "runJobs", `on project ${ctx.project}`, null, shellCommand("gcloud", "projects", "add-iam-policy-binding", ctx.project, "--member", memberOf(scheduler), "--role", NEEDS.runJobs.role, "--condition=None"));
  if (worker) {
    if (actAs === null) {
      lacking.push(`service account ${worker} does not exist`);
      fixes.push(shellCommand("gcloud", "iam", "service-accounts", "create", worker.split("@")[0]!, "--project", ctx.project));
    } else {
      need(scheduler, "actAs", `on ${worker}`, actAs, shellCommand("gcloud", "iam", "service-accounts", "add-iam-policy-binding", worker, "--member", memberOf(scheduler), "--role", NEEDS.actAs.role, "--project", ctx.project));
    }
  }
  if (service && invoke) {
    const caller = oidcAccount(ctx, service);
    need(caller, "invoke", `on service ${ctx.serviceName}`, invoke, shellCommand("gcloud", "run", "services", "add-iam-policy-binding", ctx.serviceName, "--region", ctx.region, "--project", ctx.project, "--member", memberOf(caller), "--role", NEEDS.invoke.role));
  }
  const notes = [
    ...(worker ? [] : ["no worker service account in manifests/shardrun.json (tasks run as Cloud Run's default)"]),
    ...(ctx.bucket ? [] : ["bucket roles not checked (no gs:// store)"]),
    ...(service ? [] : [`invoker role not checked (no service ${ctx.serviceName})`]),
  ];
  const tail = notes.length ? `; ${notes.join("; ")}` : "";
  if (lacking.length) return failed(name, `${lacking.join("; ")}${tail}`, fixes);
  return ok(name, `${held.join("; ")}${tail}`);
}

/** The service URL Cloud Scheduler should call; null when none is known. */
function serviceUrlOf(ctx: DoctorContext, service: ServiceInfo | null): string | null {
  return ctx.serviceUrl ?? (service?.uri || null);
}

/**
 * manifests/service.yaml with its placeholders filled in, deployed. REGION is replaced where it
 * stands alone (not in SHARDRUN_REGION); the audience's HASH is known only once the service
 * has its URL, and the audience check says how to set it then.
 */
function deployServiceFix(ctx: DoctorContext): string {
  const fill = [
    ["-e", `s/PROJECT_ID/${ctx.project}/g`],
    ["-e", `s/REGION-docker/${ctx.region}-docker/g`],
    ["-e", `s/: REGION$/: ${ctx.region}/`],
    ...(ctx.bucket ? [["-e", `s#gs://BUCKET/#gs://${ctx.bucket}/#`]] : []),
  ].flat();
  return `${shellCommand("sed", ...fill, "manifests/service.yaml")} > service.yaml && ${shellCommand("gcloud", "run", "services", "replace", "service.yaml", "--region", ctx.region, "--project", ctx.project)}`;
}

function syncFix(ctx: DoctorContext, url: string, account: string): string {
  return `${ctx.shardrun} ${shellCommand("schedules", "sync", "--project", ctx.project, "--region", ctx.region, "--service-url", url, "--service-account", account)}`;
}

async function schedulesCheck(ctx: DoctorContext, ports: DoctorPorts, service: ServiceInfo | null): Promise<Check> {
  const name = "schedules";
  const url = serviceUrlOf(ctx, service);
  if (!url) return failed(name, `no service URL to compare with: service ${ctx.serviceName} is not deployed in ${ctx.region} and SHARDRUN_SERVICE_URL is not set`, deployServiceFix(ctx));
  const account = oidcAccount(ctx, service);
  const diff = await ports.schedulesDryRun({ project: ctx.project, region: ctx.region, serviceUrl: url, serviceAccountEmail: account, schedules: ctx.schedules, keepJobsOf: ctx.keepJobsOf });
  const changes = (["create", "update", "pause", "resume", "delete"] as const).flatMap((action) =>
    diff[action].map((c) => `would ${action} ${c.id}${c.changes.length ? ` (${c.changes.join(", ")})` : ""}`),
  );
  const kept = diff.kept?.length ? `; kept as they are (their job does not load): ${diff.kept.join(", ")}` : "";
  if (changes.length) return failed(name, `Cloud Scheduler is out of sync with the schedules: ${changes.join("; ")}${kept}`, syncFix(ctx, url, account));
  return ok(name, `${diff.unchanged.length} Cloud Scheduler job${diff.unchanged.length === 1 ? "" : "s"} in ${diff.parent} match the schedules (${diff.unchanged.join(", ") || "none"})${kept}`);
}

async function audienceCheck(ctx: DoctorContext, ports: DoctorPorts, service: ServiceInfo | null): Promise<Check> {
  const name = "audience";
  if (!service) return failed(name, `no Cloud Run service ${ctx.serviceName} in projects/${ctx.project}/locations/${ctx.region}`, deployServiceFix(ctx));
  if (!service.uri) return failed(name, `service ${ctx.serviceName} has no URL yet (no revision is ready)`, deployServiceFix(ctx));
  const update = (key: string, value: string) => shellCommand("gcloud", "run", "services", "update", ctx.serviceName, "--region", ctx.region, "--project", ctx.project, "--update-env-vars", `${key}=${value}`);
  // What Cloud Run's invoker check accepts as a token's audience: the service's URLs and its custom audiences.
  const cloudRunAccepts = new Set([service.uri, ...service.urls, ...service.customAudiences]);
  const serviceAccepts = (service.env[ENV_AUDIENCE] ?? "").split(",").map((a) => a.trim()).filter(Boolean);
  const problems: string[] = [];
  const fixes: string[] = [];
  const serviceRight = serviceAccepts.some((a) => cloudRunAccepts.has(a));
  if (!serviceRight) {
    problems.push(serviceAccepts.length ? `the service's ${ENV_AUDIENCE} is ${serviceAccepts.join(",")}, not its URL ${service.uri}` : `the service has no ${ENV_AUDIENCE}: it refuses every OIDC token`);
    fixes.push(update(ENV_AUDIENCE, service.uri));
  }
  const checkOn = ["on", "true", "1"].includes((service.env[ENV_INVOKER_CHECK] ?? "").trim().toLowerCase());
  if (checkOn && service.invokerIamDisabled) {
    problems.push(`${ENV_INVOKER_CHECK} is on while Cloud Run's invoker IAM check is off: the service would trust tokens anyone can forge`);
    fixes.push(update(ENV_INVOKER_CHECK, "off"));
  } else if (!checkOn && !service.invokerIamDisabled) {
    problems.push(`Cloud Run's invoker IAM check is on but ${ENV_INVOKER_CHECK} is not: Cloud Run strips token signatures, so the service would refuse every call`);
    fixes.push(update(ENV_INVOKER_CHECK, "on"));
  }
  // A job is wrong when its tokens are not for the service (a URL or custom audience of it), or,
  // the service's own setting being right, when the service would not accept them. A wrong
  // setting of the service is the service's problem, not every job's.
  const audienceOf = (j: SchedulerJobJson) => String((j.httpTarget as { oidcToken?: { audience?: unknown } } | undefined)?.oidcToken?.audience ?? "");
  const jobs = await ports.schedulerJobs(ctx.project, ctx.region);
  const wrong = jobs.filter((j) => !cloudRunAccepts.has(audienceOf(j)) || (serviceRight && !serviceAccepts.includes(audienceOf(j))));
  if (wrong.length) {
    const audiences = [...new Set(wrong.map((j) => audienceOf(j) || "none"))];
    problems.push(`Cloud Scheduler job${wrong.length === 1 ? "" : "s"} ${wrong.map((j) => String(j.name).split("/").pop()).join(", ")} ${wrong.length === 1 ? "sends" : "send"} tokens for ${audiences.join(", ")}`);
    fixes.push(syncFix(ctx, serviceUrlOf(ctx, service)!, oidcAccount(ctx, service)));
  }
  if (problems.length) return failed(name, `${service.uri}: ${problems.join("; ")}`, fixes);
  return ok(
    name,
    `${service.uri}: the service accepts tokens for it (${ENV_AUDIENCE}), ${jobs.length} Cloud Scheduler job${jobs.length === 1 ? "" : "s"} send tokens for it, invoker IAM check ${service.invokerIamDisabled ? "off" : "on"} and ${ENV_INVOKER_CHECK} ${checkOn ? "on" : "off"}`,
  );
}
