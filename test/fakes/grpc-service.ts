/** A gRPC service definition built from a client library's own protos, for the fakes. */
import { grpc, protobuf } from "google-gax";

// Messages travel as plain objects converted by protobufjs; their shapes are the protos'.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Plain = Record<string, any>;

export function protoServiceDefinition(
  root: protobuf.Root,
  service: string,
  methods: readonly string[],
  toObject: protobuf.IConversionOptions,
): grpc.ServiceDefinition {
  const s = root.lookupService(service);
  const def: Record<string, grpc.MethodDefinition<Plain, Plain>> = {};
  for (const name of methods) {
    const m = s.methods[name]!;
    const req = m.resolvedRequestType!;
    const res = m.resolvedResponseType!;
    def[name] = {
      path: `/${service}/${name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (v: Plain) => Buffer.from(req.encode(req.fromObject(v)).finish()),
      requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), toObject),
      responseSerialize: (v: Plain) => Buffer.from(res.encode(res.fromObject(v)).finish()),
      responseDeserialize: (b: Buffer) => res.toObject(res.decode(b), toObject),
    };
  }
  return def;
}

/** Stops a fake's server: gracefully, or by force after a second (a client may hold a stream). */
export function shutdownServer(server: grpc.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 1000);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

/** A gRPC status a fake answers with (code and message, as the service would send them). */
export class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}
