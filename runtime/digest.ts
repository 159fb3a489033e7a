/**
 * Weights digests: stable SHA-256 hashes of a model's config and tensors, so the device half
 * and the edge half of two different models are never mixed.
 *
 * - A **tensor digest** hashes one tensor: `u32 ndim`, `u32` dims, then its f32 values (all
 *   little-endian).
 * - The **model digest** hashes the text `tandem-model-v1\n`, the config as canonical JSON
 *   (keys sorted), and one line `name digest` per tensor of the *whole* model in canonical
 *   order. It needs every tensor's digest but not every tensor: a shard carries the digests
 *   of the tensors it lacks in its manifest, so either half recomputes the same model digest.
 * - A **shard digest** is the same hash over the tensors one shard holds, with its parts.
 *
 * Hashing uses `crypto.subtle` (Deno, Node, browsers, workers).
 *
 * @example
 * ```ts
 * import { digestModel } from "./digest.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const { modelDigest } = await digestModel(model);
 * console.log(modelDigest); // 64 hex digits
 * ```
 *
 * @module
 */

import { TandemError } from "./errors.ts";
import { expectedShapes, type Model, type ModelConfig, type ModelParts } from "./model.ts";

/**
 * Hex SHA-256 of some bytes.
 *
 * @example
 * ```ts
 * import { sha256Hex } from "./digest.ts";
 * console.log(await sha256Hex(new Uint8Array())); // e3b0c442...
 * ```
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return bytesToHex(new Uint8Array(hash));
}

/**
 * Lower-case hex of bytes.
 *
 * @example
 * ```ts
 * import { bytesToHex } from "./digest.ts";
 * console.log(bytesToHex(new Uint8Array([1, 255]))); // "01ff"
 * ```
 */
export function bytesToHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Bytes of a hex string; throws `bad_argument` when it is not hex.
 *
 * @example
 * ```ts
 * import { hexToBytes } from "./digest.ts";
 * console.log(hexToBytes("01ff")); // Uint8Array [1, 255]
 * ```
 */
export function hexToBytes(hex: string): Uint8Array {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) {
    throw new TandemError("bad_argument", `Cannot read digest: "${hex.slice(0, 70)}" is not hex`);
  }
  return Uint8Array.from(
    { length: hex.length / 2 },
    (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16),
  );
}

/**
 * JSON with object keys sorted at every level (a stable text for hashing).
 *
 * @example
 * ```ts
 * import { canonicalJson } from "./digest.ts";
 * console.log(canonicalJson({ b: 1, a: [2] })); // {"a":[2],"b":1}
 * ```
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
        : v,
  );
}

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Digests of every tensor a model (or shard) holds, by name.
 *
 * @example
 * ```ts
 * import { tensorDigests } from "./digest.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * console.log((await tensorDigests(model)).get("embed"));
 * ```
 */
export async function tensorDigests(model: Model): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of expectedShapes(model.config, model.parts).keys()) {
    const t = model.tensors.get(name);
    if (!t) throw new TandemError("bad_model", `Cannot digest model: tensor ${name} is missing`);
    const bytes = new Uint8Array(4 + 4 * t.shape.length + 4 * t.data.length);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, t.shape.length, true);
    t.shape.forEach((d, i) => v.setUint32(4 + 4 * i, d, true));
    const off = 4 + 4 * t.shape.length;
    if (LE) bytes.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), off);
    else t.data.forEach((x, i) => v.setFloat32(off + 4 * i, x, true));
    out.set(name, await sha256Hex(bytes));
  }
  return out;
}

async function digestOf(
  config: ModelConfig,
  parts: ModelParts,
  digests: ReadonlyMap<string, string>,
  what: string,
): Promise<string> {
  const lines = [`tandem-model-v1`, canonicalJson(config)];
  if (what === "shard") lines.push(canonicalJson(parts));
  for (const name of expectedShapes(config, parts).keys()) {
    const d = digests.get(name);
    if (!d) {
      throw new TandemError(
        "bad_model",
        `Cannot compute the ${what} digest: no digest for tensor ${name}`,
      );
    }
    lines.push(`${name} ${d}`);
  }
  return await sha256Hex(new TextEncoder().encode(lines.join("\n") + "\n"));
}

/**
 * The model digest from the digests of all its tensors (e.g. a shard manifest's list).
 * Throws `bad_model` when one is missing.
 *
 * @example
 * ```ts
 * import { modelDigestFrom, tensorDigests } from "./digest.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * console.log(await modelDigestFrom(model.config, await tensorDigests(model)));
 * ```
 */
export function modelDigestFrom(
  config: ModelConfig,
  digests: ReadonlyMap<string, string>,
): Promise<string> {
  const all: ModelParts = { layers: [0, config.nLayers], embed: true, head: true };
  return digestOf(config, all, digests, "model");
}

/** All the digests of one model or shard. */
export interface ModelDigests {
  /** Digest of each held tensor. */
  tensors: Map<string, string>;
  /** Digest of what this object holds (config, parts, held tensors). */
  shardDigest: string;
  /** Digest of the whole model; only when the object holds every tensor. */
  modelDigest?: string;
}

/**
 * Digests a model or shard: its tensors, its shard digest, and (when it holds the whole
 * model) its model digest.
 *
 * @example
 * ```ts
 * import { digestModel } from "./digest.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const d = await digestModel(model);
 * console.log(d.shardDigest === d.modelDigest); // false: the shard digest also hashes parts
 * ```
 */
export async function digestModel(model: Model): Promise<ModelDigests> {
  const tensors = await tensorDigests(model);
  const shardDigest = await digestOf(model.config, model.parts, tensors, "shard");
  const { layers, embed, head } = model.parts;
  const whole = layers[0] === 0 && layers[1] === model.config.nLayers && embed && head;
  const modelDigest = whole ? await modelDigestFrom(model.config, tensors) : undefined;
  return { tensors, shardDigest, modelDigest };
}
