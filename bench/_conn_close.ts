/**
 * How much the Deno host's keep-alive bug (denoland/deno#36657: `Deno.serve` answers
 * `Connection: close` to a request whose body does not fit its first read, about 500 bytes,
 * on Deno 2.8.3–2.9.5) touches draft streaming, which sends one small request per row.
 *
 * Serves a body-reading handler with `Deno.serve` (what `edge/hosts/deno.ts` does) and sends
 * stream-row-sized bodies — stories260K's row (64 values) and the cloud-class model's (576) —
 * one after another and 16 at a time, counting the TCP connections the server saw and the
 * answers that said `Connection: close`.
 *
 * @module
 */

import { rowBytes, type WireDtype } from "../runtime/wire_payload.ts";

/** One body size's result. */
export interface ConnResult {
  /** Label, e.g. "stories260K row (f32)". */
  label: string;
  /** Request body bytes. */
  bytes: number;
  /** Requests sent. */
  requests: number;
  /** Connections the server saw, one request at a time. */
  sequentialConnections: number;
  /** Connections the server saw, 16 requests in flight at a time. */
  concurrentConnections: number;
  /** Answers carrying `Connection: close`. */
  closed: number;
  /** Mean loopback time per request, one at a time, ms. */
  meanMs: number;
}

/**
 * A stream frame's bytes for a row of `dim` values in `dtype` (92-byte header for the model id
 * "stories260K", the token, the row).
 *
 * @example
 * ```ts
 * import { streamFrameBytes } from "./_conn_close.ts";
 * console.log(streamFrameBytes(64, "f32")); // 352
 * ```
 */
export function streamFrameBytes(dim: number, dtype: WireDtype = "f32"): number {
  return 92 + 4 + rowBytes(dtype, dim);
}

/**
 * Measures requests of the given body sizes on this Deno (each with the headers `fetch` sends
 * to `/v1/sessions/:id/forward`: the limit is on what arrives in the server's first read).
 */
export async function measureConnectionClose(
  widths: { label: string; bytes: number }[],
  requests = 64,
): Promise<ConnResult[]> {
  const ports = new Set<number>();
  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen: () => {} },
    async (req, info) => {
      ports.add((info.remoteAddr as Deno.NetAddr).port);
      await req.arrayBuffer();
      return new Response('{"done":true}\n', {
        headers: { "content-type": "application/x-ndjson" },
      });
    },
  );
  const id = crypto.randomUUID();
  const url = `http://127.0.0.1:${server.addr.port}/v1/sessions/${id}/forward`;
  const out: ConnResult[] = [];
  try {
    for (const w of widths) {
      const body = new Uint8Array(w.bytes);
      let closed = 0;
      const one = async () => {
        const res = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/octet-stream" },
          body,
        });
        if (res.headers.get("connection")?.toLowerCase() === "close") closed++;
        await res.text();
      };
      await one(); // warm: the first connection
      ports.clear();
      const t0 = performance.now();
      for (let i = 0; i < requests; i++) await one();
      const meanMs = (performance.now() - t0) / requests;
      const sequentialConnections = ports.size;
      ports.clear();
      for (let i = 0; i < requests; i += 16) {
        await Promise.all(Array.from({ length: Math.min(16, requests - i) }, one));
      }
      out.push({
        label: w.label,
        bytes: body.byteLength,
        requests,
        sequentialConnections,
        concurrentConnections: ports.size,
        closed,
        meanMs,
      });
    }
  } finally {
    ac.abort();
    await server.finished;
  }
  return out;
}
