/**
 * A loopback proxy that makes real HTTP traffic look like a mobile network: each request waits
 * half a round trip (plus seeded jitter) and its body's transfer time at the uplink rate before
 * it reaches the edge; each answer chunk takes its transfer time at the downlink rate from when
 * the edge wrote it (or the link is free) and arrives half a round trip later, in order (so
 * streamed answers stay streamed, and a token written after an early first chunk still pays the
 * latency). Counts bytes both ways.
 *
 * @example
 * ```ts
 * import { PROFILES, startProxy } from "./_netsim.ts";
 * const proxy = startProxy("http://127.0.0.1:8787", PROFILES.good4g, 1);
 * await fetch(`${proxy.url}/healthz`);
 * console.log(proxy.bytesUp, proxy.bytesDown);
 * await proxy.close();
 * ```
 *
 * @module
 */

/** A network profile. */
export interface NetProfile {
  /** Name shown in tables. */
  name: string;
  /** Round-trip time, ms. */
  rttMs: number;
  /** Jitter: each half trip varies uniformly by ± this / 2, ms. */
  jitterMs: number;
  /** Uplink, bytes/s. */
  upBytesPerSec: number;
  /** Downlink, bytes/s. */
  downBytesPerSec: number;
}

/** The bench's profiles. */
export const PROFILES: Record<string, NetProfile> = {
  lan: { name: "LAN", rttMs: 2, jitterMs: 0.5, upBytesPerSec: 12.5e6, downBytesPerSec: 12.5e6 },
  good4g: { name: "good 4G", rttMs: 50, jitterMs: 10, upBytesPerSec: 1.25e6, downBytesPerSec: 4e6 },
  poor3g: {
    name: "poor 3G",
    rttMs: 300,
    jitterMs: 80,
    upBytesPerSec: 5e4,
    downBytesPerSec: 1.25e5,
  },
};

