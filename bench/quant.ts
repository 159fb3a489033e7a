/**
 * `deno task bench quant [--quick]`: what quantization costs in accuracy on stories260K, and
 * what would change it, simulated on the reference engine so each error source can be switched
 * on alone: weights rounded to q8_0 or the q4 mix (runtime/wasm_engine.ts `weightPlan`),
 * activations rounded to int8 per block of 32 as the kernels' `quantize_act` does (every
 * matmul input, the classifier's included), or to int16; each optionally after a block
 * Hadamard rotation (each block of 32 of a weight row and of its input turned by the same
 * orthogonal matrix, which leaves the products unchanged and spreads a block's outliers).
 *
 * The measure is the engine tests' (tests/wasm_engine_test.ts): top-1 agreement with the f32
 * reference, teacher-forced along its greedy continuations of 10 prompts × 512 positions
 * (`--quick`: 3 prompts × 128). The baseline, f32 everywhere, is measured in the same run
 * (100% by construction: a check of the harness). It also prints how close the reference's
 * ties are: the share of positions whose top two logits are within a margin. Deterministic: the
 * same numbers every run. Writes bench/results/quant.json and the README section.
 *
 * @module
 */

import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import type { Model } from "../runtime/model.ts";
import { markdownTable, updateReadme } from "./_readme.ts";
import { printTable, writeResults } from "./_results.ts";
import { LONG_SAMPLE_PROMPTS, topOneAgreement } from "../tests/_long_sample.ts";
import { generate } from "../runtime/generate.ts";
import { argmax } from "../runtime/sampling.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const PROMPTS = LONG_SAMPLE_PROMPTS;

/** Rounds one block of 32 values in place (a fake quantizer: values stay f32). */
type Rounder = (v: Float32Array) => void;

/** Symmetric absmax rounding to `levels` steps either side (q8_0: 127; int16: 32767). */
const symmetric = (levels: number): Rounder => (v) => {
  let amax = 0;
  for (const x of v) amax = Math.max(amax, Math.abs(x));
  const d = amax / levels;
  if (d === 0) return;
  for (let j = 0; j < 32; j++) v[j] = Math.max(-levels, Math.min(levels, Math.round(v[j] / d))) * d;
};

/** q4_0 as ggml rounds it: the signed absmax maps to -8, quants in [-8, 7]. */
const q4: Rounder = (v) => {
  let amax = 0, max = 0;
  for (const x of v) {
    if (Math.abs(x) > amax) {
      amax = Math.abs(x);
      max = x;
    }
  }
  const d = max / -8;
  if (d === 0) return;
  for (let j = 0; j < 32; j++) v[j] = Math.max(-8, Math.min(7, Math.round(v[j] / d))) * d;
};

/** The orthonormal Walsh-Hadamard transform of 32 values, in place (its own inverse). */
function hadamard(v: Float32Array): void {
  for (let h = 1; h < 32; h *= 2) {
    for (let i = 0; i < 32; i += 2 * h) {
      for (let j = i; j < i + h; j++) {
        const a = v[j], b = v[j + h];
        v[j] = a + b;
        v[j + h] = a - b;
      }
    }
  }
  for (let j = 0; j < 32; j++) v[j] /= Math.sqrt(32);
}

/**
 * Rounds each block of 32 of each row of x: [rows, cols] in place with `round`, rotated
 * before and back after when `rotate` (a short last block is rounded unrotated).
 */
function fakeQuant(x: Float32Array, cols: number, round: Rounder, rotate: boolean): void {
  const block = new Float32Array(32);
  for (let r = 0; r < x.length / cols; r++) {
    for (let lo = r * cols; lo < (r + 1) * cols; lo += 32) {
      const hi = Math.min(lo + 32, (r + 1) * cols);
      block.fill(0);
      block.set(x.subarray(lo, hi));
      const turn = rotate && hi - lo === 32;
      if (turn) hadamard(block);
      round(block);
      if (turn) hadamard(block);
      x.set(block.subarray(0, hi - lo), lo);
    }
  }
}

/** One simulated configuration. */
interface Variant {
  name: string;
  /** Weight rounding: none, q8_0 everywhere, or the q4 mix. */
  weights?: "q8" | "q4mix";
  /** Activation rounding: none, int8 or int16 per block of 32. */
  acts?: "int8" | "int16";
  rotate?: boolean;
}

const VARIANTS: Variant[] = [
  { name: "f32 (baseline)" },
  { name: "q8_0 weights", weights: "q8" },
  { name: "int8 activations", acts: "int8" },
  { name: "q8_0 weights + int8 activations (the q8 engine)", weights: "q8", acts: "int8" },
  { name: "q8_0 weights + int16 activations", weights: "q8", acts: "int16" },
  { name: "q8_0 weights, rotated", weights: "q8", rotate: true },
  { name: "int8 activations, rotated", acts: "int8", rotate: true },
  { name: "q8_0 + int8, rotated", weights: "q8", acts: "int8", rotate: true },
  { name: "q8_0 + int16, rotated", weights: "q8", acts: "int16", rotate: true },
  { name: "q4 mix + int8 activations (the q4 engine)", weights: "q4mix", acts: "int8" },
  { name: "q4 mix + int8, rotated", weights: "q4mix", acts: "int8", rotate: true },
];

