/**
 * The models an edge serves: each with its weights digest, the layers it holds, the engine
 * that runs them, and (for the OpenAI-compatible route) a tokenizer.
 *
 * An edge may hold a whole model (it serves every split and the all-edge chat route) or an
 * edge shard for split K (it serves splits ≥ K: the device must run at least [0, K)).
 *
 * @example
 * ```ts
 * import { prepareModels } from "./models.ts";
 * import type { Model } from "../runtime/model.ts";
 * declare const model: Model;
 * const models = await prepareModels([{ id: "stories260K", model }]);
 * console.log(models.get("stories260K")!.digest);
 * ```
 *
 * @module
 */

import { digestModel, hexToBytes } from "../runtime/digest.ts";
import type { Engine } from "../runtime/engine.ts";
import { TandemError } from "../runtime/errors.ts";
import { RefEngine } from "../runtime/forward.ts";
import type { Model, ModelConfig, ModelParts } from "../runtime/model.ts";
import type { Shard } from "../runtime/shard.ts";
import type { Tokenizer } from "../runtime/tokenizer/tokenizer.ts";

/** A model as handed to the edge. */
export interface EdgeModelSpec {
  /** Model id clients name, e.g. "stories260K". */
  id: string;
  /** The whole model or an edge shard. */
  model: Model;
  /** Weights digest of the whole model; computed when `model` is whole, required otherwise. */
  digest?: string;
  /** Tokenizer, needed only for `/v1/chat/completions`. */
  tokenizer?: Tokenizer;
}

/** Builds the engine for a model (default: the reference engine). */
export type EngineFactory = (model: Model) => Engine | Promise<Engine>;

/** A model ready to serve. */
export interface EdgeModel {
  /** Model id. */
  id: string;
  /** Full model config. */
  config: ModelConfig;
  /** Parts held. */
  parts: ModelParts;
  /** Weights digest of the whole model (hex). */
  digest: string;
  /** The same digest as bytes (compared against frames). */
  digestBytes: Uint8Array;
  /** The engine running the held layers. */
  engine: Engine;
  /** Tokenizer, when given. */
  tokenizer?: Tokenizer;
}

/**
 * An edge model spec from a loaded shard (its manifest gives the model digest).
 *
 * @example
 * ```ts
 * import { specFromShard } from "./models.ts";
 * import type { Shard } from "../runtime/shard.ts";
 * declare const shard: Shard;
 * const spec = specFromShard(shard);
 * ```
 */
export function specFromShard(shard: Shard, tokenizer?: Tokenizer): EdgeModelSpec {
  return { id: shard.modelId, model: shard.model, digest: shard.modelDigest, tokenizer };
}

/**
 * Digests the models and builds their engines. Throws `bad_model` when a shard comes
 * without its model digest or two models share an id.
 *
 * @example
 * ```ts
 * import { prepareModels } from "./models.ts";
 * import { RefEngine } from "../runtime/forward.ts";
 * import type { Model } from "../runtime/model.ts";
 * declare const model: Model;
 * const models = await prepareModels([{ id: "m", model }], (m) => new RefEngine(m));
 * ```
 */
export async function prepareModels(
  specs: readonly EdgeModelSpec[],
  engineFactory: EngineFactory = (m) => new RefEngine(m),
): Promise<Map<string, EdgeModel>> {
  const out = new Map<string, EdgeModel>();
  for (const spec of specs) {
    if (out.has(spec.id)) {
      throw new TandemError("bad_model", `Cannot serve two models with the id ${spec.id}`);
    }
    let digest = spec.digest;
    if (!digest) {
      digest = (await digestModel(spec.model)).modelDigest;
      if (!digest) {
        throw new TandemError(
          "bad_model",
          `Cannot serve ${spec.id}: it is a shard, pass its model digest (from the shard's manifest)`,
        );
      }
    }
    const engine = await engineFactory(spec.model);
    out.set(spec.id, {
      id: spec.id,
      config: spec.model.config,
      parts: spec.model.parts,
      digest,
      digestBytes: hexToBytes(digest),
      engine,
      tokenizer: spec.tokenizer,
    });
  }
  return out;
}

/**
 * Whether this edge model can serve a split at layer K (it holds [K, L) and the head), and
 * why not.
 *
 * @example
 * ```ts
 * import { splitProblem, type EdgeModel } from "./models.ts";
 * declare const m: EdgeModel;
 * console.log(splitProblem(m, 2) ?? "ok");
 * ```
 */
export function splitProblem(m: EdgeModel, split: number): string | undefined {
  const L = m.config.nLayers;
  if (!(Number.isInteger(split) && split >= 1 && split < L)) {
    return `split ${split} is not a layer 1..${L - 1} of ${m.id}`;
  }
  if (split < m.parts.layers[0] || m.parts.layers[1] !== L || !m.parts.head) {
    return `this edge holds layers [${m.parts.layers[0]}, ${
      m.parts.layers[1]
    }) of ${m.id}, a split at ${split} needs [${split}, ${L}) and the head`;
  }
  return undefined;
}

/**
 * Whether the model can answer alone (all-edge chat): it holds everything.
 *
 * @example
 * ```ts
 * import { isWhole, type EdgeModel } from "./models.ts";
 * declare const m: EdgeModel;
 * console.log(isWhole(m));
 * ```
 */
export function isWhole(m: EdgeModel): boolean {
  return m.parts.embed && m.parts.head && m.parts.layers[0] === 0 &&
    m.parts.layers[1] === m.config.nLayers;
}
