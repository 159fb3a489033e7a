/**
 * Local generation with the device's early-exit head: embedding, layers [0, H) and the final
 * norm + classifier applied after layer H. With H = L this is the whole model; with H < L the
 * tokens may differ from the whole model's (the router flags them `degraded`).
 *
 * @example
 * ```ts
 * import { earlyExitGenerate } from "./early_exit.ts";
 * import type { Engine } from "./engine.ts";
 * declare const engine: Engine; // embedding, layers [0, H), head
 * for (const token of earlyExitGenerate(engine, [1], 20)) console.log(token);
 * ```
 *
 * @module
 */

import type { Engine } from "./engine.ts";
import { check } from "./errors.ts";
import { draftLogits, type ExitAdapter } from "./exit_adapter.ts";
import { argmax } from "./sampling.ts";

/**
 * Greedy tokens for `context` from layers [0, H) (all the device holds) and the head, which
 * reads layer H's rows through `adapter` when given (fitted for H; `exit_adapter.ts`).
 *
 * @example
 * ```ts
 * import { earlyExitGenerate } from "./early_exit.ts";
 * import type { Engine } from "./engine.ts";
 * declare const engine: Engine;
 * console.log([...earlyExitGenerate(engine, [1, 42], 5, false)]);
 * ```
 */
export function* earlyExitGenerate(
  engine: Engine,
  context: readonly number[],
  maxTokens: number,
  stopAtEos = true,
  adapter?: ExitAdapter,
): Generator<number, void, void> {
  const c = engine.config;
  const [lo, H] = engine.parts.layers;
  check(
    lo === 0 && engine.parts.embed && engine.parts.head,
    "bad_argument",
    "Cannot exit early: the device needs the embedding, layers from 0 and the head",
  );
  check(context.length > 0, "bad_argument", "Cannot generate: empty context");
  const exit = H < c.nLayers ? adapter : undefined; // after the last layer the head is exact
  const stops = new Set(stopAtEos ? [...c.eosIds, c.bosId] : []);
  const cache = engine.createCache([0, H]);
  let h = engine.forward(cache, engine.embed(context), 0, 0, H);
  let pos = context.length;
  const budget = Math.min(maxTokens, c.maxSeqLen - pos + 1);
  for (let i = 0; i < budget; i++) {
    const next = argmax(draftLogits(engine, h.subarray(h.length - c.dim), H, exit));
    if (stops.has(next)) return;
    yield next;
    if (i + 1 === budget || pos >= c.maxSeqLen) return;
    h = engine.forward(cache, engine.embed([next]), pos++, 0, H);
  }
}