/** A running proxy. */
export interface Proxy {
  /** Base URL to use instead of the edge's. */
  url: string;
  /** Body bytes sent to the edge. */
  bytesUp: number;
  /** Body bytes received from the edge. */
  bytesDown: number;
  /** Requests forwarded. */
  requests: number;
  /** Stops the proxy. */
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * Starts a proxy in front of `target` with a profile and a jitter seed. `upScale(path, head)`
 * makes a request body count as that many bytes per real byte on the uplink (a wider simulated
 * model); `head` is the body's first chunk when the body is not streamed.
 * A streamed request body is timed chunk by chunk as it arrives (the uplink is busy from each
 * chunk's arrival), so a body computed while it is sent overlaps compute and transfer.
 */
export function startProxy(
  target: string,
  p: NetProfile,
  seed: number,
  upScale: (path: string, head?: Uint8Array) => number = () => 1,
): Proxy {
  let s = seed >>> 0 || 1;
  const jitter = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * p.jitterMs;
  };
  const ac = new AbortController();
  const proxy: Proxy = { url: "", bytesUp: 0, bytesDown: 0, requests: 0, close: async () => {} };
  const handler = async (req: Request): Promise<Response> => {
    const u = new URL(req.url);
    let scale = upScale(u.pathname);
    if (req.body && !req.headers.has("content-length")) {
      return await forward(u, req, relayed(req.body, scale), p.rttMs / 2 + jitter());
    }
    let body: Uint8Array<ArrayBuffer> | undefined;
    let upClock = performance.now(); // when the uplink has sent everything received so far
    if (req.body && req.method !== "GET" && req.method !== "HEAD") {
      const parts: Uint8Array[] = [];
      for await (const chunk of req.body) {
        if (parts.length === 0) scale = upScale(u.pathname, chunk);
        parts.push(chunk);
        upClock = Math.max(upClock, performance.now()) +
          1000 * chunk.byteLength * scale / p.upBytesPerSec;
      }
      body = new Uint8Array(parts.reduce((a, c) => a + c.byteLength, 0));
      let off = 0;
      for (const c of parts) body.set(c, (off += c.byteLength) - c.byteLength);
    }
    const up = body?.byteLength ?? 0;
    proxy.bytesUp += up * scale;
    proxy.requests++;
    await sleep(upClock - performance.now() + p.rttMs / 2 + jitter());
    return await forward(u, req, body, 0);
  };
  /**
   * A streamed body relayed chunk by chunk: each chunk reaches the edge when the uplink has
   * sent it (the uplink is busy from each chunk's arrival) plus half a round trip. Chunks are
   * read as they arrive, whatever the edge's pace, so the uplink clock sees true arrivals.
   */
  const relayed = (src: ReadableStream<Uint8Array>, scale: number) => {
    const queue: { chunk: Uint8Array; at: number }[] = [];
    let clock = performance.now(), ended = false, failed: unknown, wake = () => {};
    let half = 0;
    (async () => {
      try {
        for await (const chunk of src) {
          clock = Math.max(clock, performance.now()) +
            1000 * chunk.byteLength * scale / p.upBytesPerSec;
          proxy.bytesUp += chunk.byteLength * scale;
          queue.push({ chunk, at: clock });
          wake();
        }
      } catch (e) {
        failed = e;
      }
      ended = true;
      wake();
    })();
    return {
      setHalf: (ms: number) => void (half = ms),
      body: new ReadableStream<Uint8Array>({
        async pull(ctl) {
          while (!queue.length && !ended) await new Promise<void>((r) => (wake = r));
          if (!queue.length) return failed ? ctl.error(failed) : ctl.close();
          const { chunk, at } = queue.shift()!;
          await sleep(at + half - performance.now());
          ctl.enqueue(chunk);
        },
      }, { highWaterMark: 0 }),
    };
  };
  /**
   * An answer body on the downlink: each chunk leaves when the edge wrote it and the link is
   * free, takes its transfer time, and arrives half a round trip later. Chunks are read as the
   * edge writes them (their departure times are true even while earlier ones are in flight),
   * so a stream of tokens keeps its rate and every token pays the latency, the first included.
   */
  const downlink = (src: ReadableStream<Uint8Array>, half: number) => {
    const queue: { chunk: Uint8Array; at: number }[] = [];
    let free = 0, ended = false, failed: unknown, wake = () => {};
    (async () => {
      try {
        for await (const chunk of src) {
          proxy.bytesDown += chunk.byteLength;
          free = Math.max(free, performance.now()) + 1000 * chunk.byteLength / p.downBytesPerSec;
          queue.push({ chunk, at: free + half });
          wake();
        }
      } catch (e) {
        failed = e;
      }
      ended = true;
      wake();
    })();
    return new ReadableStream<Uint8Array>({
      async pull(ctl) {
        while (!queue.length && !ended) await new Promise<void>((r) => (wake = r));
        if (!queue.length) return failed ? ctl.error(failed) : ctl.close();
        const { chunk, at } = queue.shift()!;
        await sleep(at - performance.now());
        ctl.enqueue(chunk);
      },
    }, { highWaterMark: 0 });
  };
  const forward = async (
    u: URL,
    req: Request,
    body: Uint8Array<ArrayBuffer> | ReturnType<typeof relayed> | undefined,
    upHalf: number,
  ): Promise<Response> => {
    const streamed = body && !(body instanceof Uint8Array) ? body : undefined;
    if (streamed) {
      proxy.requests++;
      streamed.setHalf(upHalf);
    }
    const res = await fetch(target + u.pathname + u.search, {
      method: req.method,
      headers: req.headers,
      body: streamed ? streamed.body : body as Uint8Array<ArrayBuffer> | undefined,
      ...(streamed ? { duplex: "half" } : {}),
    } as RequestInit);
    const downHalf = p.rttMs / 2 + jitter();
    if (!res.body) {
      await sleep(downHalf);
      return new Response(null, { status: res.status, headers: res.headers });
    }
    const delayed = downlink(res.body, downHalf);
    return new Response(delayed, { status: res.status, headers: res.headers });
  };
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen: () => {} },
    handler,
  );
  proxy.url = `http://127.0.0.1:${server.addr.port}`;
  proxy.close = async () => {
    ac.abort();
    await server.finished;
  };
  return proxy;
}
