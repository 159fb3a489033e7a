import assert from "node:assert/strict";
import {
  decodeFrame,
  encodeFrame,
  FLAG_NO_REPLY,
  FLAG_TOKENS,
  type Frame,
  WIRE_MAJOR,
} from "../runtime/wire.ts";
import { encodeReplyLine, logprobs, readReply } from "../runtime/wire_reply.ts";
import { TandemError } from "../runtime/errors.ts";
import { Rng } from "../runtime/sampling.ts";

function randomRows(n: number, dim: number, seed: number, scale = 3): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * dim }, () => (rng.next() * 2 - 1) * scale);
}

function frame(rows: Float32Array, dim: number, extra: Partial<Frame> = {}): Frame {
  return {
    dtype: "f32",
    split: 2,
    dim,
    pos: 7,
    seq: 3,
    modelId: "stories260K",
    session: Uint8Array.from({ length: 16 }, (_, i) => i),
    digest: Uint8Array.from({ length: 32 }, (_, i) => 255 - i),
    rows,
    ...extra,
  };
}

function throwsCode(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TandemError, String(e));
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    return true;
  });
}

Deno.test("f32 frames round-trip exactly, with every header field", () => {
  const rows = randomRows(3, 64, 1);
  const tokens = new Uint32Array([5, 9, 11]);
  const f = frame(rows, 64, { topK: 5, flags: FLAG_TOKENS | FLAG_NO_REPLY, tokens });
  const d = decodeFrame(encodeFrame(f));
  assert.deepEqual(d, { ...f, rows: d.rows });
  assert.deepEqual(Array.from(d.rows), Array.from(rows));
  assert.deepEqual(Array.from(d.tokens!), [5, 9, 11]);
});

Deno.test("f16 and int8 frames round-trip within their error bounds (measured)", () => {
  const dim = 64;
  const rows = randomRows(16, dim, 2);
  for (const [dtype, rowBytes] of [["f16", 2 * dim], ["int8", dim + 4]] as const) {
    const bytes = encodeFrame(frame(rows, dim, { dtype }));
    assert.equal(bytes.byteLength, 92 + 16 * rowBytes); // header: 81 + "stories260K", padded to 4
    const d = decodeFrame(bytes);
    let worstRel = 0;
    for (let t = 0; t < 16; t++) {
      let max = 0;
      for (let i = 0; i < dim; i++) max = Math.max(max, Math.abs(rows[t * dim + i]));
      for (let i = 0; i < dim; i++) {
        const err = Math.abs(d.rows[t * dim + i] - rows[t * dim + i]);
        worstRel = Math.max(worstRel, err / max);
      }
    }
    // f16: half an ulp relative to the value (≤ 2^-11 of max); int8: half a step = max/254.
    const bound = dtype === "f16" ? 2 ** -11 : 1 / 254;
    assert.ok(worstRel <= bound * 1.0001, `${dtype} worst error ${worstRel} > ${bound}`);
    assert.ok(worstRel > 0, `${dtype} should not be lossless on random data`);
  }
});

Deno.test("int8 handles an all-zero row", () => {
  const d = decodeFrame(encodeFrame(frame(new Float32Array(8), 8, { dtype: "int8" })));
  assert.deepEqual(Array.from(d.rows), new Array(8).fill(0));
});

Deno.test("decoder refuses lying lengths with a message naming both", () => {
  const bytes = encodeFrame(frame(randomRows(12, 4, 3), 4));
  const v = new DataView(bytes.buffer);
  v.setUint32(20, 4096, true);
  throwsCode(() => decodeFrame(bytes), "bad_frame", /header says 4096 tokens .* payload holds 12/);
  throwsCode(() => decodeFrame(bytes.subarray(0, 40)), "bad_frame", /40 bytes/);
  v.setUint32(20, 12, true);
  throwsCode(
    () => decodeFrame(bytes.subarray(0, bytes.length - 1)),
    "bad_frame",
    /payload holds 11/,
  );
  v.setUint32(20, 0, true);
  throwsCode(() => decodeFrame(bytes), "bad_frame", /0 tokens/);
  v.setUint32(20, 100000, true);
  throwsCode(() => decodeFrame(bytes), "too_large", /100000 tokens/);
});

