/**
 * The engine contract: run embedding, any contiguous layer range, and the head.
 *
 * This range API is the seam of the split: the device runs `[0, K)`, the edge runs
 * `[K, L)` and the head, with the same engine on different shards. Every engine
 * (the plain TypeScript reference, the wasm kernels) implements {@linkcode Engine}.
 *
 * Positions are explicit: `forward(cache, x, pos, from, to)` writes the keys and values
 * of its `n` tokens at `pos .. pos+n-1` and attends to `0 .. pos+t`. Rolling back (for
 * speculative decoding or replay) is just calling again with an earlier `pos`.
 *
 * @module
 */

import type { ModelConfig, ModelParts } from "./model.ts";
import { TandemError } from "./errors.ts";

/** A key/value cache for a range of layers. Opaque to callers beyond these fields. */
export interface KVCache {
  /** The layers this cache holds, [from, to). */
  readonly layers: readonly [number, number];
  /** Bytes currently allocated. */
  readonly bytes: number;
}

/** Runs a model (or shard) one piece at a time. */
export interface Engine {
  /** The full model's hyper-parameters. */
  readonly config: ModelConfig;
  /** The parts this engine holds. */
  readonly parts: ModelParts;
  /** A short name for diagnostics, e.g. "ref-f32" or "wasm-q8x2". */
  readonly name: string;
  /** Creates an empty cache for layers [from, to) (default: every layer held). */
  createCache(layers?: readonly [number, number]): KVCache;
  /** Token embeddings: returns [n, dim]. */
  embed(tokens: ArrayLike<number>): Float32Array;
  /**
   * Runs layers [from, to) on hidden states x: [n, dim] of tokens at positions pos..pos+n-1.
   * Returns the new hidden states [n, dim] (x itself is not modified).
   */
  forward(cache: KVCache, x: Float32Array, pos: number, from: number, to: number): Float32Array;
  /** Final norm + classifier on hidden states [n, dim]: returns logits [n, vocab]. */
  head(x: Float32Array): Float32Array;
  /** Frees resources (wasm memory, workers). */
  dispose(): void;
}

/**
 * Validates the arguments of {@linkcode Engine.forward} once, at the boundary; returns n.
 * Throws `bad_argument` naming what is wrong.
 */
export function checkForwardArgs(
  engine: Engine,
  cache: KVCache,
  x: Float32Array,
  pos: number,
  from: number,
  to: number,
): number {
  const { dim, maxSeqLen } = engine.config;
  const [lo, hi] = engine.parts.layers;
  if (!(Number.isInteger(from) && Number.isInteger(to) && lo <= from && from <= to && to <= hi)) {
    throw new TandemError(
      "bad_argument",
      `Cannot run layers [${from}, ${to}): this engine holds layers [${lo}, ${hi})`,
    );
  }
  if (from < cache.layers[0] || to > cache.layers[1]) {
    throw new TandemError(
      "bad_argument",
      `Cannot run layers [${from}, ${to}): the cache holds layers [${cache.layers[0]}, ${
        cache.layers[1]
      })`,
    );
  }
  if (x.length === 0 || x.length % dim !== 0) {
    throw new TandemError(
      "bad_argument",
      `Cannot run layers: input holds ${x.length} values, not a positive multiple of dim ${dim}`,
    );
  }
  const n = x.length / dim;
  if (!(Number.isInteger(pos) && pos >= 0 && pos + n <= maxSeqLen)) {
    throw new TandemError(
      "bad_argument",
      `Cannot run ${n} token(s) at position ${pos}: the context holds ${maxSeqLen} tokens`,
    );
  }
  return n;
}

/**
 * Validates the argument of {@linkcode Engine.head} once, at the boundary; returns n.
 * Throws `bad_argument` when the engine holds no head or x is not [n, dim].
 */
export function checkHeadArgs(engine: Engine, x: Float32Array, hasClassifier = true): number {
  const { dim } = engine.config;
  if (!engine.parts.head || !hasClassifier) {
    throw new TandemError("bad_argument", "Cannot run the head: this shard holds no classifier");
  }
  if (x.length === 0 || x.length % dim !== 0) {
    throw new TandemError(
      "bad_argument",
      `Cannot run the head: input holds ${x.length} values, not a multiple of dim ${dim}`,
    );
  }
  return x.length / dim;
}

/** Validates token ids against the vocabulary; throws `bad_argument`. */
export function checkTokens(config: ModelConfig, tokens: ArrayLike<number>): void {
  if (tokens.length === 0) {
    throw new TandemError("bad_argument", "Cannot embed an empty token list");
  }
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!(Number.isInteger(t) && t >= 0 && t < config.vocabSize)) {
      throw new TandemError(
        "bad_argument",
        `Cannot embed token ${t} at index ${i}: the vocabulary has ${config.vocabSize} tokens`,
      );
    }
  }
}
