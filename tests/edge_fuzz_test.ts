// Hostile input, fixed seeds: the frame decoder and every edge route under fast-check
// (a few thousand cases; `deno task bench fuzz` runs 100k+). See _edge_fuzz.ts.
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeFrame, encodeFrame, type Frame, WIRE_DTYPES } from "../runtime/wire.ts";
import { decoderProperty } from "./_wire_fuzz.ts";
import { fuzzCase, startFuzzTarget } from "./_edge_fuzz.ts";

Deno.test("decoder: any bytes decode to a valid frame or a typed error, never another exception", () => {
  fc.assert(decoderProperty, { seed: 7, numRuns: 3000 });
});

Deno.test("decoder: encode/decode round-trips every dtype", () => {
  const frame = fc.record({
    dtype: fc.constantFrom(...WIRE_DTYPES),
    n: fc.integer({ min: 1, max: 4 }),
    dim: fc.integer({ min: 1, max: 24 }),
    pos: fc.nat(),
    seq: fc.nat(),
    modelId: fc.string({ maxLength: 20 }),
    topK: fc.nat(255),
    values: fc.array(fc.float({ min: -60000, max: 60000, noNaN: true }), {
      minLength: 96,
      maxLength: 96,
    }),
  });
  fc.assert(
    fc.property(frame, (f) => {
      const rows = Float32Array.from(f.values.slice(0, f.n * f.dim));
      const input: Frame = {
        ...f,
        split: 1,
        session: new Uint8Array(16).fill(3),
        digest: new Uint8Array(32).fill(9),
        rows,
      };
      const out = decodeFrame(encodeFrame(input));
      assert.equal(out.modelId, f.modelId);
      assert.deepEqual([out.dtype, out.dim, out.pos, out.seq, out.topK], [
        f.dtype,
        f.dim,
        f.pos,
        f.seq,
        f.topK,
      ]);
      assert.equal(out.rows.length, rows.length);
      if (f.dtype === "f32") assert.deepEqual(out.rows, rows);
    }),
    { seed: 11, numRuns: 500 },
  );
});

Deno.test("every route: hostile requests get a 4xx JSON error and the edge keeps serving", async () => {
  const target = await startFuzzTarget();
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(fuzzCase, async (c) => {
      const { status, problem } = await target.run(c);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      assert.equal(problem, undefined, problem);
    }),
    { seed: 42, numRuns: 2500 },
  );
  assert.ok(await target.stillServes());
  // The cases reach past authentication and the decoder: successes and many kinds of refusal.
  for (const s of [200, 400, 401, 404, 409, 413]) assert.ok(statuses.has(s), `no case got ${s}`);
  target.dispose();
});
