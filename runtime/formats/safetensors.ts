/**
 * The safetensors format, read and written.
 *
 * | offset  | type       | field                                                          |
 * | ------- | ---------- | -------------------------------------------------------------- |
 * | 0       | u64 LE     | N, byte length of the JSON header                              |
 * | 8       | UTF-8 JSON | `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {str: str} }` |
 * | 8 + N   | bytes      | tensor data; offsets are relative to here, row-major, little-endian |
 *
 * Every tensor's byte length must equal `product(shape) × size(dtype)`; tensors may not
 * overlap and must cover the data without holes. Parsing validates all of that once and keeps
 * tensors as byte views; {@linkcode SafetensorsFile.f32} converts one tensor (F32, F16, BF16)
 * to f32 on demand, so a shard only pays for the tensors it uses.
 *
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors(new Map([["w", { shape: [2], data: new Float32Array([1, 2]) }]]));
 * const file = parseSafetensors(bytes, "model.safetensors");
 * console.log(file.f32("w").data); // Float32Array [1, 2]
 * ```
 *
 * @module
 */

import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../dtype.ts";
import { TandemError } from "../errors.ts";
import type { Tensor } from "../model.ts";

/** Bytes per element of every dtype the format names (only F32/F16/BF16 convert to f32). */
const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** The dtypes tandem writes. */
export type SafetensorsDtype = "F32" | "F16" | "BF16";

/** One tensor as stored: dtype, shape and its raw little-endian bytes. */
export interface SafetensorsEntry {
  /** Stored dtype name, e.g. "BF16". */
  dtype: string;
  /** Shape, outermost first. */
  shape: number[];
  /** The tensor's bytes (a view into the file). */
  bytes: Uint8Array;
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  /** Tensors by name, in header order. */
  entries: Map<string, SafetensorsEntry>;
  /** The `__metadata__` strings, if any. */
  metadata: Record<string, string>;
  /** Converts a tensor to f32; throws `bad_model` if it is missing or not F32/F16/BF16. */
  f32(name: string): Tensor;
}

const HEADER_LIMIT = 100_000_000;

/**
 * Parses and validates a safetensors file. Throws `bad_model` naming the first problem.
 *
 * @example
 * ```ts
 * import { parseSafetensors } from "./safetensors.ts";
 * declare const bytes: Uint8Array;
 * const file = parseSafetensors(bytes, "model.safetensors");
 * for (const [name, e] of file.entries) console.log(name, e.dtype, e.shape);
 * ```
 */
