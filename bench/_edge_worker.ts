/**
 * The router bench's far side, off the device's thread: the edge (stories260K, paced or not)
 * or the network proxies and the edge's pace in front of it (`_remote_edge.ts` runs one worker
 * for each). On the main thread they would share the event loop with the
 * device's real compute, and every ms the device computes would hold back the proxy's
 * timers and the edge's pace (measured: a token prefill frame reached the edge ~30 ms late
 * behind two 12 ms device chunks). Driven by `_remote_edge.ts`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { createEdgeApp } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";
import { WasmEngine } from "../runtime/wasm_engine.ts";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { type NetProfile, type Proxy, startProxy } from "./_netsim.ts";
import { isTokenFrame, pacedEdge, type PaceSpec } from "./_pace.ts";

/** Requests the main thread sends, each answered with `{ id, ... }` or `{ id, error }`. */
export type EdgeWorkerRequest =
  | { id: number; op: "serve"; dir: string; modelId: string }
  | { id: number; op: "pace"; dir: string; target: string; pace: PaceSpec }
  | { id: number; op: "close-server"; server: string }
  | { id: number; op: "proxy"; target: string; net: NetProfile; seed: number; scale: number }
  | { id: number; op: "close-proxy"; proxy: string };

const DIR_CACHE = new Map<string, Awaited<ReturnType<typeof load>>>();
const servers = new Map<string, { close(): Promise<void>; dispose(): void }>();
const proxies = new Map<string, Proxy>();

async function load(dir: string) {
  const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", dir)));
  const tok = parseLlama2cTokenizer(await Deno.readFile(new URL("tok512.bin", dir)), 512);
  return { model, tok };
}

async function handle(m: EdgeWorkerRequest): Promise<Record<string, unknown>> {
  switch (m.op) {
    case "serve": {
      const loaded = DIR_CACHE.get(m.dir) ?? await load(m.dir);
      DIR_CACHE.set(m.dir, loaded);
      const { model, tok } = loaded;
      // The wasm engine (f32, one thread): the edge's real compute must keep up with a dozen
      // concurrent streams at the simulated pace (the reference engine takes ~1.2 ms a token).
      const edge = await createEdgeApp({
        models: [{ id: m.modelId, model, tokenizer: tok }],
        engine: (mm) => WasmEngine.create(mm, { quant: "f32", threads: 1 }),
      });
      const server = serveEdge(edge.fetch);
      servers.set(server.url, { close: () => server.close(), dispose: () => edge.dispose() });
      return { url: server.url };
    }
    case "pace": {
      // The edge's pace, applied in front of it (in the proxies' thread): the edge computes a
      // streamed generation as fast as it can, and on its own thread that would delay the
      // timers that release each token.
      const loaded = DIR_CACHE.get(m.dir) ?? await load(m.dir);
      DIR_CACHE.set(m.dir, loaded);
      const { model, tok } = loaded;
      const relay = (req: Request) => {
        const u = new URL(req.url);
        return fetch(m.target + u.pathname + u.search, {
          method: req.method,
          headers: req.headers,
          body: req.body,
          ...(req.body ? { duplex: "half" } : {}),
        } as RequestInit);
      };
      const server = serveEdge(pacedEdge(relay, m.pace, model.config, (t) => tok.encode(t).length));
      servers.set(server.url, { close: () => server.close(), dispose: () => {} });
      return { url: server.url };
    }
    case "close-server": {
      const s = servers.get(m.server);
      servers.delete(m.server);
      await s?.close();
      s?.dispose();
      return {};
    }
    case "proxy": {
      // Rows count at the simulated width on the uplink; token ids are the same at any width.
      const upScale = (path: string, head?: Uint8Array) =>
        path.endsWith("/forward") && !isTokenFrame(head) ? m.scale : 1;
      const proxy = startProxy(m.target, m.net, m.seed, upScale);
      proxies.set(proxy.url, proxy);
      return { url: proxy.url };
    }
    case "close-proxy": {
      const p = proxies.get(m.proxy);
      proxies.delete(m.proxy);
      if (!p) return {};
      await p.close();
      return { bytesUp: p.bytesUp, bytesDown: p.bytesDown, requests: p.requests };
    }
  }
}

self.onmessage = async (e: MessageEvent<EdgeWorkerRequest>) => {
  try {
    self.postMessage({ ...(await handle(e.data)), id: e.data.id });
  } catch (err) {
    self.postMessage({ id: e.data.id, error: String((err as Error)?.stack ?? err) });
  }
};
