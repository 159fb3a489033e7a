/**
 * Serving the edge on Node with `@hono/node-server`. Node does not run TypeScript, so bundle
 * this file first (esbuild ships in the dev dependencies):
 *
 * ```sh
 * npx esbuild edge/hosts/node.ts --bundle --platform=node --format=esm --outfile=dist/edge-node.mjs
 * node dist/edge-node.mjs --model ../shared/models/stories260K/stories260K.bin \
 *   --tokenizer ../shared/models/stories260K/tok512.bin --id stories260K --port 8787
 * # prints: tandem edge serving stories260K on http://127.0.0.1:8787
 * ```
 *
 * `--model` and `--tokenizer` take a file path or an http(s) URL; `--model` may be a whole
 * llama2.c checkpoint or an edge shard from `deno task pack`.
 *
 * @example
 * ```ts
 * import { serveNode } from "./node.ts";
 * const server = await serveNode(() => new Response("ok"), { port: 0 });
 * console.log(server.url);
 * await server.close();
 * ```
 *
 * @module
 */

import { serve } from "@hono/node-server";
import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { readFileOrUrl, runHostCli } from "./_cli.ts";
import { runCli } from "../../cli/_cli.ts";

/** A running Node server. */
export interface NodeServedEdge {
  /** Base URL. */
  url: string;
  /** Port bound. */
  port: number;
  /** Stops the server. */
  close(): Promise<void>;
}

/**
 * Serves a fetch handler with Node's http module (port 0 = any free port).
 *
 * @example
 * ```ts
 * import { serveNode } from "./node.ts";
 * const s = await serveNode(() => new Response("ok"));
 * await s.close();
 * ```
 */
export function serveNode(
  handler: (request: Request) => Response | Promise<Response>,
  options: { port?: number; hostname?: string } = {},
): Promise<NodeServedEdge> {
  const hostname = options.hostname ?? "127.0.0.1";
  return new Promise((resolve) => {
    const server = serve(
      { fetch: handler, port: options.port ?? 0, hostname },
      (info: AddressInfo) => {
        resolve({
          url: `http://${hostname}:${info.port}`,
          port: info.port,
          close: () => new Promise<void>((done) => server.close(() => done())),
        });
      },
    );
  });
}

/**
 * Reads a file path or an http(s) URL.
 *
 * @example
 * ```ts
 * import { readSource } from "./node.ts";
 * const bytes = await readSource("model.bin");
 * ```
 */
export async function readSource(spec: string): Promise<Uint8Array> {
  return await readFileOrUrl(spec, async (path) => new Uint8Array(await readFile(path)));
}

const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(entry).href) {
  await runCli(async () => {
    await runHostCli(process.argv.slice(2), {
      read: readSource,
      serve: serveNode,
      env: (name) => process.env[name],
    });
  });
}
