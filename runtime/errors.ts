/**
 * The one error class of tandem's contract.
 *
 * Every failure a caller can act on is a {@linkcode TandemError} with a stable
 * {@linkcode ErrorCode}. The edge maps the code to an HTTP status and a JSON body
 * `{ "error": { "code", "message" } }`; the CLI prints the message without a stack.
 *
 * @module
 */

/** Stable machine-readable error codes. New codes may be added; existing ones never change. */
export type ErrorCode =
  /** A model file is missing, truncated, or inconsistent with its header/config. */
  | "bad_model"
  /** A tokenizer file is missing or malformed. */
  | "bad_tokenizer"
  /** A caller passed an invalid argument (bad flag, out-of-range layer, bad option). */
  | "bad_argument"
  /** A wire frame could not be decoded. */
  | "bad_frame"
  /** A request body could not be parsed or failed validation. */
  | "bad_request"
  /** A format version that this build cannot read (different major version). */
  | "unsupported_version"
  /** Two halves of different models (weights digests differ). */
  | "model_mismatch"
  /** The edge does not know this session (expired, evicted, restarted, or never existed). */
  | "session_not_found"
  /** A resource (model, route, file) does not exist. */
  | "not_found"
  /** Missing or wrong credentials. */
  | "unauthorized"
  /** Too many requests; retry later. */
  | "rate_limited"
  /** A body, frame or request exceeds a configured limit. */
  | "too_large"
  /** A configured capacity (sessions, memory) is exhausted. */
  | "capacity"
  /** Out-of-order or replayed sequence number. */
  | "conflict"
  /** A network request failed or timed out. */
  | "network"
  /** The feature is not available on this host. */
  | "unsupported"
  /** A bug: something that should not happen. */
  | "internal";

/**
 * An error with a stable code and a message a user can act on.
 *
 * @example
 * ```ts
 * import { TandemError } from "./errors.ts";
 * try {
 *   throw new TandemError("bad_model", "Cannot load model.bin: file is 12 bytes, header needs 28");
 * } catch (e) {
 *   if (e instanceof TandemError) console.log(e.code); // "bad_model"
 * }
 * ```
 */
export class TandemError extends Error {
  /** The stable error code. */
  readonly code: ErrorCode;
  /** Extra machine-readable facts (never secrets). */
  readonly details?: Record<string, unknown>;

  /** Creates an error with a code, a message and optional details. */
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = "TandemError";
    this.code = code;
    this.details = details;
  }

  /** The JSON body the edge sends for this error. */
  toJSON(): { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details ? { details: this.details } : {}),
      },
    };
  }
}

/**
 * Throws a {@linkcode TandemError} when `condition` is false.
 *
 * @example
 * ```ts
 * import { check } from "./errors.ts";
 * check(1 + 1 === 2, "bad_argument", "arithmetic is broken");
 * ```
 */
export function check(
  condition: unknown,
  code: ErrorCode,
  message: string | (() => string),
): asserts condition {
  if (!condition) {
    throw new TandemError(code, typeof message === "function" ? message() : message);
  }
}
