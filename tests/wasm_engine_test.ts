// The wasm engine against the reference engine on the fixture model: f32 logits within 1e-4,
// q8/q4 greedy tokens and teacher-forced top-1 agreement (10 prompts × 512 positions)
// measured and asserted, threads, layer ranges, weight plans, and the reference fallback.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { createEngine } from "../runtime/create_engine.ts";
import { type EngineQuant, WasmEngine, type WeightPlan } from "../runtime/wasm_engine.ts";
import { TandemError } from "../runtime/errors.ts";
import type { CalibrationOptions } from "../runtime/calibrate.ts";
import type { Engine } from "../runtime/engine.ts";
import { relErr } from "./_rand.ts";
import { LONG_SAMPLE_PROMPTS, topOneAgreement } from "./_long_sample.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)), "stories260K.bin");
const ref = new RefEngine(model);
const { nLayers: L, vocabSize: V } = model.config;

function argmax(a: Float32Array, off = 0): number {
  let b = 0;
  for (let i = 1; i < V; i++) if (a[off + i] > a[off + b]) b = i;
  return b;
}

/** Greedy decoding from BOS, one token at a time. */
function greedy(e: Engine, steps: number): number[] {
  const cache = e.createCache();
  const out = [1];
  for (let p = 0; p < steps; p++) {
    out.push(argmax(e.head(e.forward(cache, e.embed([out[p]]), p, 0, L))));
  }
  return out;
}

/** Logits of a whole sequence in one prefill: [n, vocab]. */
function prefill(e: Engine, seq: number[]): Float32Array {
  return e.head(e.forward(e.createCache(), e.embed(seq), 0, 0, L));
}

/** Greedy continuation of `prompt` to `total` tokens (prefill, then one token at a time). */
function continuation(e: Engine, prompt: readonly number[], total: number): number[] {
  const cache = e.createCache();
  const out = [...prompt];
  let lg = e.head(e.forward(cache, e.embed(prompt), 0, 0, L));
  out.push(argmax(lg, (prompt.length - 1) * V));
  while (out.length < total) {
    const p = out.length - 1;
    lg = e.head(e.forward(cache, e.embed([out[p]]), p, 0, L));
    out.push(argmax(lg));
  }
  return out;
}

// The published story: the reference's greedy continuation of BOS over the whole context.
const SAMPLE = greedy(ref, 511);
const REF_LOGITS = prefill(ref, SAMPLE);
// The long sample: the reference's greedy continuations of 10 prompts, 512 positions each.
const PROMPTS = LONG_SAMPLE_PROMPTS;
const SAMPLES = PROMPTS.map((p) => p.length === 1 ? SAMPLE : continuation(ref, p, 512));
const SAMPLES_LOGITS = SAMPLES.map((s) => s === SAMPLE ? REF_LOGITS : prefill(ref, s));

Deno.test("f32: logits within 1e-4 of the reference, decode and prefill, 1 and 2 threads", async () => {
  for (const threads of [1, 2]) {
    const e = await WasmEngine.create(model, { quant: "f32", threads });
    try {
      assert.equal(e.name, `wasm-f32x${threads}`);
      const lg = prefill(e, SAMPLE);
      assert.ok(relErr(lg, REF_LOGITS) < 1e-4, `prefill: ${relErr(lg, REF_LOGITS)}`);
      const cache = e.createCache(), rc = ref.createCache();
      for (let p = 0; p < 40; p++) {
        const a = e.head(e.forward(cache, e.embed([SAMPLE[p]]), p, 0, L));
        const b = ref.head(ref.forward(rc, ref.embed([SAMPLE[p]]), p, 0, L));
        assert.ok(relErr(a, b) < 1e-4, `decode step ${p}: ${relErr(a, b)}`);
      }
    } finally {
      e.dispose();
    }
  }
});

Deno.test("f32: a split run ([0,2) then [2,L) with separate caches) equals a full run", async () => {
  const e = await WasmEngine.create(model);
  try {
    const x = e.embed(SAMPLE.slice(0, 20));
    const full = e.forward(e.createCache(), x, 0, 0, L);
    const c0 = e.createCache([0, 2]), c1 = e.createCache([2, L]);
    const split = e.forward(c1, e.forward(c0, x, 0, 0, 2), 0, 2, L);
    assert.deepEqual(split, full);
  } finally {
    e.dispose();
  }
});

/**
 * Top-1 agreement with the reference, teacher-forced along SAMPLES (5120 positions), and how
 * many greedy tokens of the published story (SAMPLE) come out identical.
 */
async function quality(
  quant: EngineQuant,
  threads: number,
  plan?: WeightPlan,
  calibration?: CalibrationOptions,
): Promise<{ agree: number; prefix: number; tokens: number[] }> {
  const e = await WasmEngine.create(model, { quant, threads, plan, calibration });
  try {
    const agree = topOneAgreement(SAMPLES.map((s) => prefill(e, s)), SAMPLES_LOGITS, V);
    const tokens = greedy(e, 80);
    let prefix = 0;
    while (prefix < tokens.length && tokens[prefix] === SAMPLE[prefix]) prefix++;
    return { agree, prefix: prefix - 1, tokens };
  } finally {
    e.dispose();
  }
}

