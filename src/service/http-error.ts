/**
 * Errors as data: an `HttpError` carries the status and the `{error: {code, message, field}}`
 * body the client gets. Its own file, because auth, the body reader, every route and the app's
 * error handler all throw or answer with it.
 */

/** The error body of every 4xx/5xx answer. `field` names the input at fault, when one is. */
export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

/** An error to answer with as it is: never a stack, never internal details. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, options: { field?: string; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.field = options.field;
    this.headers = options.headers ?? {};
  }

  body(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.field !== undefined ? { field: this.field } : {}) } };
  }
}

/** The client went away before its request was read: nobody is left to answer. */
export class ClientClosedRequest extends Error {
  constructor(options?: { cause?: unknown }) {
    super("the client closed the connection before its request was read", options);
    this.name = "ClientClosedRequest";
  }
}
