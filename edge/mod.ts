/**
 * The tandem edge: a Hono app that runs layers [K, L) and the head of split sessions
 * (keeping each session's KV cache) and answers OpenAI-style chat completions with the whole
 * model. It touches no host API: serve {@linkcode EdgeApp.fetch} with `Deno.serve`, Node's
 * `@hono/node-server`, or export it from a Cloudflare worker. See `docs/wire.md` for what
 * crosses the wire.
 *
 * @example
 * ```ts
 * import { createEdgeApp, edgeSpecFromBytes, fetchBytes } from "./mod.ts";
 * const bytes = await fetchBytes("https://example.com/stories260K/edge.safetensors");
 * const edge = await createEdgeApp({ models: [await edgeSpecFromBytes(bytes)] });
 * Deno.serve({ port: 8787 }, edge.fetch);
 * ```
 *
 * @module
 */

export {
  createEdgeApp,
  type EdgeApp,
  type EdgeLimits,
  type EdgeOptions,
  type EdgeRouter,
} from "./app.ts";
export type { EdgeModel, EdgeModelSpec, EngineFactory } from "./models.ts";
export { specFromShard } from "./models.ts";
export { edgeSpecFromBytes, type EdgeSpecOptions, fetchBytes } from "./load_spec.ts";
export { statusOf } from "./http_errors.ts";
export type { SessionLimits, SessionStore } from "./sessions.ts";
export type { EdgeSession } from "./split_forward.ts";
export type { RateLimit, RateLimiter } from "./rate_limit.ts";