// Measured on stories260K (dim 64, the most quantization-sensitive model there is; every mix
// tried is in runtime/wasm_engine.ts): q8 agrees on 98.5% of 5120 positions and decodes the
// story's first four sentences (71 tokens) exactly; q4 (Q4_K_M-like mix) agrees on 89.7% and
// decodes the first two sentences (43 tokens). The 99% is out of reach on this model
// with int8 activations: the f32 reference with f32 weights and int8 activations alone agrees
// on ~98.9%, on dequantized q8_0 weights alone on 98.7% (GPTQ: 99.0%, below). The bounds below
// are the measurements, rounded down, so a regression of a few positions fails. q8 moves with
// the kernels' f32 summation order alone (same integers): 98.52% relaxed / 98.36% simd128 with
// per-lane sums, 98.24% / 98.28% with exact per-block sums (tile-block records, issue 3).
Deno.test("q8: the story's first sentences exactly; top-1 agreement ≥ 98.2% over 5120 positions", async () => {
  const q = await quality("q8", 1);
  console.log(`q8: agreement ${(q.agree * 100).toFixed(2)}%, greedy prefix ${q.prefix}`);
  assert.ok(q.agree >= 0.982, `agreement ${q.agree}`);
  assert.ok(q.prefix >= 64, `greedy prefix ${q.prefix}`);
  const q2 = await quality("q8", 2);
  assert.deepEqual(q2.tokens, q.tokens, "two threads decode the same tokens");
  assert.equal(q2.agree, q.agree);
});

Deno.test("q4: the story's first two sentences exactly; top-1 agreement ≥ 89% over 5120 positions", async () => {
  const q = await quality("q4", 2);
  console.log(`q4: agreement ${(q.agree * 100).toFixed(2)}%, greedy prefix ${q.prefix}`);
  assert.ok(q.agree >= 0.89, `agreement ${q.agree}`);
  assert.ok(q.prefix >= 40, `greedy prefix ${q.prefix}`);
});

// GPTQ on the model's own sampled text (16 × 512 tokens, seed 1; runtime/calibrate.ts), same
// formats and kernels: q4 agrees on 92.2% (+2.5 points), q8 with f32 activations (q8_0f) on
// 98.96% (round-to-nearest: 98.7%); q8 with int8 activations measured 98.3%, no better than
// round-to-nearest's 98.5%: there int8 activation rounding dominates (the TS reference with
// f32 weights and int8 activations agrees on ~98.9%) and single rounding flips move the
// figure by ±0.3%.
Deno.test("calibrated (GPTQ): q4 top-1 agreement ≥ 92%, q8 with f32 activations ≥ 98.8%", async () => {
  const q4 = await quality("q4", 2, undefined, {});
  console.log(`q4 GPTQ: agreement ${(q4.agree * 100).toFixed(2)}%, greedy prefix ${q4.prefix}`);
  assert.ok(q4.agree >= 0.92, `agreement ${q4.agree}`);
  const q8 = await quality("q8", 2, () => "q8_0f", {});
  console.log(`q8_0f GPTQ: agreement ${(q8.agree * 100).toFixed(2)}%, greedy prefix ${q8.prefix}`);
  assert.ok(q8.agree >= 0.988, `agreement ${q8.agree}`);
});

Deno.test("weight plans: q8_0 with f32 activations and mixed types run and stay accurate", async () => {
  const plan: WeightPlan = (t, l) => t === "embed" ? "q8_0f" : l % 2 ? "q4_0" : "q8_0f";
  const q = await quality("q8", 2, plan);
  assert.ok(q.agree >= 0.85, `agreement ${q.agree}`);
  const e = await WasmEngine.create(model, { quant: "q4" });
  const f = await WasmEngine.create(model, { quant: "f32" });
  try {
    assert.ok(e.decodeBytes < f.decodeBytes / 4, `${e.decodeBytes} vs ${f.decodeBytes}`);
  } finally {
    e.dispose();
    f.dispose();
  }
});

Deno.test("createEngine: wasm when possible, the reference when asked, reasons stated", async () => {
  const w = await createEngine(model, { quant: "q8", threads: 2 });
  assert.equal(w.name, "wasm-q8x2");
  assert.match(w.reason, /relaxed SIMD \+ shared memory; 2 threads/);
  w.dispose();
  const r = await createEngine(model, { quant: "q8", backend: "ref" });
  assert.equal(r.name, "ref-f32");
  assert.match(r.reason, /reference engine: requested/);
  const s = await createEngine(model, { threads: 2, kernels: { flavor: "simd" } });
  assert.equal(s.name, "wasm-f32x1");
  assert.match(s.reason, /1 thread/);
  s.dispose();
});

Deno.test("bad options and foreign caches are refused with TandemError", async () => {
  await assert.rejects(() => createEngine(model, { quant: "q5" as EngineQuant }), TandemError);
  await assert.rejects(() => createEngine(model, { threads: 0 }), TandemError);
  const e = await WasmEngine.create(model);
  try {
    assert.throws(
      () => e.forward(ref.createCache(), e.embed([1]), 0, 0, L),
      /not created by this engine/,
    );
    assert.throws(() => e.forward(e.createCache(), new Float32Array(3), 0, 0, L), TandemError);
    assert.throws(() => e.embed([V]), TandemError);
  } finally {
    e.dispose();
  }
});
