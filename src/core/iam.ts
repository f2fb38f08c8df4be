/**
 * IAM policies as shardrun reads them, and which roles give the access shardrun's identities
 * need. Pure: the policies come from the adapters (project, bucket, service account, Cloud Run
 * service), and `shardrun doctor` decides with these functions.
 */

/** One binding of a role to members, e.g. `serviceAccount:shardrun-worker@p.iam.gserviceaccount.com`. */
export interface IamBinding {
  role: string;
  members: string[];
  /** The binding holds only under an IAM condition (a time window, a resource name): not relied on. */
  conditional?: boolean;
}

export interface IamPolicy {
  bindings: IamBinding[];
}

/**
 * What shardrun's identities need, and the predefined roles that grant it. A role is listed
 * only when it holds every permission the need stands for (Cloud Run and Cloud Storage role
 * references); basic roles (owner, editor) count only where granted on the project.
 */
export const NEEDS = {
  /** Objects of the bucket: get, list, create, delete (an overwrite needs delete too). */
  objects: { role: "roles/storage.objectUser", also: ["roles/storage.objectAdmin", "roles/storage.admin"], basic: true },
  /** Run a Cloud Run job with overrides (task count, timeout, env) and cancel executions. */
  runJobs: { role: "roles/run.developer", also: ["roles/run.admin"], basic: true },
  /** Deploy jobs that run as the worker identity (iam.serviceAccounts.actAs). */
  actAs: { role: "roles/iam.serviceAccountUser", also: [], basic: true },
  /** Call the scheduler service through Cloud Run's invoker IAM check (run.routes.invoke). */
  invoke: { role: "roles/run.invoker", also: ["roles/run.developer", "roles/run.admin"], basic: true },
} as const satisfies Record<string, { role: string; also: readonly string[]; basic: boolean }>;
export type Need = keyof typeof NEEDS;

const BASIC = ["roles/owner", "roles/editor"];

/**
 * What the gcs store does to objects: get (reads, metadata), list, create (puts) and delete
 * (deletes, and every overwrite: Cloud Storage needs storage.objects.delete to replace an
 * object). It never patches metadata, so storage.objects.update is not needed.
 */
export const STORE_PERMISSIONS = ["storage.objects.create", "storage.objects.delete", "storage.objects.get", "storage.objects.list"] as const;

/** The IAM member string of an email: service accounts by their domain, anyone else as a user. */
export function memberOf(email: string): string {
  return /\.gserviceaccount\.com$/i.test(email) ? `serviceAccount:${email}` : `user:${email}`;
}

/**
 * The role by which `email` has `need` in the policy, or null. `project` says whether the
 * policy is a project's, where basic roles count too. Conditional bindings do not count: their
 * condition may not hold when shardrun acts.
 */
export function grantingRole(policy: IamPolicy, email: string, need: Need, project = false): string | null {
  const n = NEEDS[need];
  const roles = new Set<string>([n.role, ...n.also, ...(project && n.basic ? BASIC : [])]);
  const member = memberOf(email).toLowerCase();
  for (const b of policy.bindings) {
    if (b.conditional || !roles.has(b.role)) continue;
    // allUsers and allAuthenticatedUsers take in every caller with a Google identity.
    if (b.members.some((m) => m.toLowerCase() === member || m === "allUsers" || m === "allAuthenticatedUsers")) return b.role;
  }
  return null;
}
