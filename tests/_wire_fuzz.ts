/**
 * Fuzzing the wire frame decoder: mutations of valid frames (truncation, flipped bytes,
 * overwritten header fields, appended garbage, NaN/Inf in the payload) and the property that
 * any bytes decode to a self-consistent frame or fail with a typed error — never another
 * exception. Shared by `edge_fuzz_test.ts`, `_edge_fuzz.ts` and `bench/fuzz.ts`.
 *
 * @module
 */

import fc from "fast-check";
import { TandemError } from "../runtime/errors.ts";
import {
  decodeFrame,
  encodeFrame,
  FLAG_EMBED,
  FLAG_TOKENS,
  frameLength,
  WIRE_DTYPES,
} from "../runtime/wire.ts";
import { rowBytes, type WireDtype } from "../runtime/wire_payload.ts";

/** Header fields a mutation may overwrite: byte offset and width. */
export const FIELDS = {
  magic: [0, 4],
  major: [4, 1],
  minor: [5, 1],
  headerBytes: [6, 2],
  dtype: [8, 1],
  topK: [9, 1],
  flags: [10, 2],
  split: [12, 4],
  dim: [16, 4],
  n: [20, 4],
  pos: [24, 4],
  seq: [28, 4],
  idLength: [80, 1],
} as const;
type Field = keyof typeof FIELDS;

/** One change to a frame's bytes. */
export type Mutation =
  | { kind: "truncate"; at: number }
  | { kind: "byte"; at: number; value: number }
  | { kind: "field"; field: Field; value: number }
  | { kind: "append"; bytes: Uint8Array }
  | { kind: "nonfinite"; at: number; value: number };

/** A u32 biased to the values where checks sit. */
export const u32: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, 4, 5, 31, 32, 33, 63, 64, 65, 255, 256, 511, 512, 513, 65535, 65536),
  fc.constantFrom(2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 0x57444e54),
  fc.nat(),
);
const fraction = fc.double({ min: 0, max: 1, noNaN: true });

/** The arbitrary of mutations. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), at: fraction }),
  fc.record({ kind: fc.constant("byte" as const), at: fraction, value: fc.nat(255) }),
  fc.record({
    kind: fc.constant("field" as const),
    field: fc.constantFrom(...Object.keys(FIELDS) as Field[]),
    value: u32,
  }),
  fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({
    kind: fc.constant("nonfinite" as const),
    at: fraction,
    value: fc.constantFrom(NaN, Infinity, -Infinity, -1, 1e38),
  }),
);

/** Deterministic rows in [-2, 2) from a seed. */
export function rowsFor(seed: number, count: number): Float32Array {
  const rows = new Float32Array(count);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    rows[i] = (s / 2 ** 32) * 4 - 2;
  }
  return rows;
}

/** Applies a mutation to the bytes of a frame of `n` rows of `dim` (may return new bytes). */
export function mutate(
  bytes: Uint8Array,
  m: Mutation,
  n: number,
  dtype: WireDtype,
  dim: number,
): Uint8Array {
  const at = (f: number, len: number) => Math.max(0, Math.min(len - 1, Math.floor(f * len)));
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (m.kind) {
    case "truncate":
      return bytes.slice(0, at(m.at, bytes.length));
    case "byte":
      if (bytes.length) bytes[at(m.at, bytes.length)] = m.value;
      return bytes;
    case "field": {
      const [off, width] = FIELDS[m.field];
      if (off + width > bytes.length) return bytes;
      if (width === 1) v.setUint8(off, m.value & 0xff);
      else if (width === 2) v.setUint16(off, m.value & 0xffff, true);
      else v.setUint32(off, m.value >>> 0, true);
      return bytes;
    }
    case "append": {
      const out = new Uint8Array(bytes.length + m.bytes.length);
      out.set(bytes);
      out.set(m.bytes, bytes.length);
      return out;
    }
    case "nonfinite": {
      const payload = bytes.length - n * rowBytes(dtype, dim);
      if (payload < 0) return bytes;
      if (dtype === "f32") v.setFloat32(payload + 4 * at(m.at, n * dim), m.value, true);
      else if (dtype === "f16") {
        const bits = Number.isNaN(m.value) ? 0x7e01 : m.value < 0 ? 0xfc00 : 0x7c00;
        v.setUint16(payload + 2 * at(m.at, n * dim), bits, true);
      } else v.setFloat32(payload + 4 * at(m.at, n), m.value, true); // an int8 scale
      return bytes;
    }
  }
}

/** Frame bytes: a valid frame with 0–4 mutations, or random bytes. */
export const frameBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  {
    weight: 9,
    arbitrary: fc.record({
      dtype: fc.constantFrom(...WIRE_DTYPES),
      n: fc.integer({ min: 1, max: 6 }),
      dim: fc.integer({ min: 1, max: 40 }),
      flags: fc.oneof(fc.constant(0), fc.nat(0xffff)),
      modelId: fc.string({ maxLength: 30 }),
      seed: fc.nat(),
      mutations: fc.array(mutation, { maxLength: 4 }),
    }).map((c) => {
      let bytes: Uint8Array = encodeFrame({
        dtype: c.dtype,
        flags: c.flags,
        split: 1,
        dim: c.dim,
        pos: 0,
        seq: 0,
        modelId: c.modelId,
        session: new Uint8Array(16),
        digest: new Uint8Array(32),
        tokens: c.flags & (FLAG_TOKENS | FLAG_EMBED) ? new Uint32Array(c.n) : undefined,
        // Token prefill (wire 1.2): token ids only, no rows.
        rows: c.flags & FLAG_EMBED ? new Float32Array(0) : rowsFor(c.seed, c.n * c.dim),
      });
      for (const m of c.mutations) bytes = mutate(bytes, m, c.n, c.dtype, c.dim);
      return bytes;
    }),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
);

const DECODER_CODES = new Set(["bad_frame", "unsupported_version", "too_large"]);

/**
 * Decodes `bytes`; returns the outcome ("ok" or the error code), or throws when the decoder
 * misbehaves (another exception, or a frame that contradicts its own header).
 *
 * @example
 * ```ts
 * import { decodeOutcome } from "./_wire_fuzz.ts";
 * console.log(decodeOutcome(new Uint8Array(3))); // "bad_frame"
 * ```
 */
export function decodeOutcome(bytes: Uint8Array): string {
  let f;
  try {
    f = decodeFrame(bytes, { maxTokens: 64, maxDim: 4096 });
  } catch (e) {
    if (e instanceof TandemError && DECODER_CODES.has(e.code)) return e.code;
    throw new Error(`the decoder threw ${e} for ${bytes.length} bytes`);
  }
  const n = frameLength(f);
  const consistent = Number.isInteger(n) && n >= 1 && n <= 64 && f.session.length === 16 &&
    f.digest.length === 32 && f.rows.every(Number.isFinite) &&
    (!(f.flags! & (FLAG_TOKENS | FLAG_EMBED)) || f.tokens?.length === n) &&
    (!(f.flags! & FLAG_EMBED) || f.rows.length === 0);
  if (!consistent) {
    throw new Error(`the decoder returned an inconsistent frame (${bytes.length} bytes)`);
  }
  return "ok";
}

/** The decoder property. */
export const decoderProperty: fc.IPropertyWithHooks<[Uint8Array]> = fc.property(
  frameBytes,
  (bytes) => void decodeOutcome(bytes),
);
