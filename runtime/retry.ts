/**
 * Retrying a request that got no answer: `network` errors (refused, reset, timed out, a 5xx
 * without an edge error body) and `rate_limited` answers are retried up to `retries` times,
 * waiting `baseDelayMs × 2^attempt` — or, for a 429, the seconds the edge's Retry-After
 * said. Anything else is thrown at once. Safe for frames because the edge answers a frame
 * re-sent with the same sequence number from its stored answer, without running it again.
 *
 * @example
 * ```ts
 * import { withRetries } from "./retry.ts";
 * const res = await withRetries(() => fetch("http://127.0.0.1:8787/healthz"), {
 *   retries: 3,
 *   baseDelayMs: 50,
 * });
 * ```
 *
 * @module
 */

import { TandemError } from "./errors.ts";

/** How to retry. */
export interface RetryOptions {
  /** Retries after the first attempt. */
  retries: number;
  /** First delay in milliseconds, doubled at each retry. */
  baseDelayMs: number;
  /** Longest single wait in milliseconds (default 10000). */
  maxDelayMs?: number;
}

/**
 * Whether an error is worth retrying: `network` or `rate_limited`.
 *
 * @example
 * ```ts
 * import { retryable } from "./retry.ts";
 * import { TandemError } from "./errors.ts";
 * console.log(retryable(new TandemError("network", "reset"))); // true
 * ```
 */
export function retryable(e: unknown): e is TandemError {
  return e instanceof TandemError && (e.code === "network" || e.code === "rate_limited");
}

/**
 * Runs `attempt` (given its index), retrying {@linkcode retryable} failures with backoff.
 *
 * @example
 * ```ts
 * import { withRetries } from "./retry.ts";
 * const n = await withRetries(async (i) => i, { retries: 2, baseDelayMs: 10 });
 * console.log(n); // 0
 * ```
 */
export async function withRetries<T>(
  attempt: (index: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const maxDelay = options.maxDelayMs ?? 10_000;
  for (let i = 0;; i++) {
    try {
      return await attempt(i);
    } catch (e) {
      if (!retryable(e) || i >= options.retries) throw e;
      const told = e.details?.retryAfterSeconds;
      const wait = typeof told === "number" ? told * 1000 : options.baseDelayMs * 2 ** i;
      await new Promise((r) => setTimeout(r, Math.min(maxDelay, wait)));
    }
  }
}
