/**
 * The router bench's "cloud-class" simulation: stories260K stands in for a SmolLM2-135M-class
 * model. Compute is paced to the decode and prefill rates `deno task bench engine` measured for
 * the SmolLM2-135M-shaped model (results/engine.json, wasm q8_0, 2 threads), and boundary rows
 * count as that model's width on the simulated link (576 values, not 64).
 *
 * A forward of n rows through `layers` of the model's L layers takes
 * `(layers / L) · (decodeMs + (n − 1) · prefillMs)` (one pass streams the weights once; every
 * extra row adds a prefill row's compute). The edge is paced on the server side (answers
 * are held until the simulated compute is done, each arriving batch of a frame's rows one pass
 * as the edge runs them; streamed tokens are released one decode time apart); the device's engine accrues the same time as a debt that its fetch pays before a
 * request (or before each chunk of a streamed prompt frame), so device compute and upload
 * overlap exactly as far as the session pipelines them.
 *
 * @module
 */

import type { Engine, KVCache } from "../runtime/engine.ts";
import type { ModelConfig, ModelParts } from "../runtime/model.ts";
import { estimatingFetch } from "../runtime/estimating_fetch.ts";
import type { NetworkEstimator } from "../runtime/router/network.ts";
import type { ModelProfile } from "../runtime/router/types.ts";
import { rowBytes } from "../runtime/wire_payload.ts";
import { FLAG_EMBED } from "../runtime/wire.ts";

/** Whether a frame's first bytes say token prefill (`EMBED`: token ids, no rows). */
export function isTokenFrame(head: unknown): boolean {
  return head instanceof Uint8Array && head.byteLength >= 12 &&
    (new DataView(head.buffer, head.byteOffset, 12).getUint16(10, true) & FLAG_EMBED) !== 0;
}

/** Simulated compute and width of the model class. */
export interface PaceSpec {
  /** Label for tables. */
  name: string;
  /** ms per token of a decode step through the whole model. */
  decodeMs: number;
  /** ms per token of a prefill through the whole model. */
  prefillMs: number;
  /** Boundary bytes on the simulated link per real byte (576 / 64). */
  rowBytesScale: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** The pace measured by the engine bench (wasm q8_0 × 2 threads, SmolLM2-135M shape). */
export async function measuredPace(dim: number): Promise<PaceSpec> {
  const url = new URL("./results/engine.json", import.meta.url);
  const rows = JSON.parse(await Deno.readTextFile(url)).figures.rows as {
    engine: string;
    prefill: number;
    decode: number;
  }[];
  const r = rows.find((x) => x.engine === "wasm-q8x2")!;
  return {
    name: `SmolLM2-135M-class (${r.decode.toFixed(0)} tok/s decode, ${
      r.prefill.toFixed(0)
    } tok/s prefill, width 576)`,
    decodeMs: 1000 / r.decode,
    prefillMs: 1000 / r.prefill,
    rowBytesScale: 576 / dim,
  };
}

/** ms for `n` rows through `layers` of `L` layers. */
export function paceMs(p: PaceSpec, n: number, layers: number, L: number): number {
  return n <= 0 ? 0 : (layers / L) * (p.decodeMs + (n - 1) * p.prefillMs);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

/** Complete rows in the first `size` bytes of a frame whose first 32 bytes are `head`. */
function framedRows(head: Uint8Array, size: number): number {
  const v = new DataView(head.buffer, head.byteOffset);
  const headerBytes = v.getUint16(6, true);
  const dtype = (["f32", "f16", "int8"] as const)[v.getUint8(8)] ?? "f32";
  const dim = v.getUint32(16, true), n = v.getUint32(20, true);
  // Token prefill: n token ids, no rows; they all count once the frame is in.
  if (isTokenFrame(head)) return size >= headerBytes + 4 * n ? n : 0;
  const lead = headerBytes + (v.getUint16(10, true) & 2 ? 4 * n : 0);
  // int8's scales lead its rows: its rows count only once the whole frame is in.
  if (dtype === "int8") return size >= lead + n * rowBytes("int8", dim) ? n : 0;
  return Math.max(0, Math.min(n, Math.floor((size - lead) / rowBytes(dtype, dim))));
}

/**
 * The cost model's view of the paced class: a layer costs the same at any context (the pace
 * has no context term), its FLOPs at the context the rates are calibrated at (64).
 */
export function pacedProfile(m: ModelProfile): ModelProfile {
  const flat = m.layerFlops(64);
  return { ...m, layerFlops: () => flat };
}

/** Wraps the edge's fetch handler: answers wait for the simulated compute. */
export function pacedEdge(
  handler: (r: Request) => Promise<Response>,
  p: PaceSpec,
  c: ModelConfig,
  promptTokens: (text: string) => number,
  trace?: (event: string, rows: number) => void,
): (r: Request) => Promise<Response> {
  const L = c.nLayers;
  return async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    const t0 = performance.now();
    if (req.method === "POST" && path.endsWith("/forward") && req.body) {
      // The edge runs a frame's rows as they arrive (`edge/streamed_forward.ts`): each body
      // chunk that completes rows is one pass over them, started when it lands or when the
      // previous pass ends. Drafts verify in one batched pass: the same formula.
      let head: Uint8Array = new Uint8Array(0), size = 0, due = t0, ran = 0;
      const tap = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          if (head.byteLength < 32) head = concat(head, chunk.subarray(0, 32 - head.byteLength));
          size += chunk.byteLength;
          const have = head.byteLength >= 32 ? framedRows(head, size) : 0;
          if (have > ran) {
            const v = new DataView(head.buffer);
            // Token prefill runs the whole model: [0, K) as well as [K, L).
            const layers = isTokenFrame(head) ? L : L - v.getUint32(12, true);
            due = Math.max(due, performance.now()) + paceMs(p, have - ran, layers, L);
            ran = have;
            trace?.(`edge got rows → ${have}, pass done at +${(due - t0).toFixed(0)}`, have);
          }
          ctl.enqueue(chunk);
        },
      });
      const res = await handler(
        new Request(req.url, {
          method: "POST",
          headers: req.headers,
          body: req.body.pipeThrough(tap),
          duplex: "half",
        } as RequestInit),
      );
      await sleep(due - performance.now());
      // The edge's time is its paced compute (what the network estimator must not count).
      const headers = new Headers(res.headers);
      headers.set("server-timing", `edge;dur=${(performance.now() - t0).toFixed(2)}`);
      return new Response(res.body, { status: res.status, headers });
    }
    if (req.method === "POST" && (path === "/v1/generate" || path === "/v1/chat/completions")) {
      const text = await req.text();
      const body = JSON.parse(text);
      const n = path === "/v1/generate"
        ? (body.tokens?.length ?? 1)
        : promptTokens(body.messages.map((m: { content: string }) => m.content).join("\n"));
      const res = await handler(
        new Request(req.url, { method: "POST", headers: req.headers, body: text }),
      );
      if (!res.ok || !res.body) return res;
      const marker = path === "/v1/generate" ? '{"token":' : '"delta":{"content":';
      let due = t0 + paceMs(p, n, L, L);
      const dec = new TextDecoder();
      const paced = res.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          async transform(chunk, ctl) {
            const tokens = dec.decode(chunk).split(marker).length - 1;
            for (let i = 0; i < tokens; i++) {
              await sleep(due - performance.now());
              due += p.decodeMs;
            }
            ctl.enqueue(chunk);
          },
        }),
      );
      return new Response(paced, { status: res.status, headers: res.headers });
    }
    return await handler(req);
  };
}

