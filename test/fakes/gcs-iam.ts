/**
 * Bucket IAM for the Cloud Storage throttle (test/fakes/gcs-throttle.ts), which answers it in
 * front of fake-gcs-server (which has none): `GET /storage/v1/b/{bucket}/iam` (the policy) and
 * `GET /storage/v1/b/{bucket}/iam/testPermissions?permissions=…` (which of those permissions the
 * caller holds, from the bindings and the roles' permissions below).
 *
 * Requests to an emulator carry no credentials, so the caller is configured: the identity the
 * test's Application Default Credentials are. As Cloud Storage does, both answer 404 for a
 * bucket that does not exist, testPermissions leaves `permissions` out when none is held, a
 * policy with conditional bindings is given only at version 3, and only permissions of the
 * bucket's own kind (storage.*) can be tested. Not modelled: roles granted on the project (Cloud
 * Storage counts those too; tests grant on the bucket), and who may read a bucket's policy.
 */

/** The object permissions of the predefined roles a test grants (Cloud Storage's IAM roles page). */
const ROLE_PERMISSIONS: Record<string, readonly string[]> = {
  "roles/storage.objectViewer": ["storage.objects.get", "storage.objects.list"],
  "roles/storage.objectCreator": ["storage.objects.create"],
  "roles/storage.objectUser": ["storage.objects.create", "storage.objects.delete", "storage.objects.get", "storage.objects.list", "storage.objects.restore", "storage.objects.update"],
  "roles/storage.objectAdmin": [
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.getIamPolicy",
    "storage.objects.list",
    "storage.objects.restore",
    "storage.objects.setIamPolicy",
    "storage.objects.update",
  ],
};

type Binding = { role: string; members: string[]; condition?: { title: string; expression: string } };

export class FakeBucketIam {
  /** The member whose permissions testPermissions answers for, e.g. "serviceAccount:deployer@p.iam.gserviceaccount.com". */
  caller: string;
  readonly #policies = new Map<string, Binding[]>();

  constructor(caller: string) {
    this.caller = caller;
  }

  /** `gcloud storage buckets add-iam-policy-binding gs://<bucket> --member <member> --role <role>` */
  addBinding(bucket: string, role: string, member: string): void {
    const bindings = this.#policies.get(bucket) ?? [];
    const b = bindings.find((x) => x.role === role && !x.condition);
    if (b) {
      if (!b.members.includes(member)) b.members.push(member);
    } else bindings.push({ role, members: [member] });
    this.#policies.set(bucket, bindings);
  }

  /** `gcloud storage buckets remove-iam-policy-binding gs://<bucket> --member <member> --role <role>` */
  removeBinding(bucket: string, role: string, member: string): void {
    const bindings = (this.#policies.get(bucket) ?? []).map((b) => (b.role === role ? { ...b, members: b.members.filter((m) => m !== member) } : b));
    this.#policies.set(bucket, bindings.filter((b) => b.members.length));
  }

  /**
   * The answer to a bucket IAM request (`/iam` or `/iam/testPermissions` under the bucket) for a
   * bucket that exists; the throttle answers 404 itself for one that does not.
   */
  answer(method: string, bucket: string, sub: string, query: URLSearchParams): { status: number; body: unknown } {
    if (method !== "GET") return { status: 501, body: { error: { code: 501, message: `the fake answers only GET on bucket IAM, not ${method}` } } };
    const bindings = this.#policies.get(bucket) ?? [];
    if (sub === "/testPermissions") {
      const asked = query.getAll("permissions");
      const bad = asked.find((p) => !/^storage\.[a-zA-Z]+\.[a-zA-Z]+$/.test(p));
      if (!asked.length || bad !== undefined) return { status: 400, body: { error: { code: 400, message: `Invalid permission: ${bad ?? "(none given)"}` } } };
      const held = new Set(bindings.filter((b) => !b.condition && b.members.includes(this.caller)).flatMap((b) => ROLE_PERMISSIONS[b.role] ?? []));
      const permissions = asked.filter((p) => held.has(p));
      return { status: 200, body: { kind: "storage#testIamPermissionsResponse", ...(permissions.length ? { permissions } : {}) } };
    }
    const version = Number(query.get("optionsRequestedPolicyVersion") ?? 1);
    const conditional = bindings.some((b) => b.condition);
    if (conditional && version < 3) return { status: 400, body: { error: { code: 400, message: "The policy has conditional role bindings: request policy version 3." } } };
    return { status: 200, body: { kind: "storage#policy", resourceId: `projects/_/buckets/${bucket}`, version: conditional ? 3 : 1, etag: "CAE=", bindings: structuredClone(bindings) } };
  }
}
