/**
 * A `fetch` that feeds the requests it makes into a {@linkcode NetworkEstimator} (all but
 * streamed uploads and generation streams, whose wall time is compute, not the link, and draft
 * stream rows, which wait for the rows in flight before them): wall time
 * from sending to the last byte of the answer, bytes each way, and the edge's own compute
 * time when the answer says it (`edgeMs` in the NDJSON closing line is not read: the header
 * `server-timing` is, when present). Hand it to `createSession({ fetch })`.
 *
 * @example
 * ```ts
 * import { estimatingFetch } from "./estimating_fetch.ts";
 * import { NetworkEstimator } from "./router/network.ts";
 * const net = new NetworkEstimator();
 * const f = estimatingFetch(net);
 * await (await f("http://127.0.0.1:8787/healthz")).text();
 * console.log(net.state.rttMs);
 * ```
 *
 * @module
 */

import type { NetworkEstimator } from "./router/network.ts";

/**
 * Routes whose answer streams a whole generation: their wall time is the edge's generation,
 * not the link, and read as transfer time it would drag the bandwidth estimate to KB/s.
 */
const GENERATION = /\/v1\/(generate|chat\/completions)$/;

/**
 * Whether a body is a draft stream frame (wire 1.1: magic "TNDW", flag `STREAM` = 8 at offset
 * 10): its time includes waiting for the rows sent before it, so it says nothing of the link.
 */
function isStreamFrame(body: BodyInit | null | undefined): boolean {
  if (!(body instanceof Uint8Array) || body.byteLength < 12) return false;
  const magic = body[0] === 0x54 && body[1] === 0x4e && body[2] === 0x44 && body[3] === 0x57;
  return magic && (body[10] & 8) !== 0;
}

function bodyBytes(body: BodyInit | null | undefined): number {
  if (!body) return 0;
  if (typeof body === "string") return new TextEncoder().encode(body).byteLength;
  if (body instanceof ArrayBuffer) return body.byteLength;
  if (ArrayBuffer.isView(body)) return body.byteLength;
  return 0;
}

/** Options of {@linkcode estimatingFetch}. */
export interface EstimatingFetchOptions {
  /** Upload bytes to record for a request of `raw` body bytes (default: `raw`); a simulation
   * that stands in for a wider model scales its frames here (`body`: the request's body). */
  bytesUp?: (url: string, raw: number, body?: unknown) => number;
}

/**
 * Wraps `inner` (default: the global fetch) so each completed request updates `estimator`.
 *
 * @example
 * ```ts
 * import { estimatingFetch } from "./estimating_fetch.ts";
 * import { NetworkEstimator } from "./router/network.ts";
 * const f: typeof fetch = estimatingFetch(new NetworkEstimator());
 * ```
 */
export function estimatingFetch(
  estimator: NetworkEstimator,
  inner: typeof fetch = globalThis.fetch.bind(globalThis),
  options: EstimatingFetchOptions = {},
): typeof fetch {
  return async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = input instanceof Request ? input.url : String(input);
    // Streamed bodies (pipelined prompts) include device compute; generation streams the edge's;
    // draft stream rows queue behind the rows in flight before them.
    if (
      init?.body instanceof ReadableStream || GENERATION.test(new URL(url).pathname) ||
      isStreamFrame(init?.body)
    ) {
      return await inner(input, init);
    }
    const t0 = performance.now();
    const raw = bodyBytes(init?.body);
    const up = options.bytesUp ? options.bytesUp(url, raw, init?.body) : raw;
    const res = await inner(input, init);
    const timing = /dur=([\d.]+)/.exec(res.headers.get("server-timing") ?? "");
    const serverMs = timing ? Number(timing[1]) : 0;
    if (!res.body) {
      estimator.observe({ wallMs: performance.now() - t0, bytesUp: up, bytesDown: 0, serverMs });
      return res;
    }
    let down = 0;
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          down += chunk.byteLength;
          ctl.enqueue(chunk);
        },
        flush() {
          estimator.observe({
            wallMs: performance.now() - t0,
            bytesUp: up,
            bytesDown: down,
            serverMs,
          });
        },
      }),
    );
    return new Response(counted, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  };
}
