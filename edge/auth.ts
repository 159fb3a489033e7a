/**
 * API keys for the edge: bearer tokens checked in constant time, each naming the principal
 * that owns the sessions it opens.
 *
 * Keys come from configuration (`createEdgeApp({ apiKeys })`; the host adapters read the
 * environment variable `TANDEM_API_KEYS`, parsed by {@linkcode parseApiKeys}). The keyring
 * keeps only SHA-256 digests of the keys: a presented token is hashed and compared with every
 * digest by XOR-accumulation, so neither the time taken nor the answer's text says how much
 * of a key matched, or which key came close. Keys never appear in messages or logs; a
 * principal is named by its position in the list (`key0`, `key1`, …).
 *
 * With no keys the keyring is open: every request is the principal `anonymous` (loopback
 * development; the host adapters say so when they start).
 *
 * @example
 * ```ts
 * import { createKeyring } from "./auth.ts";
 * const ring = await createKeyring(["a-long-random-secret-0001"]);
 * console.log(await ring.identify("Bearer a-long-random-secret-0001")); // "key0"
 * ```
 *
 * @module
 */

import { TandemError } from "../runtime/errors.ts";

/** Shortest key accepted: a key must not be guessable. */
export const MIN_KEY_LENGTH = 16;
/** Longest bearer token read (anything longer is refused without hashing). */
export const MAX_TOKEN_LENGTH = 4096;
/** The principal of every request on an open edge (no keys configured). */
export const ANONYMOUS = "anonymous";

/** Checks bearer tokens against the configured keys. */
export interface Keyring {
  /** True when no keys are configured: every request is {@linkcode ANONYMOUS}. */
  readonly open: boolean;
  /** Number of keys configured. */
  readonly size: number;
  /**
   * The principal (`key<i>`) of an `Authorization` header value; throws `unauthorized` when
   * the header is missing, malformed or holds no configured key.
   */
  identify(authorization: string | null | undefined): Promise<string>;
}

/**
 * Splits a key list as written in `TANDEM_API_KEYS`: keys separated by commas, whitespace or
 * newlines; empty entries ignored. Throws `bad_argument` for a key shorter than
 * {@linkcode MIN_KEY_LENGTH} or a duplicate (naming its position, never the key).
 *
 * @example
 * ```ts
 * import { parseApiKeys } from "./auth.ts";
 * console.log(parseApiKeys("k-0123456789abcdef, k-fedcba9876543210").length); // 2
 * console.log(parseApiKeys(undefined)); // []
 * ```
 */
export function parseApiKeys(text: string | undefined): string[] {
  const keys = (text ?? "").split(/[\s,]+/).filter((k) => k !== "");
  checkKeys(keys);
  return keys;
}

function checkKeys(keys: readonly string[]): void {
  const seen = new Set<string>();
  keys.forEach((k, i) => {
    if (typeof k !== "string" || k.length < MIN_KEY_LENGTH || k.length > MAX_TOKEN_LENGTH) {
      throw new TandemError(
        "bad_argument",
        `Cannot use API key #${i}: keys must be ${MIN_KEY_LENGTH}..${MAX_TOKEN_LENGTH} characters`,
      );
    }
    if (/[\s,]/.test(k)) {
      throw new TandemError("bad_argument", `Cannot use API key #${i}: it holds a space or comma`);
    }
    if (seen.has(k)) throw new TandemError("bad_argument", `API key #${i} is a duplicate`);
    seen.add(k);
  });
}

async function sha256(text: string): Promise<Uint8Array> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return new Uint8Array(digest);
}

/**
 * Whether two byte strings are equal, in time that depends only on their lengths.
 *
 * @example
 * ```ts
 * import { timingSafeEqual } from "./auth.ts";
 * console.log(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2]))); // true
 * ```
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

function unauthorized(why: string): TandemError {
  return new TandemError("unauthorized", `Cannot authorize the request: ${why}`);
}

/**
 * A keyring over `keys` (validated as {@linkcode parseApiKeys} does). Empty = open.
 *
 * @example
 * ```ts
 * import { createKeyring } from "./auth.ts";
 * const open = await createKeyring([]);
 * console.log(open.open, await open.identify(null)); // true "anonymous"
 * ```
 */
export async function createKeyring(keys: readonly string[]): Promise<Keyring> {
  checkKeys(keys);
  const digests = await Promise.all(keys.map(sha256));
  return {
    open: keys.length === 0,
    size: keys.length,
    async identify(authorization: string | null | undefined): Promise<string> {
      if (digests.length === 0) return ANONYMOUS;
      if (!authorization) {
        throw unauthorized("this edge needs an API key: send `Authorization: Bearer <key>`");
      }
      const m = /^Bearer +(\S+) *$/i.exec(authorization);
      if (!m || m[1].length > MAX_TOKEN_LENGTH) {
        throw unauthorized("the Authorization header is not `Bearer <key>`");
      }
      const presented = await sha256(m[1]);
      let found = -1;
      for (let i = 0; i < digests.length; i++) {
        // No early exit: every key is compared whatever matched before.
        const hit = timingSafeEqual(presented, digests[i]);
        found = hit && found < 0 ? i : found;
      }
      if (found < 0) throw unauthorized("the API key is not valid for this edge");
      return `key${found}`;
    },
  };
}
