// q8_0 / q4_0 quantization at load: layouts, sizes, ggml's rounding, error bounds.
import assert from "node:assert/strict";
import {
  blocksPerRow,
  checkQuantTensor,
  dequantize,
  QK4_0,
  QK8_0,
  quantize,
} from "../runtime/quant.ts";
import { TandemError } from "../runtime/errors.ts";
import { randf, rng } from "./_rand.ts";

Deno.test("block sizes and padding follow the documented layout", () => {
  assert.equal(QK8_0, 32);
  assert.equal(QK4_0, 32);
  assert.equal(blocksPerRow(33), 2);
  const w = randf(rng(1), 3 * 33);
  const q8 = quantize("q8_0", w, 3, 33);
  assert.equal(q8.qs.length, 3 * 2 * 32);
  assert.equal(q8.d.length, 3 * 2);
  for (let r = 0; r < 3; r++) {
    for (let j = 1; j < 32; j++) assert.equal(q8.qs[r * 64 + 32 + j], 0, "padding is zero");
  }
  const q4 = quantize("q4_0", w, 3, 33);
  assert.equal(q4.qs.length, 3 * 2 * 16);
  checkQuantTensor(q8);
  checkQuantTensor(q4);
});

Deno.test("q8_0: scale is max|x|/127, the largest value maps to ±127, error ≤ d/2", () => {
  const w = randf(rng(2), 5 * 100, 4);
  const q = quantize("q8_0", w, 5, 100);
  const back = dequantize(q);
  for (let i = 0; i < w.length; i++) {
    const d = q.d[Math.floor(i / 100) * 4 + Math.floor((i % 100) / 32)];
    assert.ok(Math.abs(back[i] - w[i]) <= d / 2 + 1e-7, `value ${i}`);
  }
  const block = new Float32Array(32).fill(0.5);
  block[7] = -2;
  const qb = quantize("q8_0", block, 1, 32);
  assert.equal(qb.qs[7], -127);
  assert.equal(qb.d[0], Math.fround(2 / 127));
});

Deno.test("q4_0: ggml's scale (max / -8), nibble order and error ≤ |d|", () => {
  const x = new Float32Array(32).map((_, i) => (i - 10) / 10); // max magnitude 2.1 at i = 31
  const q = quantize("q4_0", x, 1, 32);
  assert.equal(q.d[0], Math.fround(2.1 / -8));
  assert.equal(q.qs[15] >> 4, 0, "element 31 (the max) is q = -8, stored 0 in the high nibble");
  assert.equal(q.qs[10] & 15, 8, "element 10 (zero) is stored as 8");
  const back = dequantize(q);
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(back[i] - x[i]) <= Math.abs(q.d[0]) + 1e-6);
  const w = randf(rng(3), 7 * 45);
  const q7 = quantize("q4_0", w, 7, 45);
  const b7 = dequantize(q7);
  for (let i = 0; i < w.length; i++) {
    const d = q7.d[Math.floor(i / 45) * 2 + Math.floor((i % 45) / 32)];
    assert.ok(Math.abs(b7[i] - w[i]) <= Math.abs(d) + 1e-6, `value ${i}`);
  }
});

Deno.test("an all-zero block has scale 0 and dequantizes to zeros", () => {
  for (const type of ["q8_0", "q4_0"] as const) {
    const q = quantize(type, new Float32Array(40), 1, 40);
    assert.ok(dequantize(q).every((v) => v === 0), type);
  }
});

Deno.test("size checks reject tensors whose arrays do not match their shape", () => {
  const q = quantize("q8_0", new Float32Array(64), 2, 32);
  assert.throws(
    () => checkQuantTensor({ ...q, rows: 3 }, "layers.0.wq"),
    (e: unknown) =>
      e instanceof TandemError && e.code === "bad_model" && /layers\.0\.wq/.test(e.message),
  );
  assert.throws(() => quantize("q4_0", new Float32Array(10), 2, 32), TandemError);
});

Deno.test("least-squares scales ('rmse'): same format, never a larger error than ggml's", () => {
  const r = rng(11);
  for (const type of ["q8_0", "q4_0"] as const) {
    const w = randf(r, 64 * 70);
    const sq = (q: Float32Array) => q.reduce((a, v, i) => a + (v - w[i]) ** 2, 0);
    const max = dequantize(quantize(type, w, 64, 70));
    const fit = quantize(type, w, 64, 70, "rmse");
    const fitD = dequantize(fit);
    assert.equal(fit.qs.length, quantize(type, w, 64, 70).qs.length);
    const [eMax, eFit] = [sq(max), sq(fitD)];
    assert.ok(eFit <= eMax * 1.0001, `${type}: ${eFit} > ${eMax}`);
    if (type === "q4_0") assert.ok(eFit < eMax * 0.97, `${type}: ${eFit} vs ${eMax}`);
  }
});
