/**
 * The command line shared by the host adapters: parse `--model`, `--tokenizer`, `--id`,
 * `--port`, `--hostname`, load the model with the host's reader, serve it with the host's
 * server, and print the URL.
 *
 * @module
 */

import { numberFlag, parseFlags } from "../../cli/_cli.ts";
import { createEngine } from "../../runtime/create_engine.ts";
import { TandemError } from "../../runtime/errors.ts";
import type { EngineQuant } from "../../runtime/wasm_engine.ts";
import { createEdgeApp } from "../app.ts";
import { parseApiKeys } from "../auth.ts";
import { edgeSpecFromBytes, fetchBytes } from "../load_spec.ts";

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

/**
 * Reads an http(s) URL with fetch, or a path with the host's `readFile`; a missing or
 * unreadable file is a `not_found` TandemError naming it.
 *
 * @example
 * ```ts
 * import { readFileOrUrl } from "./_cli.ts";
 * const bytes = await readFileOrUrl("../shared/models/stories260K/tok512.bin", Deno.readFile);
 * ```
 */
export async function readFileOrUrl(
  spec: string,
  readFile: (path: string) => Promise<Uint8Array>,
): Promise<Uint8Array> {
  if (/^https?:\/\//.test(spec)) return await fetchBytes(spec);
  try {
    return await readFile(spec);
  } catch (e) {
    throw new TandemError("not_found", `Cannot read ${spec}: ${(e as Error).message}`);
  }
}

const FLAGS = {
  model: { type: "string", help: "model or edge shard: path or http(s) URL (required)" },
  tokenizer: { type: "string", help: "tokenizer file: path or URL (default: none)" },
  id: { type: "string", help: 'model id to serve it as (default: the shard\'s id, else "model")' },
  port: { type: "string", help: "port (0 = any free one)", default: "8787" },
  hostname: { type: "string", help: "address to bind", default: "127.0.0.1" },
  quant: { type: "string", help: "edge engine weights: f32, q8 or q4", default: "f32" },
  threads: { type: "string", help: "edge engine threads, caller included", default: "1" },
  "price-per-flop": {
    type: "string",
    help: "price advertised for one FLOP in /metrics (default: none)",
  },
} as const;

const QUANTS: readonly EngineQuant[] = ["f32", "q8", "q4"];

/**
 * Runs the edge command (`--help` lists the flags); returns the served URL. Bad flags and
 * unreadable models throw a {@linkcode TandemError} for the caller's `runCli` to print.
 *
 * @example
 * ```ts
 * import { runHostCli } from "./_cli.ts";
 * declare const io: import("./_cli.ts").HostIo;
 * await runHostCli(["--model", "model.bin", "--port", "0"], io);
 * ```
 */
export async function runHostCli(argv: string[], io: HostIo): Promise<string> {
  const values = parseFlags(
    "edge host",
    "Serves a model (or edge shard) as a tandem edge. API keys come from TANDEM_API_KEYS.",
    FLAGS,
    argv,
  );
  if (typeof values.model !== "string" || values.model === "") {
    throw new TandemError("bad_argument", "--model is required (see --help)");
  }
  const port = numberFlag(
    values,
    "port",
    (x) => Number.isInteger(x) && x >= 0 && x < 65536,
    "a port number",
  ) ?? 8787;
  const threads = numberFlag(
    values,
    "threads",
    (x) => Number.isInteger(x) && x >= 1 && x <= 64,
    "a whole number from 1 to 64",
  ) ?? 1;
  const pricePerFlop = numberFlag(
    values,
    "price-per-flop",
    (x) => Number.isFinite(x) && x >= 0,
    "a number ≥ 0",
  );
  const quant = (values.quant ?? "f32") as EngineQuant;
  if (!QUANTS.includes(quant)) {
    throw new TandemError("bad_argument", `--quant must be one of ${QUANTS.join(", ")}`);
  }
  const spec = await edgeSpecFromBytes(await io.read(values.model), {
    id: values.id as string | undefined,
    tokenizer: values.tokenizer ? await io.read(values.tokenizer as string) : undefined,
    source: values.model,
  });
  const apiKeys = parseApiKeys(io.env?.("TANDEM_API_KEYS"));
  const engine = quant === "f32" && threads === 1
    ? undefined // the reference engine: exact, no Workers
    : (m: Parameters<typeof createEngine>[0]) => createEngine(m, { quant, threads });
  const edge = await createEdgeApp({ models: [spec], apiKeys, engine, pricePerFlop });
  const hostname = (values.hostname as string | undefined) ?? "127.0.0.1";
  const { url } = await io.serve(edge.fetch, { port, hostname });
  console.log(`tandem edge serving ${spec.id} on ${url}`);
  console.error(
    apiKeys.length
      ? `auth: ${apiKeys.length} API key(s) from TANDEM_API_KEYS`
      : "WARNING: no API keys (TANDEM_API_KEYS is unset): this edge is open to anyone who can reach it; for loopback development only",
  );
  return url;
}
