// The wasm engine against the reference engine on the fixture model: f32 logits within 1e-4,
// q8/q4 greedy tokens and teacher-forced top-1 agreement measured and asserted, threads,
// layer ranges, and the reference fallback.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { createEngine } from "../runtime/create_engine.ts";
import { type EngineQuant, WasmEngine } from "../runtime/wasm_engine.ts";
import { TandemError } from "../runtime/errors.ts";
import type { Engine } from "../runtime/engine.ts";
import { relErr } from "./_rand.ts";

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

// The long sample: the reference's greedy continuation of BOS over the whole context.
const SAMPLE = greedy(ref, 511);
const REF_LOGITS = prefill(ref, SAMPLE);

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

/** Teacher-forced top-1 agreement with the reference over SAMPLE, and the greedy prefix. */
async function quality(
  quant: EngineQuant,
  threads: number,
): Promise<{ agree: number; prefix: number; tokens: number[] }> {
  const e = await WasmEngine.create(model, { quant, threads });
  try {
    const lg = prefill(e, SAMPLE);
    let agree = 0;
    for (let t = 0; t < SAMPLE.length; t++) {
      if (argmax(lg, t * V) === argmax(REF_LOGITS, t * V)) agree++;
    }
    const tokens = greedy(e, 64);
    let prefix = 0;
    while (prefix < tokens.length && tokens[prefix] === SAMPLE[prefix]) prefix++;
    return { agree: agree / SAMPLE.length, prefix: prefix - 1, tokens };
  } finally {
    e.dispose();
  }
}

// Measured on stories260K (dim 64, the most quantization-sensitive model there is): q8 agrees
// on 98.8% of 512 positions and greedy decoding matches the reference for the first 64 tokens;
// q4_0 agrees on 87.5% and matches 27 tokens — and the f32 reference itself, run on
// dequantized q4_0 weights, agrees on only 85–88%, so that is q4_0's error, not the kernels'.
Deno.test("q8: greedy tokens equal the reference's; top-1 agreement ≥ 98.5%", async () => {
  const q = await quality("q8", 1);
  assert.ok(q.agree >= 0.985, `agreement ${q.agree}`);
  assert.ok(q.prefix >= 64, `greedy prefix ${q.prefix}`);
  const q2 = await quality("q8", 2);
  assert.deepEqual(q2.tokens, q.tokens, "two threads decode the same tokens");
});

Deno.test("q4: top-1 agreement ≥ 85%, greedy tokens equal for the first 20", async () => {
  const q = await quality("q4", 2);
  assert.ok(q.agree >= 0.85, `agreement ${q.agree}`);
  assert.ok(q.prefix >= 20, `greedy prefix ${q.prefix}`);
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
