// Test helper: an edge app served on loopback for the length of a callback.
import { createEdgeApp, type EdgeOptions } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";

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