export function parseSafetensors(bytes: Uint8Array, source = "safetensors file"): SafetensorsFile {
  const fail = (why: string): never => {
    throw new TandemError("bad_model", `Cannot load ${source}: ${why}`);
  };
  if (bytes.byteLength < 8) {
    fail(`file is ${bytes.byteLength} bytes, too short for a safetensors header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n < 2 || n > HEADER_LIMIT) {
    fail(`header length ${n} is not plausible (not a safetensors file?)`);
  }
  if (8 + n > bytes.byteLength) {
    fail(`file is truncated (${bytes.byteLength} bytes; the header alone needs ${8 + n})`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("header is not a JSON object");
  }
  const data = bytes.subarray(8 + n);
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const size = typeof info?.dtype === "string" ? DTYPE_BYTES[info.dtype] : undefined;
    if (!size) fail(`tensor ${name} has unknown dtype ${JSON.stringify(info?.dtype)}`);
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
    }
    const off = info.data_offsets;
    if (
      !Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o)) ||
      off[0] < 0 || off[1] < off[0]
    ) {
      fail(`tensor ${name} has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    const want = (shape as number[]).reduce((a, b) => a * b, 1) * size!;
    if (end - begin !== want) {
      fail(
        `tensor ${name} (${info.dtype} [${shape}]) needs ${want} bytes, its offsets [${begin}, ${end}) hold ${
          end - begin
        }`,
      );
    }
    if (end > data.byteLength) {
      fail(
        `file is truncated (${bytes.byteLength} bytes; tensor ${name} ends at byte ${8 + n + end})`,
      );
    }
    spans.push([begin, end, name]);
    entries.set(name, {
      dtype: info.dtype as string,
      shape: shape as number[],
      bytes: data.subarray(begin, end),
    });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    if (begin < at) fail(`tensor ${name} overlaps the tensor before it (offset ${begin} < ${at})`);
    if (begin > at) fail(`data has a hole of ${begin - at} bytes before tensor ${name}`);
    at = end;
  }
  if (at !== data.byteLength) {
    fail(
      `file holds ${data.byteLength - at} bytes after the last tensor (header describes ${
        8 + n + at
      })`,
    );
  }
  return {
    entries,
    metadata,
    f32: (name: string): Tensor => {
      const e = entries.get(name);
      if (!e) {
        throw new TandemError("bad_model", `Cannot load ${source}: tensor ${name} is missing`);
      }
      return { shape: e.shape.slice(), data: toF32(e, `${source}: tensor ${name}`) };
    },
  };
}

/** Converts one stored tensor to a fresh f32 array. */
function toF32(e: SafetensorsEntry, what: string): Float32Array {
  const count = e.shape.reduce((a, b) => a * b, 1);
  // Copy into an aligned buffer first: tensor data need not start on a 4-byte boundary.
  const aligned = new Uint8Array(e.bytes.byteLength);
  aligned.set(e.bytes);
  switch (e.dtype) {
    case "F32":
      return new Float32Array(aligned.buffer, 0, count);
    case "F16":
      return f16ToF32(new Uint16Array(aligned.buffer, 0, count));
    case "BF16":
      return bf16ToF32(new Uint16Array(aligned.buffer, 0, count));
    default:
      throw new TandemError(
        "bad_model",
        `Cannot load ${what} has dtype ${e.dtype}; only F32, F16 and BF16 are supported`,
      );
  }
}

/**
 * Writes f32 tensors as a safetensors file, stored as `dtype` (default F32), in map order.
 *
 * @example
 * ```ts
 * import { serializeSafetensors } from "./safetensors.ts";
 * const t = new Map([["norm", { shape: [4], data: new Float32Array(4).fill(1) }]]);
 * const bytes = serializeSafetensors(t, { dtype: "BF16", metadata: { format: "pt" } });
 * console.log(bytes.byteLength);
 * ```
 */
export function serializeSafetensors(
  tensors: ReadonlyMap<string, Tensor>,
  options: { dtype?: SafetensorsDtype; metadata?: Record<string, string> } = {},
): Uint8Array {
  const dtype = options.dtype ?? "F32";
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  const payloads: Uint8Array[] = [];
  let at = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new TandemError(
        "bad_argument",
        `Cannot write tensor ${name}: shape [${t.shape}] needs ${count} values, it holds ${t.data.length}`,
      );
    }
    const raw = dtype === "F32" ? t.data : dtype === "F16" ? f32ToF16(t.data) : f32ToBf16(t.data);
    const bytes = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    header[name] = { dtype, shape: t.shape, data_offsets: [at, at + bytes.byteLength] };
    payloads.push(bytes);
    at += bytes.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8; // keep the data 8-byte aligned
  if (padded !== json.byteLength) {
    json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(padded - json.byteLength));
  }
  const out = new Uint8Array(8 + json.byteLength + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let off = 8 + json.byteLength;
  for (const p of payloads) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/**
 * Reads a sharded checkpoint's `model.safetensors.index.json`: tensor name → shard file name.
 *
 * @example
 * ```ts
 * import { parseSafetensorsIndex } from "./safetensors.ts";
 * const map = parseSafetensorsIndex('{"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}');
 * console.log(map.get("lm_head.weight"));
 * ```
 */
export function parseSafetensorsIndex(
  text: string,
  source = "model.safetensors.index.json",
): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${source}: not valid JSON (${(e as Error).message})`,
    );
  }
  const map = (json as { weight_map?: unknown })?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new TandemError("bad_model", `Cannot load ${source}: it has no "weight_map" object`);
  }
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(map)) {
    if (typeof file !== "string" || file.includes("..") || file.startsWith("/")) {
      throw new TandemError(
        "bad_model",
        `Cannot load ${source}: tensor ${name} maps to ${JSON.stringify(file)}`,
      );
    }
    out.set(name, file);
  }
  return out;
}