/** A device engine that accrues the simulated compute time of what it runs. */
export class PacedEngine implements Engine {
  readonly #e: Engine;
  readonly #p: PaceSpec;
  /** When the simulated device is done with what it was given (0: nothing owed). */
  #free = 0;
  /** Name. */
  readonly name: string;
  /** Model config. */
  readonly config: ModelConfig;
  /** Parts held. */
  readonly parts: ModelParts;

  constructor(e: Engine, p: PaceSpec) {
    this.#e = e;
    this.#p = p;
    this.name = `paced(${e.name})`;
    this.config = e.config;
    this.parts = e.parts;
  }
  /**
   * Takes (and clears) the compute time still owed, ms: the simulated device computes from
   * when work is given to it, so work given while it waited on the network is partly done.
   */
  takeDebt(): number {
    const d = this.#free > 0 ? Math.max(0, this.#free - performance.now()) : 0;
    this.#free = 0;
    return d;
  }
  createCache(layers?: readonly [number, number]): KVCache {
    return this.#e.createCache(layers);
  }
  embed(tokens: ArrayLike<number>): Float32Array {
    return this.#e.embed(tokens);
  }
  forward(cache: KVCache, x: Float32Array, pos: number, from: number, to: number): Float32Array {
    // The simulated time replaces the real compute (as on the paced edge, whose real compute
    // runs inside its pace): only what the real forward did not already take is owed.
    const t0 = performance.now();
    const out = this.#e.forward(cache, x, pos, from, to);
    this.#free = Math.max(this.#free, t0) +
      paceMs(this.#p, x.length / this.config.dim, to - from, this.config.nLayers);
    return out;
  }
  head(x: Float32Array): Float32Array {
    return this.#e.head(x);
  }
  dispose(): void {
    this.#e.dispose();
  }
}

/** A fetch that pays the device's compute debt before each request or streamed chunk. */
export function pacedFetch(engine: PacedEngine, inner: typeof fetch): typeof fetch {
  return async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const body = init?.body;
    if (body instanceof ReadableStream) {
      const paid = body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          async transform(chunk, ctl) {
            await sleep(engine.takeDebt());
            ctl.enqueue(chunk);
          },
        }),
      );
      return await inner(input, { ...init, body: paid });
    }
    // A token prefill frame goes at once: the device computes its [0, K) meanwhile.
    if (!isTokenFrame(body)) await sleep(engine.takeDebt());
    return await inner(input, init);
  };
}

/**
 * Feeds `estimator` from each completed request (the library's `estimatingFetch`, which skips
 * streamed uploads and generation streams), counting frame bytes at the simulated width:
 * `scale` per real byte on `/forward` (token ids are the same size at any width).
 */
export function scaledEstimatingFetch(
  estimator: NetworkEstimator,
  inner: typeof fetch,
  scale: number,
): typeof fetch {
  return estimatingFetch(estimator, inner, {
    bytesUp: (url, raw, body) =>
      new URL(url).pathname.endsWith("/forward") && !isTokenFrame(body) ? raw * scale : raw,
  });
}
