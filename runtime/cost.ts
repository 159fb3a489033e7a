/**
 * FLOP counts and the router's {@linkcode ModelProfile} for a model config: the bridge between
 * the runtime's model description and the host-free router contract.
 *
 * @example
 * ```ts
 * import { modelProfile, rowsFlops } from "./cost.ts";
 * import type { ModelConfig } from "./model.ts";
 * declare const config: ModelConfig;
 * const profile = modelProfile(config);
 * console.log(profile.layerFlops(10), rowsFlops(config, 2, 0, 5));
 * ```
 *
 * @module
 */

import { expectedShapes, headFlops, layerFlops, type ModelConfig } from "./model.ts";
import type { ModelProfile } from "./router/types.ts";

/**
 * FLOPs of `n` consecutive tokens at positions pos..pos+n-1 through `layers` layers (the
 * token at position p attends to p + 1 positions).
 *
 * @example
 * ```ts
 * import { rowsFlops } from "./cost.ts";
 * import type { ModelConfig } from "./model.ts";
 * declare const config: ModelConfig;
 * console.log(rowsFlops(config, config.nLayers, 0, 1)); // one token through the whole model
 * ```
 */
export function rowsFlops(config: ModelConfig, layers: number, pos: number, n: number): number {
  let f = 0;
  for (let i = 0; i < n; i++) f += layerFlops(config, pos + i + 1);
  return layers * f;
}

/**
 * FLOPs of generating `produced` tokens after a prompt of `prompt` tokens through `layers`
 * layers (default: the whole model) and a head per token: prompt + produced − 1 rows (the last
 * token is answered, never run), `head` FLOPs a token (default the model's head). How all-cloud,
 * a local early exit and the edge's generation routes are counted everywhere.
 *
 * @example
 * ```ts
 * import { generationFlops } from "./cost.ts";
 * import type { ModelConfig } from "./model.ts";
 * declare const config: ModelConfig;
 * console.log(generationFlops(config, 12, 40)); // all-cloud: 12 prompt tokens, 40 answered
 * ```
 */
export function generationFlops(
  config: ModelConfig,
  prompt: number,
  produced: number,
  layers: number = config.nLayers,
  head: number = headFlops(config),
): number {
  return rowsFlops(config, layers, 0, prompt + Math.max(0, produced - 1)) + produced * head;
}

/**
 * The router's view of a model: per-layer FLOPs and weight bytes (`bytesPerWeight` 4 for f32,
 * about 1.06 for q8_0, 0.56 for q4_0).
 *
 * @example
 * ```ts
 * import { modelProfile } from "./cost.ts";
 * import type { ModelConfig } from "./model.ts";
 * declare const config: ModelConfig;
 * console.log(modelProfile(config, 1.0625).layerBytes);
 * ```
 */
export function modelProfile(config: ModelConfig, bytesPerWeight = 4): ModelProfile {
  const shapes = expectedShapes(config, { layers: [0, 1], embed: true, head: true });
  let layer = 0;
  let base = 0;
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (name.startsWith("layers.")) layer += n;
    else base += n;
  }
  return {
    nLayers: config.nLayers,
    dim: config.dim,
    layerFlops: (ctx: number) => layerFlops(config, ctx),
    headFlops: headFlops(config),
    layerBytes: layer * bytesPerWeight,
    baseBytes: base * bytesPerWeight,
  };
}
