/**
 * The KV cache of a {@linkcode WasmEngine}: per held layer, keys and values f32
 * [capacity, kvDim] inside the engine's wasm memory, grown on demand like the reference's.
 *
 * @module
 */

import type { Kernels } from "../kernels/binding.ts";
import type { KVCache } from "./engine.ts";
import type { ModelConfig } from "./model.ts";

/** A KV cache living in one engine's wasm memory. */
export class WasmCache implements KVCache {
  /** The layers this cache holds, [from, to). */
  readonly layers: readonly [number, number];
  /** Positions that fit before the buffers must grow. */
  capacity = 0;
  /** Pointers to keys per held layer: f32 [capacity, kvDim]. */
  readonly keys: number[] = [];
  /** Pointers to values per held layer: f32 [capacity, kvDim]. */
  readonly values: number[] = [];
  readonly #k: Kernels;
  readonly #kvDim: number;
  readonly #maxSeqLen: number;

  /** Creates an empty cache for `layers` in the memory of `k`. */
  constructor(k: Kernels, config: ModelConfig, layers: readonly [number, number]) {
    this.#k = k;
    this.layers = layers;
    this.#kvDim = config.nKvHeads * config.headDim;
    this.#maxSeqLen = config.maxSeqLen;
  }

  /** Whether this cache lives in the memory of `k`. */
  belongsTo(k: Kernels): boolean {
    return this.#k === k;
  }

  /** Bytes allocated. */
  get bytes(): number {
    return 2 * (this.layers[1] - this.layers[0]) * this.capacity * this.#kvDim * 4;
  }

  /** Makes room for positions [0, len); keeps what is stored. */
  ensure(len: number): void {
    if (len <= this.capacity) return;
    const cap = Math.min(this.#maxSeqLen, Math.max(len, 2 * this.capacity, 64));
    const bytes = cap * this.#kvDim * 4;
    const kept = this.capacity * this.#kvDim * 4;
    const grow = (old: number | undefined): number => {
      const p = this.#k.alloc(bytes);
      const mem = new Uint8Array(this.#k.memory.buffer);
      if (old !== undefined) {
        mem.copyWithin(p, old, old + kept);
        this.#k.free(old);
      }
      mem.fill(0, p + kept, p + bytes);
      return p;
    };
    for (let l = 0; l < this.layers[1] - this.layers[0]; l++) {
      this.keys[l] = grow(this.keys[l]);
      this.values[l] = grow(this.values[l]);
    }
    this.capacity = cap;
  }

  /** Frees the buffers (the cache is empty afterwards and grows again if used). */
  free(): void {
    for (const p of [...this.keys, ...this.values]) this.#k.free(p);
    this.keys.length = 0;
    this.values.length = 0;
    this.capacity = 0;
  }
}
