/**
 * An edge as a Cloudflare Worker (wrangler-style module worker) built on the npm package.
 *
 * workerd refuses to compile wasm from bytes at run time, so the kernels come in as a module
 * import (wrangler turns `import x from "….wasm"` into a compiled `WebAssembly.Module`) and are
 * handed to `createEngine`. The weights come from `MODEL_URL` (see wrangler.toml), fetched on the
 * first request and kept for the isolate's life, like its sessions.
 *
 * @module
 */

import { createEdgeApp, type EdgeApp, edgeSpecFromBytes, fetchBytes } from "tandem-llm/edge";
import { createEngine } from "tandem-llm/wasm";
import kernels from "tandem-llm/wasm/simd.wasm";

interface Env {
  MODEL_URL: string;
  MODEL_ID?: string;
  TOKENIZER_URL?: string;
  /** Comma-separated bearer keys (a wrangler secret); unset = an open edge. */
  TANDEM_API_KEYS?: string;
}

let edge: Promise<EdgeApp> | undefined;

async function start(env: Env): Promise<EdgeApp> {
  const spec = await edgeSpecFromBytes(await fetchBytes(env.MODEL_URL), {
    id: env.MODEL_ID,
    tokenizer: env.TOKENIZER_URL ? await fetchBytes(env.TOKENIZER_URL) : undefined,
    source: env.MODEL_URL,
  });
  return await createEdgeApp({
    models: [spec],
    apiKeys: env.TANDEM_API_KEYS?.split(",").filter(Boolean),
    engine: (m) => createEngine(m, { kernels: { module: kernels as WebAssembly.Module } }),
  });
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    edge ??= start(env).catch((e) => {
      edge = undefined; // try again on the next request
      throw e;
    });
    return (await edge).fetch(request);
  },
};
