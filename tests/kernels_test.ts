// Every wasm kernel export against the TypeScript reference (kernels/ref.ts, ref_quant.ts), in
// both builds, on random shapes with odd tails; the thread pool against one thread.
import assert from "node:assert/strict";
import { type Flavor, type Kernels, loadKernels } from "../kernels/binding.ts";
import { ThreadPool } from "../kernels/pool.ts";
import * as ref from "../kernels/ref.ts";
import { matmulQuant, quantizeAct } from "../kernels/ref_quant.ts";
import { CHUNK, tileQuant, tileRows, untileQuantRow, untileRow } from "../kernels/layout.ts";
import { blocksPerRow, quantize, type QuantTensor } from "../runtime/quant.ts";
import { randf, relErr, rng } from "./_rand.ts";

const FLAVORS: Flavor[] = ["relaxed", "simd"];
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 5],
  [3, 33, 17],
  [5, 64, 64],
  [4, 77, 130],
  [2, 300, 9],
  [9, 96, 31],
  [1, 13, 7],
  [2, 65, 3],
  [1, 576, 193],
];

/** Runs `fn` with fresh kernels of each flavor. */
function eachFlavor(name: string, fn: (k: Kernels) => void | Promise<void>): void {
  for (const flavor of FLAVORS) {
    Deno.test(`${name} (${flavor})`, async () => fn(await loadKernels({ flavor })));
  }
}

/** f32 weights [dout, din] in the kernels' row-tiled layout, in wasm memory. */
function putF32(k: Kernels, w: Float32Array, dout: number, din: number): number {
  return k.put(tileRows(w, dout, din, CHUNK.f32));
}

/** Quants and scales of q as tile-block records (layout.ts), in wasm memory. */
function putQuant(k: Kernels, q: QuantTensor): number {
  return k.put(tileQuant(q.type, q.qs, q.d, q.rows, blocksPerRow(q.cols)));
}

Deno.test("row tiling: every row round-trips, tails and padding included", () => {
  const r = rng(9);
  for (const [rows, len, chunk] of [[1, 1, 8], [5, 9, 8], [7, 64, 32], [4, 3, 1], [9, 48, 16]]) {
    const w = randf(r, rows * len);
    const t = tileRows(w, rows, len, chunk);
    assert.equal(t.length, Math.ceil(rows / 4) * 4 * len);
    const row = new Float32Array(len);
    for (let i = 0; i < rows; i++) {
      untileRow(t, len, chunk, i, row);
      assert.deepEqual(row, w.subarray(i * len, (i + 1) * len));
    }
  }
});

Deno.test("tile-block records: every row's quants and scales round-trip, padding zero", () => {
  const r = rng(10);
  for (const [rows, cols] of [[1, 1], [5, 33], [8, 64], [7, 100]]) {
    const w = randf(r, rows * cols);
    for (const type of ["q8_0", "q4_0"] as const) {
      const q = quantize(type, w, rows, cols), nb = blocksPerRow(cols);
      const t = tileQuant(type, q.qs, q.d, rows, nb);
      const bb = type === "q8_0" ? 32 : 16;
      assert.equal(t.length, Math.ceil(rows / 4) * nb * 4 * (bb + 4));
      const qs = type === "q8_0" ? new Int8Array(nb * bb) : new Uint8Array(nb * bb);
      const d = new Float32Array(nb);
      for (let i = 0; i < Math.ceil(rows / 4) * 4; i++) {
        untileQuantRow(t, type, nb, i, qs, d);
        if (i < rows) {
          assert.deepEqual(qs, q.qs.subarray(i * nb * bb, (i + 1) * nb * bb), `${type} row ${i}`);
          assert.deepEqual(d, q.d.subarray(i * nb, (i + 1) * nb));
        } else {
          assert.ok(qs.every((v) => v === 0) && d.every((v) => v === 0), `padding row ${i}`);
        }
      }
    }
  }
});

function out(k: Kernels, len: number): [number, () => Float32Array] {
  const p = k.alloc(len * 4);
  return [p, () => k.f32(p, len).slice()];
}

Deno.test("auto-detection picks the relaxed build here and says why", async () => {
  const k = await loadKernels();
  assert.equal(k.flavor, "relaxed");
  assert.equal(k.shared, true);
  assert.match(k.reason, /relaxed SIMD/);
  const s = await loadKernels({ flavor: "simd" });
  assert.equal(s.shared, false);
  assert.equal(s.exports.build_flavor(), 0);
});

