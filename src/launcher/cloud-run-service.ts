/**
 * Reading the scheduler service (a Cloud Run service) through the Admin API v2: its URLs, the
 * audiences Cloud Run accepts for it, its identity and environment, whether Cloud Run's invoker
 * IAM check stands in front of it, and who may invoke it. `shardrun doctor` compares these with
 * what the service and Cloud Scheduler are configured to expect. Only reads.
 */
import { ServicesClient } from "@google-cloud/run";
import type { ClientOptions } from "google-gax";
import { z } from "zod";
import type { IamPolicy } from "../core/iam.js";
import { cloudRunError, DEFAULT_RETRY, grpcCode, GrpcCode, retryTransient } from "./cloud-run.js";

export interface ServiceRef {
  project: string;
  region: string;
  /** The service's name, e.g. "shardrun-scheduler". */
  name: string;
  /** Passed to the ServicesClient (tests point it at a fake). @default {} */
  clientOptions?: ClientOptions;
}

/** What shardrun reads of a deployed service. */
export interface ServiceInfo {
  /** projects/<p>/locations/<r>/services/<name> */
  resource: string;
  /** The main URL, e.g. "https://shardrun-scheduler-abc123-ew.a.run.app"; "" before the first revision is ready. */
  uri: string;
  /** Every URL of the service (the main one and the deterministic one). */
  urls: string[];
  /** Audiences Cloud Run accepts in ID tokens besides the URLs. */
  customAudiences: string[];
  /** The identity the service runs as; undefined: the default compute service account. */
  serviceAccount: string | undefined;
  /** Plain env of the first container (secret references left out). */
  env: Record<string, string>;
  /** True when the service was deployed with --no-invoker-iam-check. */
  invokerIamDisabled: boolean;
}

// gax decodes with defaults: unset strings as "", messages as null.
const Service = z.object({
  name: z.string().nullish(),
  uri: z.string().nullish(),
  urls: z.array(z.string()).nullish(),
  customAudiences: z.array(z.string()).nullish(),
  invokerIamDisabled: z.boolean().nullish(),
  template: z
    .object({
      serviceAccount: z.string().nullish(),
      containers: z.array(z.object({ env: z.array(z.object({ name: z.string().nullish(), value: z.string().nullish(), valueSource: z.unknown().nullish() })).nullish() })).nullish(),
    })
    .nullish(),
});

const Policy = z.object({
  bindings: z.array(z.object({ role: z.string().nullish(), members: z.array(z.string()).nullish(), condition: z.unknown().nullish() })).nullish(),
});

const resourceOf = (s: ServiceRef) => `projects/${s.project}/locations/${s.region}/services/${s.name}`;
const hints = (s: ServiceRef) => ({ [GrpcCode.PERMISSION_DENIED]: `reading the service needs roles/run.viewer on project ${s.project}` });

/** The service as deployed, or null when there is none of that name. */
export async function readService(ref: ServiceRef): Promise<ServiceInfo | null> {
  const client = new ServicesClient(ref.clientOptions ?? {});
  const name = resourceOf(ref);
  try {
    const [raw] = await retryTransient(DEFAULT_RETRY, () => client.getService({ name }));
    const s = Service.parse(raw);
    const env: Record<string, string> = {};
    for (const e of s.template?.containers?.[0]?.env ?? []) if (e.name && !e.valueSource) env[e.name] = e.value ?? "";
    return {
      resource: name,
      uri: s.uri ?? "",
      urls: s.urls ?? [],
      customAudiences: s.customAudiences ?? [],
      serviceAccount: s.template?.serviceAccount || undefined,
      env,
      invokerIamDisabled: s.invokerIamDisabled === true,
    };
  } catch (error) {
    if (grpcCode(error) === GrpcCode.NOT_FOUND) return null;
    throw cloudRunError(`could not read Cloud Run service ${name}`, error, hints(ref));
  } finally {
    await client.close();
  }
}

/** Who holds which role on the service (roles/run.invoker lets a caller through the invoker check). */
export async function serviceIamPolicy(ref: ServiceRef): Promise<IamPolicy> {
  const client = new ServicesClient(ref.clientOptions ?? {});
  const resource = resourceOf(ref);
  try {
    const [raw] = await retryTransient(DEFAULT_RETRY, () => client.getIamPolicy({ resource, options: { requestedPolicyVersion: 3 } }));
    const p = Policy.parse(raw);
    return { bindings: (p.bindings ?? []).map((b) => ({ role: b.role ?? "", members: b.members ?? [], ...(b.condition ? { conditional: true } : {}) })) };
  } catch (error) {
    throw cloudRunError(`could not read the IAM policy of Cloud Run service ${resource}`, error, hints(ref));
  } finally {
    await client.close();
  }
}
