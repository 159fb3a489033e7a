/**
 * Learning the cost model's error on time to first token from a device's own queries: per
 * prefill kind (the prompt as rows; as token ids, all-cloud's path), an exponentially weighted mean
 * of measured minus predicted TTFT, which the cost model then adds to its predictions
 * (`RouterInput.ttftBiasMs`).
 *
 * What it catches is what the model cannot see: a host whose streamed request bodies stall
 * (Deno's `fetch` without TCP_NODELAY holds the last chunk of a pipelined prompt ~40 ms), a
 * proxy that buffers uploads, an edge slower to answer its first token than it advertises.
 * Keep one per device and edge for the app's lifetime, as the network estimator.
 *
 * @example
 * ```ts
 * import { TtftCorrector } from "./ttft_corrector.ts";
 * const ttft = new TtftCorrector();
 * ttft.observe("rows", 52, 12); // the prompt's rows took 40 ms longer than predicted
 * console.log(ttft.state.rows); // 10: a quarter of the gap, at the default weight
 * ```
 *
 * @module
 */

import type { PrefillKind, TtftBias } from "./types.ts";

/** Settings of a {@linkcode TtftCorrector}. */
export interface TtftCorrectorOptions {
  /** EWMA weight of a new sample (default 1/4). */
  weight?: number;
  /** Largest correction either way, ms (default 1000): one wild sample cannot run away. */
  maxMs?: number;
}

/** Per prefill kind, the smoothed gap between measured and predicted time to first token. */
export class TtftCorrector {
  /** Samples observed, all kinds. */
  samples = 0;
  readonly #bias: TtftBias = {};
  readonly #weight: number;
  readonly #maxMs: number;

  /** Starts with no correction. */
  constructor(options: TtftCorrectorOptions = {}) {
    this.#weight = options.weight ?? 1 / 4;
    this.#maxMs = options.maxMs ?? 1000;
  }

  /** The corrections to add to predicted TTFTs, ms (a copy; absent kinds: none yet). */
  get state(): TtftBias {
    return { ...this.#bias };
  }

  /**
   * Folds in one query: `predictedMs` is the prediction the route was chosen on (the current
   * correction included), `measuredMs` the time from that decision to the first token.
   * Ignores non-finite or negative times.
   */
  observe(kind: PrefillKind, measuredMs: number, predictedMs: number): void {
    if (!(Number.isFinite(measuredMs) && Number.isFinite(predictedMs) && measuredMs >= 0)) return;
    this.samples++;
    const b = this.#bias[kind] ?? 0;
    const next = b + this.#weight * (measuredMs - predictedMs);
    this.#bias[kind] = Math.max(-this.#maxMs, Math.min(this.#maxMs, next));
  }
}
