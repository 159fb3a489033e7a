/**
 * The safetensors format, read (the writer is `safetensors_write.ts`).
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
 * import { parseSafetensors } from "./safetensors.ts";
 * import { serializeSafetensors } from "./safetensors_write.ts";
 * const bytes = serializeSafetensors(new Map([["w", { shape: [2], data: new Float32Array([1, 2]) }]]));
 * const file = parseSafetensors(bytes, "model.safetensors");
 * console.log(file.f32("w").data); // Float32Array [1, 2]
 * ```
 *
 * @module
 */

import { bf16ToF32, f16ToF32 } from "../dtype.ts";
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

/** Where each tensor of a safetensors file lies, from its header alone. */
export interface SafetensorsLayout {
  /** Tensors by name, in header order: dtype, shape and byte span [begin, end) in the data. */
  tensors: Map<string, { dtype: string; shape: number[]; begin: number; end: number }>;
  /** The `__metadata__` strings, if any. */
  metadata: Record<string, string>;
  /** Byte offset of the data in the file (8 + the header's length). */
  dataStart: number;
  /** Byte length of the data the header describes. */
  dataLength: number;
}

/**
 * The header length N from a file's first 8 bytes (the header is bytes [8, 8 + N)). Throws
 * `bad_model` when they cannot start a safetensors file.
 *
 * @example
 * ```ts
 * import { safetensorsHeaderLength } from "./safetensors.ts";
 * declare const first8: Uint8Array;
 * const n = safetensorsHeaderLength(first8, "model.safetensors");
 * ```
 */
export function safetensorsHeaderLength(first8: Uint8Array, source = "safetensors file"): number {
  if (first8.byteLength < 8) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${source}: file is ${first8.byteLength} bytes, too short for a safetensors header`,
    );
  }
  const n = Number(new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true));
  if (n < 2 || n > HEADER_LIMIT) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${source}: header length ${n} is not plausible (not a safetensors file?)`,
    );
  }
  return n;
}

/**
 * Parses and validates a safetensors header (the JSON bytes after the length): known dtypes,
 * shapes, offsets that match each shape and cover the data without overlaps or holes.
 *
 * @example
 * ```ts
 * import { parseSafetensorsLayout } from "./safetensors.ts";
 * const json = new TextEncoder().encode('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}');
 * console.log(parseSafetensorsLayout(json).tensors.get("w")); // { dtype: "F32", shape: [2], begin: 0, end: 8 }
 * ```
 */
export function parseSafetensorsLayout(
  json: Uint8Array,
  source = "safetensors file",
): SafetensorsLayout {
  const fail = (why: string): never => {
    throw new TandemError("bad_model", `Cannot load ${source}: ${why}`);
  };
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("header is not a JSON object");
  }
  const tensors: SafetensorsLayout["tensors"] = new Map();
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
    spans.push([begin, end, name]);
    tensors.set(name, { dtype: info.dtype as string, shape: shape as number[], begin, end });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    if (begin < at) fail(`tensor ${name} overlaps the tensor before it (offset ${begin} < ${at})`);
    if (begin > at) fail(`data has a hole of ${begin - at} bytes before tensor ${name}`);
    at = end;
  }
  return { tensors, metadata, dataStart: 8 + json.byteLength, dataLength: at };
}

/**
 * A {@linkcode SafetensorsFile} over tensors whose bytes `bytesOf` gives (a view into a whole
 * file, or separately read ranges); tensors it has no bytes for are left out.
 *
 * @example
 * ```ts
 * import { parseSafetensorsLayout, safetensorsFile } from "./safetensors.ts";
 * const json = new TextEncoder().encode('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
 * const file = safetensorsFile(parseSafetensorsLayout(json), () => new Uint8Array(4), "x");
 * console.log(file.f32("w").data); // Float32Array [0]
 * ```
 */
export function safetensorsFile(
  layout: SafetensorsLayout,
  bytesOf: (name: string, begin: number, end: number) => Uint8Array | undefined,
  source = "safetensors file",
): SafetensorsFile {
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, t] of layout.tensors) {
    const bytes = bytesOf(name, t.begin, t.end);
    if (bytes) entries.set(name, { dtype: t.dtype, shape: t.shape, bytes });
  }
  return {
    entries,
    metadata: layout.metadata,
    f32: (name: string): Tensor => {
      const e = entries.get(name);
      if (!e) {
        throw new TandemError("bad_model", `Cannot load ${source}: tensor ${name} is missing`);
      }
      return { shape: e.shape.slice(), data: toF32(e, `${source}: tensor ${name}`) };
    },
  };
}

/**
 * Parses and validates a whole safetensors file. Throws `bad_model` naming the first problem.
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
  const n = safetensorsHeaderLength(bytes, source);
  if (8 + n > bytes.byteLength) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${source}: file is truncated (${bytes.byteLength} bytes; the header alone needs ${
        8 + n
      })`,
    );
  }
  const layout = parseSafetensorsLayout(bytes.subarray(8, 8 + n), source);
  const data = bytes.subarray(8 + n);
  for (const [name, t] of layout.tensors) {
    if (t.end > data.byteLength) {
      throw new TandemError(
        "bad_model",
        `Cannot load ${source}: file is truncated (${bytes.byteLength} bytes; tensor ${name} ends at byte ${
          8 + n + t.end
        })`,
      );
    }
  }
  if (layout.dataLength < data.byteLength) {
    throw new TandemError(
      "bad_model",
      `Cannot load ${source}: file holds ${
        data.byteLength - layout.dataLength
      } bytes after the last tensor (header describes ${8 + n + layout.dataLength})`,
    );
  }
  return safetensorsFile(layout, (_, begin, end) => data.subarray(begin, end), source);
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
