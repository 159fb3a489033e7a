/**
 * The browser example's server (Deno): packs the model into its device and edge shards,
 * bundles the page with esbuild, and serves, on one origin, the page, the device shard and
 * tokenizer, and the edge app running layers [K, L) from the edge shard.
 *
 * With isolation on (the default) every answer carries `Cross-Origin-Opener-Policy:
 * same-origin` and `Cross-Origin-Embedder-Policy: require-corp`, so the page is
 * cross-origin isolated, `SharedArrayBuffer` exists, and the wasm kernels run on threads.
 * Without it (`--no-isolation`) the page falls back to one thread and says so.
 *
 * ```sh
 * deno run -A examples/browser/serve.ts                 # http://127.0.0.1:8080
 * deno run -A examples/browser/serve.ts --split 3 --no-isolation --port 8081
 * ```
 *
 * @example
 * ```ts
 * import { startBrowserExample } from "./serve.ts";
 * const server = await startBrowserExample({ port: 0 });
 * console.log(server.url); // open it in a browser
 * await server.close();
 * ```
 *
 * @module
 */

import process from "node:process";
import * as esbuild from "esbuild";
import { createEdgeApp } from "../../edge/app.ts";
import { serveEdge } from "../../edge/hosts/deno.ts";
import { edgeSpecFromBytes } from "../../edge/load_spec.ts";
import { parseLlama2c } from "../../runtime/formats/llama2c.ts";
import { packModel } from "../../runtime/pack.ts";
import { numberFlag, parseFlags, runCli } from "../../cli/_cli.ts";
import { Progress } from "../../cli/_progress.ts";

const HERE = new URL("./", import.meta.url);
const DEFAULT_MODEL_DIR = new URL("../../../shared/models/stories260K/", import.meta.url);

/** Options of {@linkcode startBrowserExample}. */
export interface BrowserExampleOptions {
  /** Folder with stories260K.bin and tok512.bin (default ../shared/models/stories260K). */
  modelDir?: URL;
  /** Split layer K the shards are cut at (default 2). */
  split?: number;
  /** Send COOP/COEP headers (default true). */
  isolated?: boolean;
  /** Port (default 8080; 0 picks a free one). Always loopback. */
  port?: number;
  /** Called with each setup step, for progress output. */
  onStep?: (step: string) => void;
}

/** A running example server. */
export interface BrowserExampleServer {
  /** The page's URL. */
  url: string;
  /** Bytes of the device shard and of the whole model. */
  bytes: { device: number; edge: number; whole: number };
  /** Stops the server and frees the edge. */
  close(): Promise<void>;
}

/**
 * Bundles the page's scripts (`page.ts`, `device_worker.ts`) for browsers; returns name → JS.
 *
 * @example
 * ```ts
 * import { bundlePage } from "./serve.ts";
 * const files = await bundlePage();
 * console.log([...files.keys()]); // ["page.js", "device_worker.js"]
 * ```
 */
export async function bundlePage(): Promise<Map<string, string>> {
  try {
    const result = await esbuild.build({
      entryPoints: {
        page: new URL("page.ts", HERE).pathname,
        device_worker: new URL("device_worker.ts", HERE).pathname,
      },
      outdir: "/", // nothing is written: write: false
      write: false,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      external: ["node:*"], // the kernels' Node-only branch, never taken in a browser
      logLevel: "silent",
    });
    return new Map(result.outputFiles.map((f) => [f.path.slice(1), f.text]));
  } finally {
    await esbuild.stop();
  }
}

/**
 * Packs the model, bundles the page and serves everything on 127.0.0.1.
 *
 * @example
 * ```ts
 * import { startBrowserExample } from "./serve.ts";
 * const s = await startBrowserExample({ port: 0, isolated: false });
 * await s.close();
 * ```
 */
export async function startBrowserExample(
  options: BrowserExampleOptions = {},
): Promise<BrowserExampleServer> {
  const { split = 2, isolated = true, port = 8080 } = options;
  const step = options.onStep ?? (() => {});
  const dir = options.modelDir ?? DEFAULT_MODEL_DIR;

  step("reading the model");
  const whole = await Deno.readFile(new URL("stories260K.bin", dir));
  const tokenizer = await Deno.readFile(new URL("tok512.bin", dir));
  step(`packing device and edge shards at layer ${split}`);
  const { files } = await packModel(parseLlama2c(whole, "stories260K.bin"), {
    modelId: "stories260K",
    split,
  });
  step("starting the edge on the edge shard");
  const edge = await createEdgeApp({
    models: [await edgeSpecFromBytes(files.get("edge.safetensors")!, { source: "edge shard" })],
  });
  step("bundling the page with esbuild");
  const scripts = await bundlePage();
  const html = await Deno.readTextFile(new URL("index.html", HERE));

  const statics = new Map<string, [string, string | Uint8Array]>([
    ["/", ["text/html; charset=utf-8", html]],
    ["/index.html", ["text/html; charset=utf-8", html]],
    ["/model/manifest.json", ["application/json", files.get("manifest.json")!]],
    ["/model/device.safetensors", ["application/octet-stream", files.get("device.safetensors")!]],
    ["/model/tok512.bin", ["application/octet-stream", tokenizer]],
  ]);
  for (const [name, js] of scripts) statics.set(`/${name}`, ["text/javascript", js]);

  const isolation: Record<string, string> = isolated
    ? {
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
    }
    : {};
  const handler = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    const file = request.method === "GET" ? statics.get(path) : undefined;
    const res = file
      ? new Response(
        typeof file[1] === "string" ? file[1] : file[1].slice(),
        { headers: { "content-type": file[0], "cache-control": "no-store" } },
      )
      : await edge.fetch(request); // /v1/… : the edge app
    for (const [k, v] of Object.entries(isolation)) res.headers.set(k, v);
    return res;
  };
  const served = serveEdge(handler, { port, hostname: "127.0.0.1" });
  return {
    url: served.url + "/",
    bytes: {
      device: files.get("device.safetensors")!.byteLength,
      edge: files.get("edge.safetensors")!.byteLength,
      whole: whole.byteLength,
    },
    close: async () => {
      await served.close();
      edge.dispose();
    },
  };
}

async function main(): Promise<void> {
  const flags = parseFlags(
    "deno run -A examples/browser/serve.ts",
    "Serves the browser example: the page runs layers [0, K) in a Worker, this server the rest.",
    {
      model: { type: "string", help: "folder with stories260K.bin and tok512.bin" },
      split: { type: "string", help: "split layer K", default: "2" },
      port: { type: "string", help: "port on 127.0.0.1", default: "8080" },
      "no-isolation": { type: "boolean", help: "omit COOP/COEP: the page falls back to 1 thread" },
    },
    process.argv.slice(2),
  );
  const split = numberFlag(flags, "split", (x) => Number.isInteger(x) && x >= 1, "a layer >= 1");
  const port = numberFlag(flags, "port", (x) => Number.isInteger(x) && x >= 0, "a port number");
  const progress = new Progress("browser example", 4);
  const server = await startBrowserExample({
    modelDir: flags.model
      ? new URL(String(flags.model).replace(/\/?$/, "/"), `file://${process.cwd()}/`)
      : undefined,
    split,
    port,
    isolated: !flags["no-isolation"],
    onStep: (s) => progress.tick(s),
  });
  progress.done(`open ${server.url}`);
}

if (import.meta.main) await runCli(main);
