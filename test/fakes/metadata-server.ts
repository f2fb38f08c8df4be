/**
 * A fake of the metadata server a Google Cloud runtime (Cloud Run, Compute Engine) answers
 * credentials from, for Application Default Credentials in tests: point GCE_METADATA_HOST at
 * it and google-auth-library's ADC finds "the metadata server", as on Cloud Run.
 *
 * As the real server, it answers only requests that carry `Metadata-Flavor: Google` (403
 * otherwise), marks every answer with that header (the client refuses an answer without it),
 * refuses requests that came through a proxy (X-Forwarded-For), and knows only the paths below:
 * - /computeMetadata/v1/instance                                     (ADC's probe)
 * - /computeMetadata/v1/instance/service-accounts/default/email
 * - /computeMetadata/v1/instance/service-accounts/default/token     ({access_token, expires_in, token_type})
 * - /computeMetadata/v1/project/project-id
 * - /computeMetadata/v1/universe/universe-domain
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface MetadataServerOptions {
  /** The runtime's service account. */
  email: string;
  /** @default "fake-project" */
  project?: string;
}

export class FakeMetadataServer {
  /** host:port, for GCE_METADATA_HOST. */
  readonly host: string;
  /** Access tokens handed out, in order. */
  readonly tokens: string[] = [];
  readonly #server: http.Server;

  private constructor(server: http.Server) {
    this.#server = server;
    this.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  static async start(options: MetadataServerOptions): Promise<FakeMetadataServer> {
    const project = options.project ?? "fake-project";
    let fake: FakeMetadataServer | undefined;
    const server = http.createServer((req, res) => {
      const send = (status: number, body: string, type = "application/text") => res.writeHead(status, { "Metadata-Flavor": "Google", "Content-Type": type }).end(body);
      if (req.headers["metadata-flavor"] !== "Google") return send(403, "Missing Metadata-Flavor:Google header.");
      if (req.headers["x-forwarded-for"]) return send(403, "Request had a X-Forwarded-For header and was rejected.");
      const path = new URL(req.url ?? "/", "http://metadata").pathname.replace(/\/+$/, "");
      switch (path) {
        case "/computeMetadata/v1/instance":
          return send(200, "attributes/\nhostname\nid\nservice-accounts/\nzone\n");
        case "/computeMetadata/v1/instance/service-accounts/default/email":
          return send(200, options.email);
        case "/computeMetadata/v1/instance/service-accounts/default/token": {
          const token = `ya29.fake-${randomBytes(12).toString("hex")}`;
          fake?.tokens.push(token);
          return send(200, JSON.stringify({ access_token: token, expires_in: 3599, token_type: "Bearer" }), "application/json");
        }
        case "/computeMetadata/v1/project/project-id":
          return send(200, project);
        case "/computeMetadata/v1/universe/universe-domain":
          return send(200, "googleapis.com");
        default:
          return send(404, "Not Found");
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    fake = new FakeMetadataServer(server);
    return fake;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}
