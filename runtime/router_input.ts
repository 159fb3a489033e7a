/**
 * What the device tells the router: its engine's model and held layers, a measured
 * throughput, the network estimator's state, the edge's advertised state and the wire sizes —
 * assembled as the router contract's {@linkcode RouterInput}.
 *
 * @example
 * ```ts
 * import { measureEngineFlops, routerInputFor } from "./router_input.ts";
 * import { NetworkEstimator } from "./router/network.ts";
 * import type { Engine } from "./engine.ts";
 * declare const engine: Engine;
 * const input = routerInputFor(engine, new NetworkEstimator().state, { promptTokens: 12, maxTokens: 64 },
 *   { device: { flopsPerSec: measureEngineFlops(engine) }, wire: { prefill: "f16" } });
 * console.log(input.device.heldLayers);
 * ```
 *
 * @module
 */

import { modelProfile, rowsFlops } from "./cost.ts";
import type { Engine } from "./engine.ts";
import type {
  DeviceCapability,
  EdgeState,
  NetworkState,
  QueryFeatures,
  RouterInput,
  SpeculationProfile,
} from "./router/types.ts";
import { rowBytes, type WireDtype } from "./wire_payload.ts";

/** How the device talks to the edge, for the router's byte and time predictions. */
export interface WireChoice {
  /** Decode rows (one token, or drafts); default `f32` (exact). */
  decode?: WireDtype;
  /** Prompt rows; default `decode`. */
  prefill?: WireDtype;
  /** Rows per chunk of a pipelined prompt; 0 = off (default). */
  pipelineRows?: number;
}

/** Everything but the network and the query, as the caller knows it. */
export interface RouterContext {
  /** Device capability; `flopsPerSec` should be measured (see {@linkcode measureEngineFlops}). */
  device?: Partial<DeviceCapability>;
  /** The edge's advertised state (default: available, 1 TFLOP/s, idle, price 1 per GFLOP). */
  edgeState?: Partial<EdgeState>;
  /** Wire choices. */
  wire?: WireChoice;
  /** Observed self-speculation per split (see `RouterInput.speculation`). */
  speculation?: RouterInput["speculation"];
  /** Observed drafting variants per split. */
  draftVariants?: (SpeculationProfile[] | undefined)[];
  /** Draft streaming per split (see `RouterInput.streaming`): offered where given. */
  streaming?: RouterInput["streaming"];
  /**
   * Offer token prefill (wire 1.2; default true): a split whose row prefill would miss the TTFT
   * limit may send its prompt as token ids; an edge that cannot gets rows (the log says so).
   */
  tokenPrefill?: boolean;
  /** Weight bytes per parameter on the device (4 f32, ≈1.06 q8_0); default 4. */
  bytesPerWeight?: number;
}

/**
 * FLOP/s of `engine` on its own layers: a 32-token prefill and 16 decode steps on a scratch
 * cache (a few ms on small models).
 *
 * @example
 * ```ts
 * import { measureEngineFlops } from "./router_input.ts";
 * import type { Engine } from "./engine.ts";
 * declare const engine: Engine;
 * console.log(measureEngineFlops(engine) / 1e9, "GFLOP/s");
 * ```
 */
export function measureEngineFlops(engine: Engine): number {
  const [lo, hi] = engine.parts.layers;
  const c = engine.config;
  const cache = engine.createCache([lo, hi]);
  const x = new Float32Array(32 * c.dim).fill(0.01);
  const t0 = performance.now();
  engine.forward(cache, x, 0, lo, hi);
  for (let p = 32; p < 48; p++) engine.forward(cache, x.subarray(0, c.dim), p, lo, hi);
  const ms = Math.max(1e-3, performance.now() - t0);
  return rowsFlops(c, hi - lo, 0, 48) / (ms / 1000);
}

/**
 * The router's input for one query on `engine` (a device engine holding the embedding,
 * layers [0, H) and the head).
 *
 * @example
 * ```ts
 * import { routerInputFor } from "./router_input.ts";
 * import type { Engine } from "./engine.ts";
 * import type { NetworkState } from "./router/types.ts";
 * declare const engine: Engine; declare const net: NetworkState;
 * const input = routerInputFor(engine, net, { promptTokens: 5, maxTokens: 40 }, {});
 * ```
 */
export function routerInputFor(
  engine: Engine,
  network: NetworkState,
  query: QueryFeatures,
  ctx: RouterContext,
): RouterInput {
  const c = engine.config;
  const model = modelProfile(c, ctx.bytesPerWeight ?? 4);
  const p = engine.parts;
  const held = p.layers[0] === 0 && p.embed && p.head ? p.layers[1] : 0;
  const decode = ctx.wire?.decode ?? "f32";
  const prefill = ctx.wire?.prefill ?? decode;
  return {
    model,
    query,
    device: {
      flopsPerSec: 1e9,
      freeBytes: Infinity,
      threads: 1,
      ...ctx.device,
      heldLayers: Math.min(held, ctx.device?.heldLayers ?? held),
    },
    network,
    edge: {
      available: true,
      flopsPerSec: 1e12,
      load: 0,
      queueMs: 0,
      pricePerFlop: 1e-9,
      ...ctx.edgeState,
    },
    wire: {
      bytesPerRow: rowBytes(decode, c.dim),
      prefillBytesPerRow: rowBytes(prefill, c.dim),
      pipelineRows: prefill === "int8" ? 0 : ctx.wire?.pipelineRows ?? 0,
      requestBytes: 200,
      replyBytesPerToken: 40,
    },
    speculation: ctx.speculation,
    draftVariants: ctx.draftVariants,
    streaming: ctx.streaming,
    tokenPrefill: ctx.tokenPrefill ?? true,
  };
}
