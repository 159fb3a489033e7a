/**
 * Packing a model for a split: the device shard, the edge shard, and a manifest of digests,
 * so a device downloads only its own layers and both sides can prove they hold halves of the
 * same model.
 *
 * `manifest.json`:
 *
 * | field           | meaning                                                         |
 * | --------------- | --------------------------------------------------------------- |
 * | `format`        | `tandem-pack`, `version` 1                                      |
 * | `modelId`       | model id                                                        |
 * | `modelDigest`   | weights digest of the whole model                               |
 * | `split`         | K: the device holds layers [0, K), the edge [K, L)              |
 * | `config`        | the model config                                                |
 * | `tensorDigests` | digest of every tensor of the whole model                       |
 * | `shards`        | `device` and `edge`: `file`, `bytes`, `sha256` of the file, `shardDigest`, `parts` |
 *
 * @example
 * ```ts
 * import { packModel } from "./pack.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const { files, manifest } = await packModel(model, { modelId: "stories260K", split: 2 });
 * console.log([...files.keys()]); // ["device.safetensors", "edge.safetensors", "manifest.json"]
 * ```
 *
 * @module
 */

import { digestModel, sha256Hex } from "./digest.ts";
import type { Model, ModelConfig, ModelParts } from "./model.ts";
import { makeShard } from "./shard.ts";
import { serializeShard } from "./shard_file.ts";

/** One shard's entry in the manifest. */
export interface ManifestShard {
  /** File name beside the manifest. */
  file: string;
  /** File size in bytes. */
  bytes: number;
  /** SHA-256 of the file (hex). */
  sha256: string;
  /** Digest of the tensors the shard holds. */
  shardDigest: string;
  /** Which parts the shard holds. */
  parts: ModelParts;
}

/** The pack manifest (`manifest.json`). */
export interface PackManifest {
  /** Always "tandem-pack". */
  format: "tandem-pack";
  /** Manifest version (1). */
  version: 1;
  /** Model id. */
  modelId: string;
  /** Weights digest of the whole model. */
  modelDigest: string;
  /** Split layer K. */
  split: number;
  /** The model config. */
  config: ModelConfig;
  /** Digest of every tensor of the whole model. */
  tensorDigests: Record<string, string>;
  /** The two shards. */
  shards: { device: ManifestShard; edge: ManifestShard };
}

/**
 * Cuts a whole model at split K into `device.safetensors` and `edge.safetensors` and writes
 * `manifest.json` (as bytes, ready to store).
 *
 * @example
 * ```ts
 * import { packModel } from "./pack.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const { manifest } = await packModel(model, { modelId: "m", split: 1 });
 * console.log(manifest.shards.edge.parts.layers); // [1, L]
 * ```
 */
export async function packModel(
  model: Model,
  options: { modelId: string; split: number },
): Promise<{ files: Map<string, Uint8Array>; manifest: PackManifest }> {
  const { modelId, split } = options;
  const whole = await digestModel(model);
  const files = new Map<string, Uint8Array>();
  const entries: Record<string, ManifestShard> = {};
  for (const role of ["device", "edge"] as const) {
    const shard = await makeShard(model, modelId, role, split, whole);
    const bytes = serializeShard(shard);
    const file = `${role}.safetensors`;
    files.set(file, bytes);
    entries[role] = {
      file,
      bytes: bytes.byteLength,
      sha256: await sha256Hex(bytes),
      shardDigest: shard.shardDigest,
      parts: shard.model.parts,
    };
  }
  const manifest: PackManifest = {
    format: "tandem-pack",
    version: 1,
    modelId,
    modelDigest: whole.modelDigest!,
    split,
    config: model.config,
    tensorDigests: Object.fromEntries(whole.tensors),
    shards: { device: entries.device, edge: entries.edge },
  };
  files.set("manifest.json", new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n"));
  return { files, manifest };
}
