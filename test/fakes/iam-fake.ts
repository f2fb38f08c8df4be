/**
 * A fake of the two REST methods `shardrun doctor` reads IAM policies with, for
 * SHARDRUN_RESOURCE_MANAGER_ENDPOINT and SHARDRUN_IAM_ENDPOINT (one server serves both):
 * - Resource Manager v1 `POST /v1/projects/{project}:getIamPolicy` (body `{options:
 *   {requestedPolicyVersion}}`): the project's policy;
 * - IAM v1 `POST /v1/projects/{project}/serviceAccounts/{email}:getIamPolicy`: who may act as
 *   a service account.
 *
 * It refuses what the APIs refuse: another method than POST (404, as for any unknown route), a
 * body that is not JSON (400), a project it does not hold (403: Resource Manager answers 403,
 * not 404, for a project the caller cannot see), a service account that does not exist (404),
 * and a policy with conditional bindings asked for below version 3 (400). Tests change the
 * policies as the gcloud commands shardrun doctor prints would.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

type Binding = { role: string; members: string[]; condition?: { title: string; expression: string } };

function add(bindings: Binding[], role: string, member: string): void {
  const b = bindings.find((x) => x.role === role && !x.condition);
  if (b) {
    if (!b.members.includes(member)) b.members.push(member);
  } else bindings.push({ role, members: [member] });
}

function remove(bindings: Binding[], role: string, member: string): Binding[] {
  for (const b of bindings) if (b.role === role) b.members = b.members.filter((m) => m !== member);
  return bindings.filter((b) => b.members.length);
}

const error = (code: number, status: string, message: string) => JSON.stringify({ error: { code, message, status } });

export class FakeIam {
  /** http://host:port, for both endpoint variables. */
  readonly url: string;
  readonly project: string;
  /** Every request, as method and path. */
  readonly requests: string[] = [];
  #projectBindings: Binding[] = [];
  readonly #accounts = new Map<string, Binding[]>();
  readonly #server: http.Server;

  private constructor(server: http.Server, project: string) {
    this.#server = server;
    this.project = project;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  static async start(project = "fake-project"): Promise<FakeIam> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const fake = new FakeIam(server, project);
    // A client that hangs up mid-body just ends its request.
    server.on("request", (req, res) => void fake.#handle(req, res).catch(() => res.destroy()));
    return fake;
  }

  /** `gcloud projects add-iam-policy-binding <project> --member <member> --role <role> --condition=None` */
  addProjectBinding(role: string, member: string): void {
    add(this.#projectBindings, role, member);
  }

  /** `gcloud projects remove-iam-policy-binding <project> --member <member> --role <role>` */
  removeProjectBinding(role: string, member: string): void {
    this.#projectBindings = remove(this.#projectBindings, role, member);
  }

  /** A binding that holds only under a condition (as `--condition=expression=…` makes). */
  addConditionalProjectBinding(role: string, member: string): void {
    this.#projectBindings.push({ role, members: [member], condition: { title: "until", expression: 'request.time < timestamp("2030-01-01T00:00:00Z")' } });
  }

  /** `gcloud iam service-accounts create <name>` */
  createServiceAccount(email: string): void {
    if (!this.#accounts.has(email)) this.#accounts.set(email, []);
  }

  /** `gcloud iam service-accounts add-iam-policy-binding <email> --member <member> --role <role>` */
  addServiceAccountBinding(email: string, role: string, member: string): void {
    const bindings = this.#accounts.get(email);
    if (!bindings) throw new Error(`no service account ${email}`);
    add(bindings, role, member);
  }

  removeServiceAccountBinding(email: string, role: string, member: string): void {
    const bindings = this.#accounts.get(email);
    if (bindings) this.#accounts.set(email, remove(bindings, role, member));
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? "/", "http://iam");
    this.requests.push(`${req.method} ${url.pathname}`);
    const send = (status: number, body: string): void => void res.writeHead(status, { "content-type": "application/json; charset=UTF-8" }).end(body);
    const project = /^\/v1\/projects\/([^/:]+):getIamPolicy$/.exec(url.pathname);
    const account = /^\/v1\/projects\/([^/:]+)\/serviceAccounts\/([^/:]+):getIamPolicy$/.exec(url.pathname);
    if (req.method !== "POST" || (!project && !account)) return send(404, error(404, "NOT_FOUND", `no route ${req.method} ${url.pathname}`));
    let body: { options?: { requestedPolicyVersion?: number } } = {};
    try {
      body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString("utf8")) as typeof body) : {};
    } catch {
      return send(400, error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."));
    }
    const version = Number(body.options?.requestedPolicyVersion ?? url.searchParams.get("options.requestedPolicyVersion") ?? 1);
    const projectId = decodeURIComponent((project ?? account)![1]!);
    if (projectId !== this.project && projectId !== "-") return send(403, error(403, "PERMISSION_DENIED", `The caller does not have permission on project ${projectId}`));
    let bindings: Binding[];
    if (project) bindings = this.#projectBindings;
    else {
      const found = this.#accounts.get(decodeURIComponent(account![2]!));
      if (!found) return send(404, error(404, "NOT_FOUND", `Unknown service account ${decodeURIComponent(account![2]!)}`));
      bindings = found;
    }
    const conditional = bindings.some((b) => b.condition);
    if (conditional && version < 3) return send(400, error(400, "INVALID_ARGUMENT", "The policy has conditional role bindings: request policy version 3."));
    send(200, JSON.stringify({ version: conditional ? 3 : 1, etag: "BwXfake=", bindings: structuredClone(bindings) }));
  }
}
