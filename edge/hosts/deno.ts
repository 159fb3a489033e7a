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

import { parseArgs } from "node:util";
import { createEdgeApp } from "../app.ts";
import { edgeSpecFromBytes, fetchBytes } from "../load_spec.ts";

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
  return /^https?:\/\//.test(spec) ? await fetchBytes(spec) : await Deno.readFile(spec);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string" },
      tokenizer: { type: "string" },
      id: { type: "string" },
      port: { type: "string", default: "8787" },
      hostname: { type: "string", default: "127.0.0.1" },
    },
  });
  if (!values.model) {
    console.error(
      "usage: deno run -A edge/hosts/deno.ts --model PATH|URL [--tokenizer PATH|URL] [--id ID] [--port N]",
    );
    Deno.exit(2);
  }
  const spec = await edgeSpecFromBytes(await readSource(values.model), {
    id: values.id,
    tokenizer: values.tokenizer ? await readSource(values.tokenizer) : undefined,
    source: values.model,
  });
  const edge = await createEdgeApp({ models: [spec] });
  const served = serveEdge(edge.fetch, { port: Number(values.port), hostname: values.hostname });
  console.log(`tandem edge serving ${spec.id} on ${served.url}`);
}

if (import.meta.main) await main();
