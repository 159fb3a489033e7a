// Test helper: an edge app served on loopback for the length of a callback.
import { createEdgeApp, type EdgeOptions } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";
import { startFaultProxy } from "./_fault_proxy.ts";

/** Serves an edge with `options` on loopback, runs `fn(url)`, then stops and frees it. */
export async function withEdge(
  options: EdgeOptions,
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const edge = await createEdgeApp(options);
  const server = serveEdge(edge.fetch);
  try {
    await fn(server.url);
  } finally {
    await server.close();
    edge.dispose();
  }
}

/**
 * Two edges with `options` behind a proxy: on the `after`-th `/forward` request edge A drops
 * every session it holds (it "restarts") and the proxy sends that request and all later ones
 * to edge B. Runs `fn(proxyUrl, forwards)` (`forwards()`: `/forward` requests so far), then
 * stops and frees everything.
 */
export async function withRestartingEdge(
  options: EdgeOptions,
  after: number,
  fn: (url: string, forwards: () => number) => Promise<void>,
): Promise<void> {
  const a = await createEdgeApp(options);
  const b = await createEdgeApp(options);
  const sa = serveEdge(a.fetch);
  const sb = serveEdge(b.fetch);
  let forwards = 0;
  const proxy = startFaultProxy(sa.url, (req) => {
    if (new URL(req.url).pathname.endsWith("/forward") && ++forwards === after) {
      a.sessions.clear();
      proxy.retarget(sb.url);
    }
    return "pass";
  });
  try {
    await fn(proxy.url, () => forwards);
  } finally {
    await proxy.close();
    await sa.close();
    await sb.close();
    a.dispose();
    b.dispose();
  }
}
