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

const KINDS: ReadonlySet<string> = new Set<PrefillKind>(["pipelined", "rows", "ids"]);

/** Settings of a {@linkcode TtftCorrector}. */
export interface TtftCorrectorOptions {
  /** Corrections to start from, e.g. a saved `state` (default none). */
  prior?: TtftBias;
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

  /**
   * Starts from `options.prior` (say, the `state` an app saved last time), else with no
   * correction. Throws `RangeError` for a weight outside (0, 1], a negative bound, or a prior
   * with an unknown kind or a non-finite value.
   */
  constructor(options: TtftCorrectorOptions = {}) {
    this.#weight = options.weight ?? 1 / 4;
    this.#maxMs = options.maxMs ?? 1000;
    const prior = Object.entries(options.prior ?? {});
    const ok = this.#weight > 0 && this.#weight <= 1 && this.#maxMs >= 0 &&
      prior.every(([k, v]) => KINDS.has(k) && Number.isFinite(v));
    if (!ok) {
      throw new RangeError(
        `Cannot make a TTFT corrector: weight ${this.#weight} must be in (0, 1], maxMs ${this.#maxMs} ≥ 0, and the prior finite corrections of ${
          [...KINDS].join(", ")
        } (got ${JSON.stringify(options.prior)})`,
      );
    }
    for (const [k, v] of prior) {
      this.#bias[k as PrefillKind] = Math.max(-this.#maxMs, Math.min(this.#maxMs, v!));
    }
  }

  /** The corrections to add to predicted TTFTs, ms (a copy; absent kinds: none yet). */
  get state(): TtftBias {
    return { ...this.#bias };
  }

  /**
   * Folds in one query: `predictedMs` is the prediction the route was chosen on (the current
   * correction included), `measuredMs` the time from that decision to the first token.
   * Ignores unknown kinds and non-finite or negative times.
   */
  observe(kind: PrefillKind, measuredMs: number, predictedMs: number): void {
    const fine = KINDS.has(kind) && Number.isFinite(measuredMs) && Number.isFinite(predictedMs) &&
      measuredMs >= 0;
    if (!fine) return;
    this.samples++;
    const b = this.#bias[kind] ?? 0;
    const next = b + this.#weight * (measuredMs - predictedMs);
    this.#bias[kind] = Math.max(-this.#maxMs, Math.min(this.#maxMs, next));
  }
}
