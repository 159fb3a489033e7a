/**
 * Test fixtures: small seeded random models, an in-memory FileSource, a typed-error assertion.
 *
 * @example
 * ```ts
 * import { randomModel, tinyConfig } from "./_fixtures.ts";
 * const model = randomModel(tinyConfig({ nKvHeads: 1 }), 42);
 * console.log(model.tensors.size);
 * ```
 *
 * @module
 */

import assert from "node:assert/strict";
import { TandemError } from "../runtime/errors.ts";
import { expectedShapes, type Model, type ModelConfig } from "../runtime/model.ts";
import type { FileSource } from "../runtime/source.ts";

/**
 * A seeded PRNG (mulberry32) returning floats in [0, 1).
 *
 * @example
 * ```ts
 * import { rng } from "./_fixtures.ts";
 * const r = rng(1); console.log(r(), r());
 * ```
 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A tiny Llama config (dim 16, 2 layers, 4 heads, 2 KV heads, vocab 40), with overrides.
 *
 * @example
 * ```ts
 * import { tinyConfig } from "./_fixtures.ts";
 * const qwenish = tinyConfig({ qkvBias: true, tiedEmbeddings: false });
 * ```
 */
export function tinyConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    dim: 16,
    hiddenDim: 24,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 4,
    vocabSize: 40,
    maxSeqLen: 32,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedEmbeddings: true,
    qkvBias: false,
    bosId: 1,
    eosIds: [2],
    ...overrides,
  };
}

/**
 * A full model with seeded random weights: norms near 1, matrices uniform in ±1/sqrt(cols),
 * biases and embeddings uniform in ±0.5. Same config and seed ⇒ same bits.
 *
 * @example
 * ```ts
 * import { randomModel, tinyConfig } from "./_fixtures.ts";
 * const a = randomModel(tinyConfig(), 7);
 * const b = randomModel(tinyConfig(), 7); // identical to a
 * ```
 */
export function randomModel(config: ModelConfig, seed: number): Model {
  const r = rng(seed);
  const parts = { layers: [0, config.nLayers] as [number, number], embed: true, head: true };
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of expectedShapes(config, parts)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = name.endsWith("norm");
    const scale = shape.length === 2 && name !== "embed" ? 2 / Math.sqrt(shape[1]) : 1;
    for (let i = 0; i < n; i++) data[i] = isNorm ? 0.8 + 0.4 * r() : (r() - 0.5) * scale;
    tensors.set(name, { shape, data });
  }
  return { config, parts, tensors };
}

/**
 * An in-memory FileSource over a map of files; counts reads per file.
 *
 * @example
 * ```ts
 * import { MemSource } from "./_fixtures.ts";
 * const src = new MemSource(new Map([["a.txt", new Uint8Array([1])]]));
 * console.log(await src.exists("a.txt"), src.reads.get("a.txt") ?? 0);
 * ```
 */
export class MemSource implements FileSource {
  /** The files. */
  readonly files: Map<string, Uint8Array>;
  /** Number of reads per path. */
  readonly reads: Map<string, number> = new Map();

  /** Wraps a map of files. */
  constructor(files: Map<string, Uint8Array>) {
    this.files = files;
  }

  /** Returns a file or throws not_found. */
  read(path: string): Promise<Uint8Array> {
    this.reads.set(path, (this.reads.get(path) ?? 0) + 1);
    const f = this.files.get(path);
    if (!f) {
      return Promise.reject(new TandemError("not_found", `Cannot load mem:${path}: no such file`));
    }
    return Promise.resolve(f);
  }

  /** Whether the file is in the map. */
  exists(path: string): Promise<boolean> {
    return Promise.resolve(this.files.has(path));
  }

  /** `mem:{path}`. */
  describe(path = ""): string {
    return `mem:${path}`;
  }
}

/**
 * Asserts that `fn` throws (or rejects with) a TandemError with this code and a matching
 * message.
 *
 * @example
 * ```ts
 * import { assertTandemError } from "./_fixtures.ts";
 * await assertTandemError(() => { throw new Error("x"); }, "bad_model", /x/); // fails: not a TandemError
 * ```
 */
export async function assertTandemError(
  fn: () => unknown,
  code: string,
  pattern: RegExp,
): Promise<TandemError> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TandemError, `expected a TandemError, got ${caught}`);
  assert.equal(caught.code, code, `code of: ${caught.message}`);
  assert.match(caught.message, pattern);
  return caught;
}
