/**
 * The generation loop over any {@linkcode Engine}: prefill the prompt in one pass, then
 * decode one token at a time until EOS or the token budget.
 *
 * @example
 * ```ts
 * import { generate } from "./generate.ts";
 * import type { Engine } from "./engine.ts";
 * declare const engine: Engine;
 * for (const token of generate(engine, [1], { maxTokens: 20 })) console.log(token);
 * ```
 *
 * @module
 */

import type { Engine } from "./engine.ts";
import { TandemError } from "./errors.ts";
import { Sampler, type SamplerOptions } from "./sampling.ts";

/** Options of {@linkcode generate}. */
export interface GenerateOptions extends SamplerOptions {
  /** Most tokens to produce (default 256; clipped to the context). */
  maxTokens?: number;
  /** Stop at an EOS/BOS token (default true); the stop token is not yielded. */
  stopAtEos?: boolean;
}

/**
 * Yields generated token ids for a prompt (which must be non-empty; start with BOS for an
 * empty text prompt). Runs the whole model held by `engine`.
 */
export function* generate(
  engine: Engine,
  prompt: readonly number[],
  options: GenerateOptions = {},
): Generator<number, void, void> {
  const { maxTokens = 256, stopAtEos = true } = options;
  const c = engine.config;
  if (prompt.length === 0) throw new TandemError("bad_argument", "Cannot generate: empty prompt");
  if (prompt.length >= c.maxSeqLen) {
    throw new TandemError(
      "bad_argument",
      `Cannot generate: prompt is ${prompt.length} tokens, the context holds ${c.maxSeqLen}`,
    );
  }
  if (!(Number.isInteger(maxTokens) && maxTokens >= 0)) {
    throw new TandemError("bad_argument", `maxTokens must be a whole number, got ${maxTokens}`);
  }
  const sampler = new Sampler(options);
  const stops = new Set([...c.eosIds, c.bosId]);
  const cache = engine.createCache();
  const L = c.nLayers;
  let h = engine.forward(cache, engine.embed(prompt), 0, 0, L);
  let pos = prompt.length;
  const budget = Math.min(maxTokens, c.maxSeqLen - pos + 1);
  for (let i = 0; i < budget; i++) {
    const logits = engine.head(h.subarray(h.length - c.dim));
    const next = sampler.sample(logits);
    if (stopAtEos && stops.has(next)) return;
    yield next;
    if (i + 1 === budget || pos >= c.maxSeqLen) return;
    h = engine.forward(cache, engine.embed([next]), pos, 0, L);
    pos++;
  }
}
