/**
 * The early-exit head's confidence: softmax top-1 probability, top-1/top-2 margin and entropy
 * of one row of logits (the final norm + classifier applied after layer K).
 *
 * @example
 * ```ts
 * import { confidenceOf } from "./confidence.ts";
 * const c = confidenceOf(new Float32Array([0, 4, 1]));
 * console.log(c.token, c.top1.toFixed(2)); // 1 0.94
 * ```
 *
 * @module
 */

import type { Confidence } from "./types.ts";

/**
 * Confidence of logits[off .. off+vocab). Numerically stable (max-subtracted softmax);
 * the first maximum wins ties, as greedy sampling does.
 *
 * @example
 * ```ts
 * import { confidenceOf } from "./confidence.ts";
 * console.log(confidenceOf(new Float32Array([1, 1])).entropy.toFixed(3)); // 0.693
 * ```
 */
export function confidenceOf(
  logits: ArrayLike<number>,
  off = 0,
  vocab: number = logits.length - off,
): Confidence {
  let best = 0;
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) {
    if (logits[off + i] > max) {
      max = logits[off + i];
      best = i;
    }
  }
  let sum = 0;
  let second = 0;
  for (let i = 0; i < vocab; i++) {
    const e = Math.exp(logits[off + i] - max);
    sum += e;
    if (i !== best && e > second) second = e;
  }
  let entropy = 0;
  for (let i = 0; i < vocab; i++) {
    const p = Math.exp(logits[off + i] - max) / sum;
    if (p > 0) entropy -= p * Math.log(p);
  }
  const top1 = 1 / sum;
  return { token: best, top1, margin: top1 - second / sum, entropy };
}
