/**
 * Cloud Run services in the Cloud Run fake (test/fakes/cloud-run-fake.ts serves these on its
 * gRPC server, beside Jobs and Executions): Services.GetService and Services.GetIamPolicy, as
 * the real @google-cloud/run ServicesClient reads them. A test puts a service the way
 * `gcloud run services replace` would, and changes it the way `gcloud run services update` and
 * `add-iam-policy-binding` would.
 *
 * As Cloud Run does, it gives each service a URL of its own (`https://<name>-<hash>-<region
 * code>.a.run.app`) and a deterministic one (`https://<name>-<project number>.<region>.run.app`),
 * both output only, and answers NOT_FOUND for a service or a policy of a service that does not
 * exist. Policies are read at version 1 unless a higher one is asked for (conditional bindings
 * need version 3).
 */
import { createHash } from "node:crypto";
import { grpc } from "google-gax";
import { StatusError, type Plain } from "./grpc-service.js";

export interface FakeServiceSettings {
  /** The identity the service runs as. @default the default compute service account (none set) */
  serviceAccount?: string;
  /** Plain env of its container. @default {} */
  env?: Record<string, string>;
  /** Deployed with --no-invoker-iam-check. @default false */
  invokerIamDisabled?: boolean;
  /** @default [] */
  customAudiences?: string[];
  /** @default "fake.example/shardrun:latest" */
  image?: string;
}

interface StoredService {
  settings: Required<Omit<FakeServiceSettings, "serviceAccount">> & { serviceAccount?: string };
  bindings: { role: string; members: string[]; condition?: Plain }[];
  generation: number;
}

/** Cloud Run's short region codes in service URLs (a few; others get "uc"). */
const REGION_CODES: Record<string, string> = { "europe-west1": "ew", "us-central1": "uc", "us-east1": "ue", "asia-northeast1": "an" };

export class FakeServices {
  readonly #services = new Map<string, StoredService>();
  readonly #project: string;
  readonly #region: string;

  constructor(project: string, region: string) {
    this.#project = project;
    this.#region = region;
  }

  resource(id: string): string {
    return `projects/${this.#project}/locations/${this.#region}/services/${id}`;
  }

  /** The service's main URL. */
  uri(id: string): string {
    const hash = createHash("sha256").update(`${this.#project}/${id}`).digest("hex").slice(0, 10);
    return `https://${id}-${hash}-${REGION_CODES[this.#region] ?? "uc"}.a.run.app`;
  }

  /** Creates or replaces a service (`gcloud run services replace`); its IAM policy is kept. */
  put(id: string, settings: FakeServiceSettings = {}): void {
    const previous = this.#services.get(id);
    this.#services.set(id, {
      settings: {
        env: settings.env ?? {},
        invokerIamDisabled: settings.invokerIamDisabled ?? false,
        customAudiences: settings.customAudiences ?? [],
        image: settings.image ?? "fake.example/shardrun:latest",
        ...(settings.serviceAccount ? { serviceAccount: settings.serviceAccount } : {}),
      },
      bindings: previous?.bindings ?? [],
      generation: (previous?.generation ?? 0) + 1,
    });
  }

  /** `gcloud run services update <id> --update-env-vars K=V,…` */
  updateEnv(id: string, env: Record<string, string>): void {
    const s = this.#get(id);
    s.settings.env = { ...s.settings.env, ...env };
    s.generation++;
  }

  /** `gcloud run services update <id> --[no-]invoker-iam-check` */
  setInvokerIamCheck(id: string, on: boolean): void {
    const s = this.#get(id);
    s.settings.invokerIamDisabled = !on;
    s.generation++;
  }

  /** `gcloud run services add-iam-policy-binding <id> --member <member> --role <role>` */
  addIamBinding(id: string, role: string, member: string): void {
    const s = this.#get(id);
    const b = s.bindings.find((x) => x.role === role && !x.condition);
    if (b) {
      if (!b.members.includes(member)) b.members.push(member);
    } else s.bindings.push({ role, members: [member] });
  }

  /** `gcloud run services remove-iam-policy-binding <id> --member <member> --role <role>` */
  removeIamBinding(id: string, role: string, member: string): void {
    const s = this.#get(id);
    for (const b of s.bindings) if (b.role === role) b.members = b.members.filter((m) => m !== member);
    s.bindings = s.bindings.filter((b) => b.members.length);
  }

  /** The gRPC handlers, by method name, for the fake's server. */
  handlers(): Record<"GetService" | "GetIamPolicy", (req: Plain) => Promise<Plain>> {
    return {
      GetService: async (req) => this.#resource(this.#idOf(req.name)),
      GetIamPolicy: async (req) => {
        const s = this.#get(this.#idOf(req.resource));
        const version = Number(req.options?.requestedPolicyVersion ?? 0);
        if (version < 3 && s.bindings.some((b) => b.condition)) {
          throw new StatusError(grpc.status.INVALID_ARGUMENT, "the policy has conditional bindings: request policy version 3");
        }
        return { version: s.bindings.some((b) => b.condition) ? 3 : 1, bindings: structuredClone(s.bindings), etag: Buffer.from(`BwX${s.generation}`).toString("base64") };
      },
    };
  }

  #idOf(name: unknown): string {
    const prefix = `projects/${this.#project}/locations/${this.#region}/services/`;
    const n = String(name ?? "");
    if (!n.startsWith(prefix)) throw new StatusError(grpc.status.NOT_FOUND, `Resource '${n}' was not found`);
    return n.slice(prefix.length);
  }

  #get(id: string): StoredService {
    const s = this.#services.get(id);
    if (!s) throw new StatusError(grpc.status.NOT_FOUND, `Resource '${this.resource(id)}' was not found`);
    return s;
  }

  #resource(id: string): Plain {
    const s = this.#get(id);
    const uri = this.uri(id);
    return {
      name: this.resource(id),
      uid: createHash("sha256").update(id).digest("hex").slice(0, 32),
      generation: String(s.generation),
      template: {
        ...(s.settings.serviceAccount ? { serviceAccount: s.settings.serviceAccount } : {}),
        containers: [{ image: s.settings.image, env: Object.entries(s.settings.env).map(([name, value]) => ({ name, value })) }],
      },
      invokerIamDisabled: s.settings.invokerIamDisabled,
      customAudiences: s.settings.customAudiences,
      uri,
      urls: [uri, `https://${id}-123456789012.${this.#region}.run.app`],
      observedGeneration: String(s.generation),
      terminalCondition: { type: "Ready", state: "CONDITION_SUCCEEDED" },
    };
  }
}
