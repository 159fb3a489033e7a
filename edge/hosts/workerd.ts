/**
 * Serving the edge on Cloudflare's workerd: a module worker. The model reaches the worker as
 * a data binding (`MODEL`, bytes embedded by the config) or from a URL (`MODEL_URL`, fetched
 * on the first request); an optional tokenizer (`TOKENIZER` / `TOKENIZER_URL`) enables the
 * chat route. `MODEL_ID` names the model.
 *
 * workerd cannot compile wasm from bytes at run time; the reference engine is plain
 * TypeScript, so it runs as is. Bundle with esbuild and serve with the config in
 * `edge/workerd/` (see its README section in `edge/workerd/build.ts`).
 *
 * Sessions live in the isolate's memory: one workerd process is one edge; when it restarts,
 * devices rebuild their sessions by replay.
 *
 * @example
 * ```ts
 * // edge/workerd/config.capnp binds MODEL, TOKENIZER and MODEL_ID, then:
 * // deno run -A edge/workerd/build.ts && npx workerd serve edge/workerd/config.capnp
 * ```
 *
 * @module
 */

import { createEdgeApp, type EdgeApp } from "../app.ts";
import { errorResponse } from "../http_errors.ts";
import { edgeSpecFromBytes, fetchBytes } from "../load_spec.ts";

/** The worker's bindings. */
export interface WorkerEnv {
  /** Model bytes (a data binding). */
  MODEL?: ArrayBuffer;
  /** Or a URL to fetch them from. */
  MODEL_URL?: string;
  /** llama2.c tokenizer bytes (optional). */
  TOKENIZER?: ArrayBuffer;
  /** Or a URL to fetch it from. */
  TOKENIZER_URL?: string;
  /** Model id (default: the shard's own, or "model"). */
  MODEL_ID?: string;
}

let edge: Promise<EdgeApp> | undefined;

async function build(env: WorkerEnv): Promise<EdgeApp> {
  const read = async (bytes?: ArrayBuffer, url?: string) =>
    bytes ? new Uint8Array(bytes) : url ? await fetchBytes(url) : undefined;
  const model = await read(env.MODEL, env.MODEL_URL);
  if (!model) throw new Error("workerd edge: bind MODEL (data) or MODEL_URL (text)");
  const spec = await edgeSpecFromBytes(model, {
    id: env.MODEL_ID,
    tokenizer: await read(env.TOKENIZER, env.TOKENIZER_URL),
    source: env.MODEL_URL ?? "MODEL binding",
  });
  return await createEdgeApp({ models: [spec] });
}

/** The module worker. */
const worker: { fetch(request: Request, env: WorkerEnv): Promise<Response> } = {
  async fetch(request: Request, env: WorkerEnv): Promise<Response> {
    try {
      edge ??= build(env);
      return await (await edge).fetch(request);
    } catch (e) {
      edge = undefined; // a failed load is retried on the next request
      return errorResponse(e, (err) => console.error("edge:", err));
    }
  },
};

export default worker;
