/**
 * The shard file: a safetensors container (readable by any safetensors tool) whose
 * `__metadata__` ties it to its model.
 *
 * | offset | size | field                                                              |
 * | ------ | ---- | ------------------------------------------------------------------ |
 * | 0      | u64  | N: bytes of the JSON header (little-endian)                        |
 * | 8      | N    | JSON header, space-padded so the data starts at a multiple of 8    |
 * | 8 + N  | …    | tensor data: f32 little-endian, row-major, in canonical order      |
 *
 * The header maps each tensor name to `{ "dtype": "F32", "shape", "data_offsets": [begin, end] }`
 * (offsets relative to the data) and holds `__metadata__`, whose values are strings:
 *
 * | key             | value                                                          |
 * | --------------- | -------------------------------------------------------------- |
 * | `format`        | `tandem-shard`                                                 |
 * | `version`       | `1`                                                            |
 * | `modelId`       | e.g. `stories260K`                                             |
 * | `config`        | the {@linkcode ModelConfig} as JSON                            |
 * | `parts`         | the {@linkcode ModelParts} held, as JSON                       |
 * | `modelDigest`   | SHA-256 weights digest of the whole model (hex)                |
 * | `shardDigest`   | digest of what this file holds (hex)                           |
 * | `tensorDigests` | JSON object: digest of every tensor of the whole model        |
 *
 * @example
 * ```ts
 * import { parseShard, serializeShard } from "./shard_file.ts";
 * import type { Shard } from "./shard.ts";
 * declare const shard: Shard;
 * const again = parseShard(serializeShard(shard));
 * console.log(again.model.parts);
 * ```
 *
 * @module
 */

import { TandemError } from "./errors.ts";
import {
  expectedShapes,
  type ModelConfig,
  type ModelParts,
  type Tensor,
  validateModel,
} from "./model.ts";
import type { Shard } from "./shard.ts";

const FORMAT = "tandem-shard";

/**
 * Serialises a shard to safetensors bytes.
 *
 * @example
 * ```ts
 * import { serializeShard } from "./shard_file.ts";
 * import type { Shard } from "./shard.ts";
 * declare const shard: Shard;
 * const bytes = serializeShard(shard);
 * ```
 */
export function serializeShard(shard: Shard): Uint8Array {
  const { config, parts, tensors } = shard.model;
  const header: Record<string, unknown> = {
    __metadata__: {
      format: FORMAT,
      version: "1",
      modelId: shard.modelId,
      config: JSON.stringify(config),
      parts: JSON.stringify(parts),
      modelDigest: shard.modelDigest,
      shardDigest: shard.shardDigest,
      tensorDigests: JSON.stringify(Object.fromEntries(shard.tensorDigests)),
    },
  };
  const names = [...expectedShapes(config, parts).keys()];
  let off = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(padded - json.length));
  }
  const out = new Uint8Array(8 + padded + off);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  let p = 8 + padded;
  for (const name of names) {
    const d = tensors.get(name)!.data;
    for (let i = 0; i < d.length; i++) v.setFloat32(p + 4 * i, d[i], true);
    p += d.byteLength;
  }
  return out;
}

/**
 * Whether bytes look like a tandem shard file (cheap sniff; {@linkcode parseShard} validates).
 *
 * @example
 * ```ts
 * import { isShardFile } from "./shard_file.ts";
 * console.log(isShardFile(new Uint8Array(28))); // false
 * ```
 */
export function isShardFile(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 16) return false;
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.byteLength - 8)) return false;
  const head = new TextDecoder().decode(bytes.subarray(8, Math.min(8 + Number(n), 8 + 4096)));
  return head.startsWith("{") && head.includes(`"${FORMAT}"`);
}

/**
 * Reads a shard file. Throws `bad_model` naming what is wrong; does not hash (call
 * `verifyShard` from `shard.ts` for that).
 *
 * @example
 * ```ts
 * import { parseShard } from "./shard_file.ts";
 * declare const bytes: Uint8Array;
 * const shard = parseShard(bytes, "edge.safetensors");
 * ```
 */
export function parseShard(bytes: Uint8Array, source = "shard"): Shard {
  const fail = (why: string): never => {
    throw new TandemError("bad_model", `Cannot load ${source}: ${why}`);
  };
  if (bytes.byteLength < 8) fail(`file is ${bytes.byteLength} bytes, too short for a header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(v.getBigUint64(0, true));
  if (n > bytes.byteLength - 8) {
    fail(`header claims ${n} bytes, the file holds ${bytes.byteLength}`);
  }
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  let meta: Record<string, string>;
  let config: ModelConfig;
  let parts: ModelParts;
  let digests: Record<string, string>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    meta = header.__metadata__ as unknown as Record<string, string>;
    if (meta?.format !== FORMAT) fail("not a tandem shard (no tandem-shard metadata)");
    if (meta.version !== "1") fail(`shard format version ${meta.version} is not supported`);
    config = JSON.parse(meta.config);
    parts = JSON.parse(meta.parts);
    digests = JSON.parse(meta.tensorDigests);
  } catch (e) {
    if (e instanceof TandemError) throw e;
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + n;
  const tensors = new Map<string, Tensor>();
  for (const [name, shape] of expectedShapes(config, parts)) {
    const entry = header[name] ?? fail(`tensor ${name} is missing`);
    if (entry.dtype !== "F32") fail(`tensor ${name} has dtype ${entry.dtype}, only F32 is read`);
    const [begin, end] = entry.data_offsets ?? [];
    const count = shape.reduce((a, b) => a * b, 1);
    if (
      !(Number.isInteger(begin) && end - begin === 4 * count && dataStart + end <= bytes.byteLength)
    ) {
      fail(`tensor ${name} lies outside the file or has the wrong size`);
    }
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = v.getFloat32(dataStart + begin + 4 * i, true);
    tensors.set(name, { shape: entry.shape, data });
  }
  const model = { config, parts, tensors };
  validateModel(model, source);
  return {
    modelId: meta.modelId,
    model,
    modelDigest: meta.modelDigest,
    shardDigest: meta.shardDigest,
    tensorDigests: new Map(Object.entries(digests)),
  };
}
