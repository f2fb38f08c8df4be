/** Cloud Logging's trace fields for a request, so that its log lines group under its trace. */

type Headers = Record<string, string | string[] | undefined>;

/**
 * `logging.googleapis.com/trace` (and `…/spanId`) from `X-Cloud-Trace-Context: TRACE/SPAN;o=1`,
 * which Cloud Run's front end adds, or W3C `traceparent`. Empty without a project, since the
 * field names the project's trace.
 */
export function traceFields(headers: Headers, project: string | undefined): Record<string, string> {
  const legacy = /^([0-9a-f]{32})(?:\/(\d+))?/i.exec(String(headers["x-cloud-trace-context"] ?? ""));
  const w3c = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-/i.exec(String(headers.traceparent ?? ""));
  const trace = legacy?.[1] ?? w3c?.[1];
  if (!trace || !project) return {};
  const span = legacy?.[2] ?? (w3c?.[2] ? BigInt(`0x${w3c[2]}`).toString() : undefined);
  return { "logging.googleapis.com/trace": `projects/${project}/traces/${trace}`, ...(span ? { "logging.googleapis.com/spanId": span } : {}) };
}
