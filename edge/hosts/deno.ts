/**
 * Serving the edge with `Deno.serve`: a function for programs and tests, and a command.
 *
 * ```sh
 * deno run -A edge/hosts/deno.ts --model ../shared/models/stories260K/stories260K.bin \
 *   --tokenizer ../shared/models/stories260K/tok512.bin --id stories260K --port 8787
 * # --model also takes a URL, or a shard written by `deno task pack`
 * ```
 *
 * @example
 * ```ts
 * import { serveEdge } from "./deno.ts";
 * import { createEdgeApp } from "../app.ts";
 * import type { Model } from "../../runtime/model.ts";
 * declare const model: Model;
 * const edge = await createEdgeApp({ models: [{ id: "m", model }] });
 * const server = serveEdge(edge.fetch); // 127.0.0.1, a free port
 * console.log(server.url);
 * await server.close();
 * ```
 *
 * @module
 */

import { readFileOrUrl, runHostCli } from "./_cli.ts";
import { runCli } from "../../cli/_cli.ts";

/** A running server. */
export interface ServedEdge {
  /** Base URL, e.g. "http://127.0.0.1:40123". */
  url: string;
  /** Port bound. */
  port: number;
  /** Stops accepting, finishes open requests, and resolves when closed. */
  close(): Promise<void>;
}

/**
 * Serves a fetch handler on loopback (port 0 = any free port).
 *
 * @example
 * ```ts
 * import { serveEdge } from "./deno.ts";
 * const s = serveEdge(() => new Response("ok"), { port: 0 });
 * await s.close();
 * ```
 */
export function serveEdge(
  handler: (request: Request) => Response | Promise<Response>,
  options: { port?: number; hostname?: string } = {},
): ServedEdge {
  const hostname = options.hostname ?? "127.0.0.1";
  const ac = new AbortController();
  const server = Deno.serve(
    { port: options.port ?? 0, hostname, signal: ac.signal, onListen: () => {} },
    handler,
  );
  const port = server.addr.port;
  return {
    url: `http://${hostname}:${port}`,
    port,
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}

/**
 * Reads a file path or an http(s) URL.
 *
 * @example
 * ```ts
 * import { readSource } from "./deno.ts";
 * const bytes = await readSource("../shared/models/stories260K/tok512.bin");
 * ```
 */
export async function readSource(spec: string): Promise<Uint8Array> {
  return await readFileOrUrl(spec, Deno.readFile);
}

if (import.meta.main) {
  const serve = (h: (r: Request) => Promise<Response>, o: { port: number; hostname: string }) =>
    Promise.resolve(serveEdge(h, o));
  await runCli(async () => {
    await runHostCli(Deno.args, { read: readSource, serve, env: (name) => Deno.env.get(name) });
  });
}