eachFlavor("matmul_f32 matches the reference, with and without bias", (k) => {
  const r = rng(1);
  for (const [n, din, dout] of SHAPES) {
    const x = randf(r, n * din), w = randf(r, dout * din), b = randf(r, dout);
    for (const bias of [undefined, b]) {
      const want = new Float32Array(n * dout);
      ref.matmul(want, x, w, n, din, dout, bias);
      const [po, got] = out(k, n * dout);
      const pw = putF32(k, w, dout, din);
      k.exports.matmul_f32(po, k.put(x), pw, n, din, dout, bias ? k.put(bias) : 0, 0, dout);
      assert.ok(relErr(got(), want) < 1e-5, `[${n},${din}]→${dout}: ${relErr(got(), want)}`);
    }
  }
});

eachFlavor("quantize_act + matmul_q8/q4 match the quantized reference; q8f the f32 one", (k) => {
  const r = rng(2);
  for (const [n, din, dout] of SHAPES) {
    const x = randf(r, n * din), w = randf(r, dout * din), bias = randf(r, dout);
    const act = k.alloc(k.exports.act_bytes(n, din));
    const px = k.put(x);
    k.exports.quantize_act(act, px, n, din);
    const refAct = quantizeAct(x, n, din);
    const q = n * Math.ceil(din / 32) * 32;
    assert.deepEqual(new Int8Array(k.memory.buffer, act, q), refAct.qs, `act quants ${n}x${din}`);
    const ds = k.f32(act + q, 2 * refAct.d.length), sums = new Int32Array(ds.buffer, act + q);
    for (let b = 0; b < refAct.d.length; b++) {
      assert.equal(ds[2 * b], refAct.d[b], `act scale ${b} ${n}x${din}`);
      const sum = refAct.qs.subarray(32 * b, 32 * b + 32).reduce((a, v) => a + v, 0);
      assert.equal(sums[2 * b + 1], sum, `act sum ${b} ${n}x${din}`);
    }
    for (const type of ["q8_0", "q4_0"] as const) {
      const q = quantize(type, w, dout, din);
      const want = new Float32Array(n * dout);
      matmulQuant(want, refAct, type, q.qs, q.d, n, din, dout, bias);
      const [po, got] = out(k, n * dout);
      const fn = type === "q8_0" ? k.exports.matmul_q8 : k.exports.matmul_q4;
      const pq = putQuant(k, q);
      fn(po, act, pq, n, din, dout, k.put(bias), 0, dout);
      assert.ok(
        relErr(got(), want) < 1e-5,
        `${type} [${n},${din}]→${dout}: ${relErr(got(), want)}`,
      );
      if (type === "q8_0") {
        const deq = new Float32Array(n * dout);
        const wf = Float32Array.from(q.qs, (v, i) => v * q.d[Math.floor(i / 32)]);
        const wPacked = new Float32Array(dout * din); // drop the per-row padding
        const nb = Math.ceil(din / 32);
        for (let o = 0; o < dout; o++) {
          wPacked.set(wf.subarray(o * nb * 32, o * nb * 32 + din), o * din);
        }
        ref.matmul(deq, x, wPacked, n, din, dout, bias);
        k.exports.matmul_q8f(po, px, pq, n, din, dout, k.put(bias), 0, dout);
        assert.ok(relErr(got(), deq) < 1e-5, `q8f [${n},${din}]→${dout}: ${relErr(got(), deq)}`);
      }
    }
  }
});

eachFlavor("rmsnorm, rope, softmax, swiglu and add match the reference", (k) => {
  const r = rng(3);
  for (const [n, dim] of [[1, 1], [3, 7], [2, 64], [5, 93]]) {
    const x = randf(r, n * dim, 3), w = randf(r, dim);
    const want = new Float32Array(n * dim);
    ref.rmsnorm(want, x, w, n, dim, 1e-5);
    const [po, got] = out(k, n * dim);
    k.exports.rmsnorm(po, k.put(x), k.put(w), n, dim, 1e-5);
    assert.ok(relErr(got(), want) < 1e-6, `rmsnorm ${n}x${dim}`);

    const px = k.put(x);
    ref.softmax(x, 0, dim);
    k.exports.softmax(px, dim);
    assert.ok(relErr(k.f32(px, dim), x.subarray(0, dim)) < 1e-6, `softmax ${dim}`);

    const g = randf(r, n * dim, 8), u = randf(r, n * dim);
    ref.swiglu(want, g, u, n * dim);
    const pg = k.put(g);
    k.exports.swiglu(pg, pg, k.put(u), n * dim);
    assert.ok(relErr(k.f32(pg, n * dim), want) < 1e-6, `swiglu ${n}x${dim}`);

    const y = randf(r, n * dim);
    const pa = k.put(g);
    ref.add(g, y, n * dim);
    k.exports.add(pa, k.put(y), n * dim);
    assert.deepEqual(k.f32(pa, n * dim), g);
  }
  for (const [n, heads, hd, pos] of [[1, 1, 2, 0], [3, 4, 8, 5], [2, 3, 6, 100]]) {
    const x = randf(r, n * heads * hd);
    const freqs = ref.ropeFrequencies(hd, 10000);
    const cs = new Float32Array(n * hd);
    for (let t = 0; t < n; t++) {
      for (let j = 0; j < hd / 2; j++) {
        cs[(t * hd / 2 + j) * 2] = Math.cos((pos + t) * freqs[j]);
        cs[(t * hd / 2 + j) * 2 + 1] = Math.sin((pos + t) * freqs[j]);
      }
    }
    const px = k.put(x);
    ref.rope(x, n, heads, hd, pos, freqs);
    k.exports.rope(px, k.put(cs), n, heads, hd);
    assert.ok(relErr(k.f32(px, x.length), x) < 1e-6, `rope ${n}x${heads}x${hd}`);
  }
});

