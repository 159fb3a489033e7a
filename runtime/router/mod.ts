/**
 * The router: decides per query whether to answer on the device (`local`), split at layer K
 * (`split`), or on the edge (`cloud`), and per step whether the early-exit token is emitted,
 * drafted or sent — each decision with its reason and its predicted cost and latency.
 *
 * Pure: no host APIs, nothing from the edge, no other tandem module. The runtime adapts a
 * model config with `runtime/cost.ts` (`modelProfile`).
 *
 * @example
 * ```ts
 * import { DefaultPolicy, NetworkEstimator } from "./mod.ts";
 * import type { RouterInput } from "./mod.ts";
 * declare const input: RouterInput;
 * const net = new NetworkEstimator();
 * net.observe({ wallMs: 61, bytesUp: 300, bytesDown: 90, serverMs: 1 });
 * const decision = new DefaultPolicy().decide({ ...input, network: net.state });
 * console.log(decision.route, decision.split, decision.reason);
 * ```
 *
 * @module
 */

export * from "./types.ts";
export { confidenceOf } from "./confidence.ts";
export { type EstimatorOptions, NetworkEstimator, type RequestSample } from "./network.ts";
export { TtftCorrector, type TtftCorrectorOptions } from "./ttft_corrector.ts";
export { maxDeviceLayers, predictAll, predictSplit } from "./cost_model.ts";
export { predictStreamed } from "./stream_model.ts";
export {
  DEFAULT_THRESHOLDS,
  DefaultPolicy,
  FixedPolicy,
  localFallback,
  type Thresholds,
} from "./policy.ts";
export { MetricsRecorder, type RequestMetrics, type RoundTripSample } from "./accounting.ts";
export { type Labels, Metric, MetricRegistry, parsePrometheus, type Sample } from "./prometheus.ts";