Deno.test("decoder refuses wrong magic, another major version, unknown dtype", () => {
  const good = encodeFrame(frame(randomRows(1, 4, 4), 4));
  const bad = (patch: (v: DataView) => void) => {
    const b = good.slice();
    patch(new DataView(b.buffer));
    return () => decodeFrame(b);
  };
  throwsCode(bad((v) => v.setUint8(0, 0)), "bad_frame", /magic/);
  throwsCode(
    bad((v) => v.setUint8(4, WIRE_MAJOR + 1)),
    "unsupported_version",
    /wire version 2\.\d+ is not supported by this build \(1\.2\)/,
  );
  throwsCode(bad((v) => v.setUint8(8, 9)), "bad_frame", /unknown dtype code 9/);
  throwsCode(bad((v) => v.setUint16(6, 2, true)), "bad_frame", /header length 2/);
  throwsCode(bad((v) => v.setUint8(81, 0xff)), "bad_frame", /UTF-8/);
});

Deno.test("decoder refuses NaN and Inf in every dtype", () => {
  const f32 = encodeFrame(frame(new Float32Array([1, 2, 3, 4]), 4));
  new DataView(f32.buffer).setFloat32(f32.length - 4, NaN, true);
  throwsCode(() => decodeFrame(f32), "bad_frame", /row 0 holds a non-finite value/);
  const f16 = encodeFrame(frame(new Float32Array([1, 2, 3, 4]), 4, { dtype: "f16" }));
  new DataView(f16.buffer).setUint16(f16.length - 2, 0x7c00, true);
  throwsCode(() => decodeFrame(f16), "bad_frame", /Infinity/);
  const i8 = encodeFrame(frame(new Float32Array([1, 2, 3, 4]), 4, { dtype: "int8" }));
  new DataView(i8.buffer).setFloat32(i8.length - 8, Infinity, true);
  throwsCode(() => decodeFrame(i8), "bad_frame", /int8 scale Infinity/);
});

Deno.test("encoder refuses what the wire cannot carry", () => {
  throwsCode(() => encodeFrame(frame(new Float32Array([1, NaN]), 2)), "bad_argument", /finite/);
  throwsCode(
    () => encodeFrame(frame(new Float32Array([1e6, 0]), 2, { dtype: "f16" })),
    "bad_argument",
    /f16's range/,
  );
  throwsCode(() => encodeFrame(frame(new Float32Array(3), 2)), "bad_argument", /multiple of dim/);
  throwsCode(
    () => encodeFrame(frame(new Float32Array(4), 2, { flags: FLAG_TOKENS })),
    "bad_argument",
    /TOKENS needs 2 token ids/,
  );
});

Deno.test("reply lines stream tokens and end with the closing line", async () => {
  const body = encodeReplyLine({ token: 4, pos: 9, logprob: -0.5, top: [[4, -0.5]] }) +
    encodeReplyLine({ token: 6, pos: 10 }) +
    encodeReplyLine({ done: true, seq: 2, accepted: 1, length: 11, edgeMs: 0.25 });
  const seen: number[] = [];
  const reply = await readReply(new Response(body).body!, (t) => seen.push(t.token));
  assert.deepEqual(seen, [4, 6]);
  assert.equal(reply.accepted, 1);
  assert.equal(reply.length, 11);
  assert.equal(reply.bytes, new TextEncoder().encode(body).length);
  const err = encodeReplyLine({ error: { code: "session_not_found", message: "gone" } });
  await assert.rejects(readReply(new Response(err).body!, () => {}), /gone/);
  await assert.rejects(
    readReply(new Response(encodeReplyLine({ token: 1, pos: 0 })).body!, () => {}),
    /closing line/,
  );
});

Deno.test("logprobs are a log-softmax with the top k first", () => {
  const lp = logprobs(new Float32Array([1, 3, 2]), 0, 3, 2, 2);
  const z = Math.log(Math.exp(1) + Math.exp(3) + Math.exp(2));
  assert.ok(Math.abs(lp.logprob - (2 - z)) < 1e-6);
  assert.deepEqual(lp.top.map(([t]) => t), [1, 2]);
});