eachFlavor("attention matches the reference (GQA, causal, several tokens)", (k) => {
  const r = rng(4);
  for (
    const [n, pos, heads, kv, hd] of [[1, 0, 1, 1, 1], [1, 9, 8, 4, 8], [4, 3, 6, 2, 5], [
      7,
      0,
      9,
      3,
      64,
    ]]
  ) {
    const ctx = pos + n;
    const q = randf(r, n * heads * hd), kc = randf(r, ctx * kv * hd), vc = randf(r, ctx * kv * hd);
    const want = new Float32Array(n * heads * hd);
    ref.attention(want, q, kc, vc, n, pos, heads, kv, hd, new Float32Array(ctx));
    const [po, got] = out(k, want.length);
    const scratch = k.alloc(heads * ctx * 4);
    k.exports.attention(
      po,
      k.put(q),
      k.put(kc),
      k.put(vc),
      scratch,
      n,
      pos,
      heads,
      kv,
      hd,
      0,
      heads,
    );
    assert.ok(relErr(got(), want) < 1e-5, `attention n=${n} pos=${pos} ${heads}/${kv}x${hd}`);
  }
});

Deno.test("two threads give the same bits as one, for every splittable kernel", async () => {
  const k = await loadKernels();
  const one = await ThreadPool.create(k, 1);
  const two = await ThreadPool.create(k, 2);
  assert.equal(two.threads, 2);
  try {
    const r = rng(5);
    const [n, din, dout] = [3, 200, 301];
    const x = k.put(randf(r, n * din)), w = randf(r, dout * din);
    const act = k.alloc(k.exports.act_bytes(n, din));
    k.exports.quantize_act(act, x, n, din);
    const pw = putF32(k, w, dout, din);
    const q8 = putQuant(k, quantize("q8_0", w, dout, din));
    const q4 = putQuant(k, quantize("q4_0", w, dout, din));
    const jobs: [string, (o: number) => number[], number][] = [
      ["matmul_f32", (o) => [o, x, pw, n, din, dout, 0], dout],
      ["matmul_q8", (o) => [o, act, q8, n, din, dout, 0], dout],
      ["matmul_q8f", (o) => [o, x, q8, n, din, dout, 0], dout],
      ["matmul_q4", (o) => [o, act, q4, n, din, dout, 0], dout],
    ];
    // Many calls back to back: chunks are claimed by whoever is free, jobs follow each other
    // within microseconds, and a worker may still be leaving the previous one.
    for (let rep = 0; rep < 40; rep++) {
      for (const [name, args, rows] of jobs) {
        const [a, ga] = out(k, n * dout), [b, gb] = out(k, n * dout);
        one.run(name as "matmul_f32", args(a), rows);
        two.run(name as "matmul_f32", args(b), rows, Infinity);
        assert.deepEqual(gb(), ga(), `${name} (call ${rep})`);
        k.free(a);
        k.free(b);
      }
    }
    const [heads, kv, hd, pos] = [9, 3, 16, 20];
    const q = k.put(randf(r, heads * hd)),
      kc = k.put(randf(r, 21 * kv * hd)),
      vc = k.put(randf(r, 21 * kv * hd));
    const sc = k.alloc(heads * 21 * 4);
    const [a, ga] = out(k, heads * hd), [b, gb] = out(k, heads * hd);
    one.run("attention", [a, q, kc, vc, sc, 1, pos, heads, kv, hd], heads, Infinity, 1);
    two.run("attention", [b, q, kc, vc, sc, 1, pos, heads, kv, hd], heads, Infinity, 1);
    assert.deepEqual(gb(), ga(), "attention");
  } finally {
    two.dispose();
    one.dispose();
  }
});

Deno.test("without shared memory the pool runs one thread and says why", async () => {
  const k = await loadKernels({ flavor: "simd" });
  const pool = await ThreadPool.create(k, 4);
  assert.equal(pool.threads, 1);
  assert.match(pool.reason, /1 thread: simd128/);
  pool.dispose();
});
