/**
 * The command line shared by the host adapters: parse `--model`, `--tokenizer`, `--id`,
 * `--port`, `--hostname`, load the model with the host's reader, serve it with the host's
 * server, and print the URL.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createEdgeApp } from "../app.ts";
import { parseApiKeys } from "../auth.ts";
import { edgeSpecFromBytes } from "../load_spec.ts";

/** What a host supplies: how to read a path or URL, and how to serve a handler. */
export interface HostIo {
  /** Reads a file path or an http(s) URL. */
  read(spec: string): Promise<Uint8Array>;
  /** Serves a handler; resolves to its base URL. */
  serve(
    handler: (request: Request) => Promise<Response>,
    options: { port: number; hostname: string },
  ): Promise<{ url: string }>;
  /** Reads an environment variable (API keys come from `TANDEM_API_KEYS`). */
  env?(name: string): string | undefined;
}

const USAGE = "usage: --model PATH|URL [--tokenizer PATH|URL] [--id ID] [--port N] [--hostname H]";

/**
 * Runs the edge command; returns the served URL, or undefined after printing the usage.
 *
 * @example
 * ```ts
 * import { runHostCli } from "./_cli.ts";
 * declare const io: import("./_cli.ts").HostIo;
 * await runHostCli(["--model", "model.bin", "--port", "0"], io);
 * ```
 */
export async function runHostCli(argv: string[], io: HostIo): Promise<string | undefined> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" },
      tokenizer: { type: "string" },
      id: { type: "string" },
      port: { type: "string", default: "8787" },
      hostname: { type: "string", default: "127.0.0.1" },
    },
  });
  if (!values.model) {
    console.error(USAGE);
    return undefined;
  }
  const spec = await edgeSpecFromBytes(await io.read(values.model), {
    id: values.id,
    tokenizer: values.tokenizer ? await io.read(values.tokenizer) : undefined,
    source: values.model,
  });
  const apiKeys = parseApiKeys(io.env?.("TANDEM_API_KEYS"));
  const edge = await createEdgeApp({ models: [spec], apiKeys });
  const { url } = await io.serve(edge.fetch, {
    port: Number(values.port),
    hostname: values.hostname,
  });
  console.log(`tandem edge serving ${spec.id} on ${url}`);
  console.error(
    apiKeys.length
      ? `auth: ${apiKeys.length} API key(s) from TANDEM_API_KEYS`
      : "WARNING: no API keys (TANDEM_API_KEYS is unset): this edge is open to anyone who can reach it; for loopback development only",
  );
  return url;
}
