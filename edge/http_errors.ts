/**
 * How the edge turns failures into HTTP answers: every {@linkcode TandemError} code has one
 * status, and the body is always `{ "error": { "code", "message" } }`. Anything else (a bug)
 * becomes a 500 `internal` with a generic message: no stack trace ever reaches a client.
 *
 * | code                                           | status |
 * | ---------------------------------------------- | ------ |
 * | bad_frame, bad_request, bad_argument, unsupported_version | 400 |
 * | unauthorized                                   | 401    |
 * | not_found, session_not_found                   | 404    |
 * | model_mismatch, conflict                       | 409    |
 * | too_large                                      | 413    |
 * | rate_limited                                   | 429    |
 * | bad_model, bad_tokenizer, internal             | 500    |
 * | unsupported                                    | 501    |
 * | network                                        | 502    |
 * | capacity                                       | 503    |
 *
 * @example
 * ```ts
 * import { errorResponse } from "./http_errors.ts";
 * import { TandemError } from "../runtime/errors.ts";
 * const res = errorResponse(new TandemError("session_not_found", "gone"));
 * console.log(res.status); // 404
 * ```
 *
 * @module
 */

import { type ErrorCode, TandemError } from "../runtime/errors.ts";

const STATUS: Record<ErrorCode, number> = {
  bad_frame: 400,
  bad_request: 400,
  bad_argument: 400,
  unsupported_version: 400,
  unauthorized: 401,
  not_found: 404,
  session_not_found: 404,
  model_mismatch: 409,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  bad_model: 500,
  bad_tokenizer: 500,
  internal: 500,
  unsupported: 501,
  network: 502,
  capacity: 503,
};

/**
 * The HTTP status of an error code (500 for a code this build does not know).
 *
 * @example
 * ```ts
 * import { statusOf } from "./http_errors.ts";
 * console.log(statusOf("model_mismatch")); // 409
 * ```
 */
export function statusOf(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

/**
 * The error as a {@linkcode TandemError}: itself, or `internal` with a generic message for
 * anything else (the original is passed to `log`, never to the client).
 *
 * @example
 * ```ts
 * import { asTandemError } from "./http_errors.ts";
 * console.log(asTandemError(new RangeError("x")).code); // "internal"
 * ```
 */
export function asTandemError(e: unknown, log: (e: unknown) => void = () => {}): TandemError {
  if (e instanceof TandemError) return e;
  log(e);
  return new TandemError("internal", "The edge failed to handle this request (internal error)");
}

/**
 * A JSON error response for any thrown value.
 *
 * @example
 * ```ts
 * import { errorResponse } from "./http_errors.ts";
 * const res = errorResponse(new Error("boom"));
 * console.log(res.status, await res.json()); // 500 { error: { code: "internal", ... } }
 * ```
 */
export function errorResponse(e: unknown, log?: (e: unknown) => void): Response {
  const err = asTandemError(e, log);
  const headers: Record<string, string> = { "content-type": "application/json" };
  const retry = err.details?.retryAfterSeconds;
  if (typeof retry === "number") headers["retry-after"] = String(Math.ceil(retry));
  return new Response(JSON.stringify(err.toJSON()), { status: statusOf(err.code), headers });
}
