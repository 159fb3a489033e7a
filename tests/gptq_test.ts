// GPTQ (runtime/gptq.ts): same formats as round-to-nearest, smaller output error on the
// inputs it was calibrated on, deterministic, bad input refused with TandemError.
import assert from "node:assert/strict";
import { gptqFactor, quantizeGptq } from "../runtime/gptq.ts";
import { checkQuantTensor, dequantize, quantize } from "../runtime/quant.ts";
import { TandemError } from "../runtime/errors.ts";
import { randf, rng } from "./_rand.ts";

/** n correlated inputs [n, cols] (a random mix of a few directions plus noise) and Σ x xᵀ. */
function inputs(seed: number, n: number, cols: number): { x: Float32Array; h: Float64Array } {
  const r = rng(seed);
  const basis = randf(r, 4 * cols, 2);
  const x = randf(r, n * cols, 0.3);
  for (let t = 0; t < n; t++) {
    for (let b = 0; b < 4; b++) {
      const c = 2 * r() - 1;
      for (let i = 0; i < cols; i++) x[t * cols + i] += c * basis[b * cols + i];
    }
  }
  const h = new Float64Array(cols * cols);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < cols; i++) {
      for (let j = 0; j < cols; j++) h[i * cols + j] += x[t * cols + i] * x[t * cols + j];
    }
  }
  return { x, h };
}

/** Σ over inputs of ‖(W − Q) x‖². */
function outputError(
  w: Float32Array,
  q: Float32Array,
  x: Float32Array,
  rows: number,
  cols: number,
) {
  let e = 0;
  for (let t = 0; t < x.length / cols; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let i = 0; i < cols; i++) s += (w[r * cols + i] - q[r * cols + i]) * x[t * cols + i];
      e += s * s;
    }
  }
  return e;
}

Deno.test("GPTQ: the same block format, a smaller output error than round-to-nearest", () => {
  const [rows, cols] = [24, 77]; // a zero-padded last block
  const w = randf(rng(5), rows * cols);
  const { x, h } = inputs(6, 300, cols);
  for (const [type, fit] of [["q8_0", "max"], ["q4_0", "rmse"]] as const) {
    const g = quantizeGptq(type, w, rows, cols, h);
    checkQuantTensor(g);
    const rtn = quantize(type, w, rows, cols, fit);
    assert.equal(g.qs.length, rtn.qs.length);
    const eG = outputError(w, dequantize(g), x, rows, cols);
    const eR = outputError(w, dequantize(rtn), x, rows, cols);
    assert.ok(eG < eR * 0.8, `${type}: GPTQ ${eG} vs round-to-nearest ${eR}`);
  }
});

Deno.test("GPTQ: deterministic; a diagonal hessian gives round-to-nearest", () => {
  const w = randf(rng(7), 8 * 64);
  const { h } = inputs(8, 50, 64);
  assert.deepEqual(quantizeGptq("q4_0", w, 8, 64, h), quantizeGptq("q4_0", w, 8, 64, h));
  const eye = new Float64Array(64 * 64);
  for (let i = 0; i < 64; i++) eye[i * 64 + i] = 3;
  assert.deepEqual(quantizeGptq("q8_0", w, 8, 64, eye), quantize("q8_0", w, 8, 64));
});

Deno.test("GPTQ: a prepared factor, shared by matrices of one input, gives the same result", () => {
  const { h } = inputs(9, 60, 64);
  const factor = gptqFactor(h, 64);
  for (const [seed, type] of [[10, "q8_0"], [11, "q4_0"]] as const) {
    const w = randf(rng(seed), 8 * 64);
    assert.deepEqual(quantizeGptq(type, w, 8, 64, factor), quantizeGptq(type, w, 8, 64, h));
  }
  assert.throws(
    () => quantizeGptq("q8_0", randf(rng(1), 8 * 32), 8, 32, factor),
    (e: unknown) => e instanceof TandemError && /factor is for 64 columns/.test(e.message),
  );
  assert.throws(() => gptqFactor(h, 63), TandemError);
});

Deno.test("GPTQ: unseen input columns are rounded to nearest, not dropped", () => {
  const w = randf(rng(9), 4 * 32);
  const { h } = inputs(10, 40, 32);
  for (let j = 0; j < 32; j++) h[5 * 32 + j] = h[j * 32 + 5] = 0; // column 5 never active
  const back = dequantize(quantizeGptq("q8_0", w, 4, 32, h));
  for (let r = 0; r < 4; r++) assert.ok(Math.abs(back[r * 32 + 5] - w[r * 32 + 5]) < 0.01);
});

Deno.test("GPTQ: bad input is refused with TandemError", () => {
  const w = new Float32Array(2 * 32).fill(1);
  const ok = new Float64Array(32 * 32);
  for (let i = 0; i < 32; i++) ok[i * 33] = 1;
  const bad = (f: () => unknown, re: RegExp) =>
    assert.throws(
      f,
      (e: unknown) => e instanceof TandemError && e.code === "bad_argument" && re.test(e.message),
    );
  bad(() => quantizeGptq("q8_0", w, 3, 32, ok), /holds 64 values/);
  bad(() => quantizeGptq("q8_0", w, 2, 32, new Float64Array(10)), /hessian holds 10/);
  bad(() => quantizeGptq("q8_0", w, 2, 32, ok, { damp: -1 }), /damp/);
  const nan = ok.slice();
  nan[3] = NaN;
  bad(() => quantizeGptq("q8_0", w, 2, 32, nan), /NaN/);
  const indefinite = ok.slice();
  indefinite[0] = 1;
  indefinite[1] = indefinite[32] = 5; // [[1, 5], [5, 1]] block: not positive definite
  bad(() => quantizeGptq("q4_0", w, 2, 32, indefinite, { damp: 0 }), /positive definite/);
});
