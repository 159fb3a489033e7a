/**
 * Per-principal rate limiting with token buckets: each principal (API key, or `anonymous` on
 * an open edge) holds up to `burst` tokens, refilled at `perSecond`; a request takes one. An
 * empty bucket answers `rate_limited` (HTTP 429) with the seconds until a token is back in
 * `details.retryAfterSeconds` (the edge sends it as `Retry-After`).
 *
 * Buckets exist only for authenticated principals, so their number is bounded by the number
 * of configured keys (an unauthenticated flood is refused before it reaches a bucket). No
 * timers: a bucket is refilled lazily when it is next used.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "./rate_limit.ts";
 * let now = 0;
 * const limiter = new RateLimiter({ perSecond: 1, burst: 2 }, () => now);
 * limiter.take("key0");
 * limiter.take("key0");
 * try { limiter.take("key0"); } catch (e) { console.log((e as Error).message); } // … retry in 1 s
 * now = 1000;
 * limiter.take("key0"); // refilled
 * ```
 *
 * @module
 */

import { TandemError } from "../runtime/errors.ts";

/** Settings of a {@linkcode RateLimiter}; `perSecond` 0 or Infinity turns it off. */
export interface RateLimit {
  /** Sustained requests per second per principal. */
  perSecond: number;
  /** Requests a principal may make at once after being idle. */
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Token buckets by principal. */
export class RateLimiter {
  /** The settings in force. */
  readonly limit: RateLimit;
  /** Requests refused so far. */
  refused = 0;
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;

  /** Creates a limiter; `now` (default `Date.now`) is its clock in milliseconds. */
  constructor(limit: RateLimit, now: () => number = Date.now) {
    if (!(limit.perSecond >= 0) || !(limit.burst >= 1)) {
      throw new TandemError(
        "bad_argument",
        `Cannot rate-limit: perSecond must be ≥ 0 and burst ≥ 1, got ${limit.perSecond} and ${limit.burst}`,
      );
    }
    this.limit = limit;
    this.#now = now;
  }

  /** Whether the limiter refuses anything at all. */
  get enabled(): boolean {
    return this.limit.perSecond > 0 && Number.isFinite(this.limit.perSecond);
  }

  /**
   * Takes one token from `principal`'s bucket; throws `rate_limited` with
   * `details.retryAfterSeconds` when it is empty.
   *
   * @example
   * ```ts
   * import { RateLimiter } from "./rate_limit.ts";
   * new RateLimiter({ perSecond: 10, burst: 20 }).take("key0");
   * ```
   */
  take(principal: string): void {
    if (!this.enabled) return;
    const { perSecond, burst } = this.limit;
    const now = this.#now();
    const b = this.#buckets.get(principal) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + Math.max(0, now - b.at) * perSecond / 1000);
    b.at = now;
    this.#buckets.set(principal, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return;
    }
    this.refused++;
    const wait = Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
    throw new TandemError(
      "rate_limited",
      `Cannot serve the request: this key is over its rate of ${perSecond} requests/s (burst ${burst}); retry in ${wait} s`,
      { retryAfterSeconds: wait },
    );
  }
}
