// safetensors read/write and the f16/bf16 conversions under it; corrupt files give typed errors.
import assert from "node:assert/strict";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, roundTo } from "../runtime/dtype.ts";
import { parseSafetensors, parseSafetensorsIndex } from "../runtime/formats/safetensors.ts";
import { serializeSafetensors } from "../runtime/formats/safetensors_write.ts";
import { assertTandemError, rng } from "./_fixtures.ts";

Deno.test("f16: every finite bit pattern survives f16 → f32 → f16, and matches Math.f16round", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const wide = f16ToF32(all);
  const back = f32ToF16(wide);
  for (let i = 0; i < 65536; i++) {
    if (Number.isNaN(wide[i])) {
      assert.equal(back[i] & 0x7c00, 0x7c00);
      continue;
    }
    assert.equal(back[i], i, `bits ${i.toString(16)}`);
  }
  assert.deepEqual([...f16ToF32(new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff]))], [
    1,
    -2,
    2 ** -24,
    65504,
  ]);
  const r = rng(3);
  const xs = new Float32Array(20000).map(
    (_, i) => (r() - 0.5) * 2 ** ((i % 40) - 28),
  );
  xs.set([65520, 65519, -1e9, 2 ** -25, 2 ** -25 * 3, 1 + 2 ** -11, 1 + 3 * 2 ** -11], 0);
  const rounded = roundTo(xs, "f16");
  const f16round = (Math as unknown as { f16round?: (x: number) => number }).f16round;
  for (let i = 0; i < xs.length; i++) {
    const want = f16round ? f16round(xs[i]) : rounded[i];
    assert.ok(Object.is(rounded[i], want), `f16 of ${xs[i]}: ${rounded[i]} vs ${want}`);
  }
});

Deno.test("bf16: widening is exact, narrowing rounds to nearest even", () => {
  assert.deepEqual([...bf16ToF32(new Uint16Array([0x3f80, 0xc000, 0x7f80]))], [1, -2, Infinity]);
  const x = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 3.4e38]);
  assert.deepEqual([...bf16ToF32(f32ToBf16(x))], [
    1,
    1 + 4 * 2 ** -8,
    1 + 2 * 2 ** -8,
    Infinity,
  ]);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(new Float32Array([NaN])))[0]));
});

const sample = () =>
  new Map([
    ["a", { shape: [2, 3], data: new Float32Array([1, -2, 0.5, 3.25, 0.1, -7]) }],
    ["b.bias", { shape: [3], data: new Float32Array([0, 1e-3, -65504]) }],
    ["scalar", { shape: [], data: new Float32Array([42]) }],
  ]);

Deno.test("safetensors round-trips F32 exactly and F16/BF16 to the rounded values", () => {
  for (const dtype of ["F32", "F16", "BF16"] as const) {
    const bytes = serializeSafetensors(sample(), { dtype, metadata: { format: "pt" } });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0, "data starts 8-byte aligned");
    const file = parseSafetensors(bytes, "x.safetensors");
    assert.deepEqual([...file.entries.keys()], ["a", "b.bias", "scalar"]);
    assert.equal(file.metadata.format, "pt");
    for (const [name, t] of sample()) {
      const got = file.f32(name);
      assert.deepEqual(got.shape, t.shape);
      const want = dtype === "F32" ? t.data : roundTo(t.data, dtype === "F16" ? "f16" : "bf16");
      assert.deepEqual([...got.data], [...want], `${dtype} ${name}`);
    }
  }
});

/** Builds a file from a raw header object and data bytes. */
function raw(header: unknown, data: Uint8Array, lie?: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(lie ?? json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

Deno.test("safetensors refuses truncated files and header lies, naming the problem", async () => {
  const good = serializeSafetensors(sample());
  const cut = good.subarray(0, good.byteLength - 5);
  await assertTandemError(
    () => parseSafetensors(cut, "m.safetensors"),
    "bad_model",
    /m\.safetensors: file is truncated \(\d+ bytes; tensor \S+ ends at byte \d+\)/,
  );
  await assertTandemError(
    () => parseSafetensors(good.subarray(0, 5), "m"),
    "bad_model",
    /too short/,
  );
  await assertTandemError(
    () => parseSafetensors(good.subarray(0, 20), "m"),
    "bad_model",
    /truncated .* header alone needs/,
  );
  await assertTandemError(
    () => parseSafetensors(raw({}, new Uint8Array(), 2 ** 40), "m"),
    "bad_model",
    /header length .* not plausible/,
  );
  const bad = raw({}, new Uint8Array());
  bad[8] = 0x7b; // "{" then garbage
  bad[9] = 0x7b;
  await assertTandemError(() => parseSafetensors(bad, "m"), "bad_model", /not valid JSON/);
  await assertTandemError(
    () => parseSafetensors(raw([1], new Uint8Array()), "m"),
    "bad_model",
    /not a JSON object/,
  );
  const d8 = new Uint8Array(8);
  const t = (extra: object) => ({
    x: { dtype: "F32", shape: [2], data_offsets: [0, 8], ...extra },
  });
  await assertTandemError(
    () => parseSafetensors(raw(t({ shape: [3] }), d8), "m"),
    "bad_model",
    /tensor x \(F32 \[3\]\) needs 12 bytes, its offsets \[0, 8\) hold 8/,
  );
  await assertTandemError(
    () => parseSafetensors(raw(t({ dtype: "Q4" }), d8), "m"),
    "bad_model",
    /tensor x has unknown dtype "Q4"/,
  );
  await assertTandemError(
    () => parseSafetensors(raw(t({ shape: [-2] }), d8), "m"),
    "bad_model",
    /invalid shape/,
  );
  await assertTandemError(
    () => parseSafetensors(raw(t({ data_offsets: [8, 0] }), d8), "m"),
    "bad_model",
    /invalid data_offsets/,
  );
  const two = { ...t({}), y: { dtype: "F32", shape: [1], data_offsets: [4, 8] } };
  await assertTandemError(
    () => parseSafetensors(raw(two, new Uint8Array(8)), "m"),
    "bad_model",
    /overlaps/,
  );
  const hole = { x: { dtype: "F32", shape: [1], data_offsets: [4, 8] } };
  await assertTandemError(
    () => parseSafetensors(raw(hole, d8), "m"),
    "bad_model",
    /hole of 4 bytes before tensor x/,
  );
  await assertTandemError(
    () => parseSafetensors(raw(t({}), new Uint8Array(12)), "m"),
    "bad_model",
    /4 bytes after the last tensor/,
  );
  const ints = parseSafetensors(
    raw({ i: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, d8),
    "m",
  );
  await assertTandemError(
    () => ints.f32("i"),
    "bad_model",
    /tensor i has dtype I64; only F32, F16 and BF16/,
  );
  await assertTandemError(() => ints.f32("nope"), "bad_model", /tensor nope is missing/);
});

Deno.test("safetensors index maps tensors to shard files and refuses odd paths", async () => {
  const map = parseSafetensorsIndex(
    JSON.stringify({ metadata: {}, weight_map: { a: "s1.safetensors" } }),
  );
  assert.equal(map.get("a"), "s1.safetensors");
  await assertTandemError(() => parseSafetensorsIndex("{"), "bad_model", /not valid JSON/);
  await assertTandemError(() => parseSafetensorsIndex("{}"), "bad_model", /no "weight_map"/);
  await assertTandemError(
    () => parseSafetensorsIndex('{"weight_map":{"a":"../x"}}'),
    "bad_model",
    /tensor a maps to/,
  );
});