/** The q4 mix of `weightPlan("q4")`: q8_0 for the classifier, wv, w2 and the end layers. */
function q4MixRounder(name: string, layers: number): Rounder {
  const eight = name === "embed" || name === "output" || name.startsWith("layers.0.") ||
    name.startsWith(`layers.${layers - 1}.`) || /\.(wv|w2)$/.test(name);
  return eight ? symmetric(127) : q4;
}

/** Runs the bench; prints the table, writes results/quant.json and the README section. */
export async function run(args: string[]): Promise<void> {
  const quick = args.includes("--quick");
  const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
  const { nLayers: L, vocabSize: V } = model.config;
  const prompts = quick ? PROMPTS.slice(0, 3) : PROMPTS;
  const length = quick ? 128 : 512;
  const logitsOf = (e: RefEngine, s: number[]) =>
    e.head(e.forward(e.createCache(), e.embed(s), 0, 0, L));
  const ref = new RefEngine(model);
  // The reference's greedy continuation of each prompt (the engine tests' samples).
  const samples = prompts.map((p) => [
    ...p,
    ...generate(ref, p, { maxTokens: length - p.length, stopAtEos: false }),
  ]);
  const refLogits = samples.map((s) => logitsOf(ref, s));

  const margins: number[] = [];
  for (const [i, s] of samples.entries()) {
    for (let t = 0; t < s.length; t++) {
      const lg = refLogits[i].subarray(t * V, (t + 1) * V);
      const top = argmax(lg);
      let second = -Infinity;
      for (let j = 0; j < V; j++) if (j !== top && lg[j] > second) second = lg[j];
      margins.push(lg[top] - second);
    }
  }
  const ties = [0.01, 0.03, 0.1].map((m) => ({
    margin: m,
    share: margins.filter((x) => x < m).length / margins.length,
  }));

  const rows: { variant: string; agreement: number }[] = [];
  for (const v of VARIANTS) {
    const tensors = new Map(model.tensors);
    if (v.weights) {
      for (const [name, t] of model.tensors) {
        if (t.shape.length !== 2) continue;
        const data = (t.data as Float32Array).slice();
        const round = v.weights === "q8" ? symmetric(127) : q4MixRounder(name, L);
        fakeQuant(data, t.shape[1], round, v.rotate ?? false);
        tensors.set(name, { ...t, data });
      }
    }
    const simulated: Model = { ...model, tensors };
    const actRound = v.acts === "int8" ? symmetric(127) : v.acts ? symmetric(32767) : undefined;
    const e = new RefEngine(simulated, {
      // Every matmul input, rounded in place as the kernels quantize it.
      tap: actRound
        ? (_, x, n) => fakeQuant(x, x.length / n, actRound, v.rotate ?? false)
        : undefined,
    });
    const agreement = topOneAgreement(samples.map((s) => logitsOf(e, s)), refLogits, V);
    rows.push({ variant: v.name, agreement });
    console.error(`${v.name}: ${(100 * agreement).toFixed(2)}%`);
  }

  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const table = [["variant", "top-1 agreement"], ...rows.map((r) => [r.variant, pct(r.agreement)])];
  printTable(table);
  const positions = margins.length;
  const tieText = ties.map((t) => `${pct(t.share)} within ${t.margin}`).join(", ");
  console.log(`reference's top two logits: ${tieText} (${positions} positions)`);
  const path = await writeResults(quick ? "quant-quick" : "quant", {
    quick,
    prompts: prompts.length,
    length,
    positions,
    ties,
    rows,
  });
  console.log(`wrote ${path}`);
  await updateReadme(
    "quant",
    `## quant${quick ? " (--quick)" : ""}\n\n` +
      `Accuracy of quantization on stories260K, simulated on the reference engine (each error ` +
      `source alone or together; "rotated": a block Hadamard rotation of weights and inputs ` +
      `before rounding), as top-1 agreement with f32 over ${positions} teacher-forced positions ` +
      `(${prompts.length} prompts × ${length}). The engines' own figures (tests/` +
      `wasm_engine_test.ts) differ by a few tenths: their sums run in another order. The ` +
      `reference's top two logits are close at many positions (${tieText}), so a little ` +
      `rounding noise flips them: with q8_0 weights, int8 activations stay below 99% even ` +
      `rotated; only int16 activations on rotated q8_0 weights reach it (no kernel runs that ` +
      `format yet), and 4-bit weights stay far from it (issue 3).\n\n` +
      markdownTable(table),
  );
}
