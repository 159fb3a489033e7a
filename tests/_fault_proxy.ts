/**
 * A fault-injecting HTTP proxy on loopback for the fault tests: forwards every request to a
 * target with `fetch`, and for each request asks a plan what to do — pass it; drop it before
 * the target sees it; drop the answer after the target has acted on it (a dropped request or
 * answer is never answered: the client sees silence until its timeout, as on a black-holed
 * link); answer 502 after the target acted (a gateway that lost the upstream connection); or
 * delay it.
 *
 * @example
 * ```ts
 * import { startFaultProxy } from "./_fault_proxy.ts";
 * const proxy = startFaultProxy("http://127.0.0.1:8787", (req, i) => i === 3 ? "drop-answer" : "pass");
 * // … point a device at proxy.url …
 * await proxy.close();
 * ```
 *
 * @module
 */

/** What the proxy does with one request. */
export type Fault =
  | "pass"
  | "drop-request"
  | "drop-answer"
  | "bad-gateway"
  | { delayMs: number };

/** A running proxy. */
export interface FaultProxy {
  /** Base URL to point a client at. */
  url: string;
  /** Requests seen, and what was done with them. */
  log: { method: string; path: string; fault: string }[];
  /** Changes the target (e.g. to a restarted edge on another port). */
  retarget(url: string): void;
  /** Stops the proxy (and any delayed request). */
  close(): Promise<void>;
}

/** Resolves after `ms` (never, when Infinity), or as soon as a signal aborts. */
function wait(ms: number, ...signals: AbortSignal[]): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = Number.isFinite(ms) ? setTimeout(resolve, ms) : undefined;
    const stop = () => {
      clearTimeout(timer);
      resolve();
    };
    for (const s of signals) s.addEventListener("abort", stop, { once: true });
  });
}

const gone = (): Response => new Response("dropped", { status: 502 });

/**
 * Starts a proxy to `target`; `plan(request, index)` picks each request's fault (index counts
 * every request from 0).
 */
export function startFaultProxy(
  target: string,
  plan: (request: Request, index: number) => Fault,
): FaultProxy {
  let base = target;
  let index = 0;
  const log: FaultProxy["log"] = [];
  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      const fault = plan(req, index++);
      log.push({ method: req.method, path: url.pathname, fault: JSON.stringify(fault) });
      if (fault === "drop-request") {
        await req.body?.cancel();
        await wait(Infinity, req.signal, ac.signal);
        return gone(); // the client has given up: nobody reads this
      }
      if (typeof fault === "object") {
        await wait(fault.delayMs, req.signal, ac.signal);
        if (req.signal.aborted || ac.signal.aborted) return gone();
      }
      let res: Response;
      try {
        const body = req.body ? new Uint8Array(await req.arrayBuffer()) : undefined;
        res = await fetch(base + url.pathname + url.search, {
          method: req.method,
          headers: req.headers,
          body,
        });
      } catch {
        return new Response("edge unreachable", { status: 502 }); // like a real gateway
      }
      const bytes = new Uint8Array(await res.arrayBuffer()); // the target has fully answered
      if (fault === "drop-answer") {
        await wait(Infinity, req.signal, ac.signal);
        return gone();
      }
      if (fault === "bad-gateway") return new Response("upstream connection lost", { status: 502 });
      return new Response(res.status === 204 ? null : bytes, {
        status: res.status,
        headers: res.headers,
      });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    log,
    retarget: (url: string) => {
      base = url;
    },
    close: async () => {
      ac.abort();
      await server.finished;
    },
  };
}
