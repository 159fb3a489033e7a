/**
 * The long sample that quantized engines are measured on (top-1 agreement,
 * teacher-forced along the f32 reference's greedy continuation of each, 512 positions): shared
 * by tests/wasm_engine_test.ts and `deno task bench quant`, so both measure the same thing.
 *
 * @module
 */

import { argmax } from "../runtime/sampling.ts";

/** Ten stories260K prompts (BOS first; [1] alone is the published story). */
export const LONG_SAMPLE_PROMPTS: readonly (readonly number[])[] = [
  [1],
  [1, 261, 350],
  [1, 88],
  [1, 320, 274],
  [1, 500],
  [1, 403, 7],
  [1, 29],
  [1, 150, 45],
  [1, 77],
  [1, 410, 300],
];

/**
 * The share of positions where `logits` and `reference` pick the same top token: both lists of
 * [n, vocab] logits, sample by sample (the first highest wins a tie, as `argmax` picks).
 */
export function topOneAgreement(
  logits: readonly Float32Array[],
  reference: readonly Float32Array[],
  vocab: number,
): number {
  let same = 0, total = 0;
  for (const [i, lg] of logits.entries()) {
    for (let off = 0; off < lg.length; off += vocab) {
      if (argmax(lg, off, vocab) === argmax(reference[i], off, vocab)) same++;
      total++;
    }
  }
  return same / total;
}
