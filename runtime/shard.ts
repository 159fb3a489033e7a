/**
 * Cutting a model into the device shard and the edge shard of a split at layer K.
 *
 * | shard  | parts                             | tensors                                       |
 * | ------ | --------------------------------- | --------------------------------------------- |
 * | device | layers [0, K), embed, head        | embed, layers 0..K-1, norm (+ output): the head is for the router's early exit |
 * | edge   | layers [K, L), head               | layers K..L-1, norm, output — or embed when the classifier is tied |
 *
 * A {@linkcode Shard} carries, besides its tensors, the digest of every tensor of the whole
 * model, so it can prove which model it belongs to (see `digest.ts`) without holding it.
 *
 * @example
 * ```ts
 * import { makeShard } from "./shard.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const device = await makeShard(model, "stories260K", "device", 2);
 * console.log(device.model.parts); // { layers: [0, 2], embed: true, head: true }
 * ```
 *
 * @module
 */

import { digestModel, modelDigestFrom, type ModelDigests, tensorDigests } from "./digest.ts";
import { check, TandemError } from "./errors.ts";
import { expectedShapes, type Model, type ModelParts, validateModel } from "./model.ts";

/** A model (or part of one) with the digests that tie it to its whole model. */
export interface Shard {
  /** Model id, e.g. "stories260K". */
  modelId: string;
  /** The tensors held and which parts they are. */
  model: Model;
  /** Digest of the whole model. */
  modelDigest: string;
  /** Digest of every tensor of the whole model, by name. */
  tensorDigests: Map<string, string>;
  /** Digest of what this shard holds. */
  shardDigest: string;
}

/** Which side of the split a shard serves. */
export type ShardRole = "device" | "edge" | "full";

/**
 * The parts a role holds at split K.
 *
 * @example
 * ```ts
 * import { shardParts } from "./shard.ts";
 * console.log(shardParts("edge", 2, 5)); // { layers: [2, 5], embed: false, head: true }
 * ```
 */
export function shardParts(role: ShardRole, split: number, nLayers: number): ModelParts {
  if (role === "full") return { layers: [0, nLayers], embed: true, head: true };
  check(
    Number.isInteger(split) && split >= 1 && split < nLayers,
    "bad_argument",
    () => `Cannot cut a shard at layer ${split}: the split must be 1..${nLayers - 1}`,
  );
  return role === "device"
    ? { layers: [0, split], embed: true, head: true }
    : { layers: [split, nLayers], embed: false, head: true };
}

/**
 * A model holding only `parts` of `model` (tensors shared, not copied). Throws
 * `bad_argument` when `model` lacks a part.
 *
 * @example
 * ```ts
 * import { cutModel } from "./shard.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const edge = cutModel(model, { layers: [2, 5], embed: false, head: true });
 * ```
 */
export function cutModel(model: Model, parts: ModelParts): Model {
  const tensors = new Map();
  for (const name of expectedShapes(model.config, parts).keys()) {
    const t = model.tensors.get(name);
    if (!t) {
      throw new TandemError(
        "bad_argument",
        `Cannot cut layers [${parts.layers}]: the source model lacks tensor ${name}`,
      );
    }
    tensors.set(name, t);
  }
  const cut = { config: model.config, parts: structuredClone(parts), tensors };
  validateModel(cut, "shard");
  return cut;
}

/**
 * Cuts and digests the shard of `role` at split K from a whole model (pass the whole
 * model's `digests` when cutting several shards, to hash it once).
 *
 * @example
 * ```ts
 * import { makeShard } from "./shard.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const edge = await makeShard(model, "stories260K", "edge", 3);
 * console.log(edge.modelDigest);
 * ```
 */
export async function makeShard(
  model: Model,
  modelId: string,
  role: ShardRole,
  split = 0,
  digests?: ModelDigests,
): Promise<Shard> {
  const whole = digests ?? await digestModel(model);
  if (!whole.modelDigest) {
    throw new TandemError("bad_argument", "Cannot cut shards: the source is itself a shard");
  }
  const cut = cutModel(model, shardParts(role, split, model.config.nLayers));
  return {
    modelId,
    model: cut,
    modelDigest: whole.modelDigest,
    tensorDigests: whole.tensors,
    shardDigest: (await digestModel(cut)).shardDigest,
  };
}

/**
 * Recomputes a shard's digests from its tensors and checks them against its manifest;
 * throws `bad_model` on any difference (a corrupted or tampered file).
 *
 * @example
 * ```ts
 * import { verifyShard, type Shard } from "./shard.ts";
 * declare const shard: Shard;
 * await verifyShard(shard);
 * ```
 */
export async function verifyShard(shard: Shard, source = "shard"): Promise<void> {
  const held = await tensorDigests(shard.model);
  for (const [name, d] of held) {
    check(
      shard.tensorDigests.get(name) === d,
      "bad_model",
      () => `Cannot load ${source}: tensor ${name} does not match its digest (corrupted file?)`,
    );
  }
  const modelDigest = await modelDigestFrom(shard.model.config, shard.tensorDigests);
  check(
    modelDigest === shard.modelDigest,
    "bad_model",
    () => `Cannot load ${source}: its manifest does not hash to the model digest it names`,
  );
  const { shardDigest } = await digestModel(shard.model);
  check(
    shardDigest === shard.shardDigest,
    "bad_model",
    () => `Cannot load ${source}: shard digest ${shardDigest} differs from ${shard.shardDigest}`,
  );
}
