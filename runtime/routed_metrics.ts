/**
 * Sums the metrics of the routes one query took (a fallback adds a route) into one record,
 * with the query's own clock for time to first token and tokens per second.
 *
 * @example
 * ```ts
 * import { combineMetrics } from "./routed_metrics.ts";
 * import type { RequestMetrics } from "./router/accounting.ts";
 * declare const overall: RequestMetrics; declare const parts: RequestMetrics[];
 * console.log(combineMetrics(overall, parts).edgeFlops);
 * ```
 *
 * @module
 */

import type { RequestMetrics } from "./router/accounting.ts";

const SUMMED = [
  "localTokens",
  "deviceFlops",
  "edgeFlops",
  "bytesUp",
  "bytesDown",
  "roundTrips",
  "edgeRows",
  "drafted",
  "accepted",
] as const;

/**
 * One record for a query: `overall` gives the clock and token count, `parts` the costs; route
 * and split are the first part's.
 *
 * @example
 * ```ts
 * import { combineMetrics } from "./routed_metrics.ts";
 * import { MetricsRecorder } from "./router/accounting.ts";
 * const a = new MetricsRecorder({ route: "split", split: 3, promptTokens: 4 });
 * a.flops(10, 5);
 * const m = combineMetrics(a.finish(), [a.finish(), a.finish()]);
 * console.log(m.edgeFlops); // 10
 * ```
 */
export function combineMetrics(overall: RequestMetrics, parts: RequestMetrics[]): RequestMetrics {
  const m: RequestMetrics = { ...overall, ...(parts[0] && { route: parts[0].route }) };
  if (parts[0]) m.split = parts[0].split;
  for (const k of SUMMED) m[k] = parts.reduce((a, p) => a + p[k], 0);
  const total = m.deviceFlops + m.edgeFlops;
  m.edgeShare = total > 0 ? m.edgeFlops / total : 0;
  // Decode tokens per decode round trip, over the parts that made round trips.
  const trips = parts.reduce(
    (a, p) => a + (p.tokensPerRoundTrip > 0 ? Math.max(0, p.tokens - 1) / p.tokensPerRoundTrip : 0),
    0,
  );
  const decoded = parts.reduce((a, p) => a + (p.tokensPerRoundTrip > 0 ? p.tokens - 1 : 0), 0);
  m.tokensPerRoundTrip = trips > 0 ? decoded / trips : 0;
  return m;
}
