/**
 * The thin TypeScript binding of the wasm kernels: loads the best build this host runs
 * correctly, owns the `WebAssembly.Memory` (shared when the host allows it) and allocates
 * tensors inside it. Threads are added on top by {@linkcode ThreadPool} (pool.ts).
 *
 * The builds are embedded as base64 (wasm_relaxed.ts, wasm_simd.ts) rather than fetched: one
 * code path on Deno, Node, browsers and bundlers, with no file access, permission or URL
 * resolution, at the cost of ~17 KB of text each. Hosts that refuse to compile bytes at run
 * time (Cloudflare's workerd) pass an already-compiled module instead (`options.module`,
 * from importing kernels/wasm/*.wasm).
 *
 * @example
 * ```ts
 * import { loadKernels } from "./binding.ts";
 * const k = await loadKernels();
 * console.log(k.flavor, k.reason); // "relaxed", "relaxed SIMD + shared memory"
 * const x = k.alloc(4 * 64);
 * k.f32(x, 64).fill(1);
 * k.free(x);
 * ```
 *
 * @module
 */

import { Allocator } from "./_alloc.ts";
import { nodeMajor } from "./_host.ts";
import { tileQuant } from "./layout.ts";
import { WASM_RELAXED } from "./wasm_relaxed.ts";
import { WASM_SIMD } from "./wasm_simd.ts";

/** Which build runs: relaxed SIMD with shared memory (threads), or plain simd128. */
export type Flavor = "relaxed" | "simd";

/**
 * A quantized matmul over output rows [r0, r1): `out` [n, dout] from activations `x` (f32 or a
 * quantized activation buffer) and weights `w` in tile-block records of quants and scales
 * (layout.ts), optional `bias` (0 = none). Pointers are byte offsets into the memory.
 */
export type QuantMatmul = (
  out: number,
  x: number,
  w: number,
  n: number,
  din: number,
  dout: number,
  bias: number,
  r0: number,
  r1: number,
) => void;

/** Raw exports of the kernels (pointers are byte offsets into the memory). */
export interface KernelExports {
  /** f32 matmul over rows [r0, r1), weights row-tiled (layout.ts); see src/matmul_f32.rs. */
  matmul_f32(
    out: number,
    x: number,
    w: number,
    n: number,
    din: number,
    dout: number,
    bias: number,
    r0: number,
    r1: number,
  ): void;
  /** q8_0 weights (tile-block records, layout.ts) × quantized activations. */
  matmul_q8: QuantMatmul;
  /** q8_0 weights (tile-block records) × f32 activations. */
  matmul_q8f: QuantMatmul;
  /** q4_0 weights (tile-block records) × quantized activations. */
  matmul_q4: QuantMatmul;
  /** Quantizes x: [n, din] into an activation buffer of act_bytes(n, din) bytes. */
  quantize_act(act: number, x: number, n: number, din: number): void;
  /** Bytes of an activation buffer. */
  act_bytes(n: number, din: number): number;
  /** RMSNorm per token. */
  rmsnorm(out: number, x: number, w: number, n: number, dim: number, eps: number): void;
  /** RoPE with precomputed (cos, sin): cs: [n, headDim/2, 2]. */
  rope(x: number, cs: number, n: number, nHeads: number, headDim: number): void;
  /** Softmax in place. */
  softmax(x: number, len: number): void;
  /** Causal GQA attention for heads [h0, h1); scratch: [nHeads, pos0 + n]. */
  attention(
    out: number,
    q: number,
    kc: number,
    vc: number,
    scratch: number,
    n: number,
    pos0: number,
    nHeads: number,
    nKvHeads: number,
    headDim: number,
    h0: number,
    h1: number,
  ): void;
  /** out = silu(gate) * up. */
  swiglu(out: number, gate: number, up: number, len: number): void;
  /** x += y. */
  add(x: number, y: number, len: number): void;
  /** 1 for the relaxed build, 0 for plain simd128. */
  build_flavor(): number;
  /** First byte after the module's stack and data. */
  __heap_base: WebAssembly.Global;
  /** The stack pointer (each thread's instance sets its own). */
  __stack_pointer: WebAssembly.Global;
}

/** Options of {@linkcode loadKernels}. */
export interface LoadKernelsOptions {
  /** "auto" (default) picks the best build this host runs correctly. */
  flavor?: Flavor | "auto";
  /** An already-compiled build (for hosts that cannot compile bytes, e.g. workerd). */
  module?: WebAssembly.Module;
}

/** Most pages (64 KiB) the memory may grow to: 4 GiB, all of wasm32. */
export const MAX_PAGES = 65536;

/** The loaded kernels: one instance, its memory, and an allocator over it. */
export class Kernels {
  /** Which build runs. */
  readonly flavor: Flavor;
  /** Why this build (and whether threads are possible), for diagnostics. */
  readonly reason: string;
  /** The compiled module (workers instantiate it again on the same memory). */
  readonly module: WebAssembly.Module;
  /** The memory every tensor lives in. */
  readonly memory: WebAssembly.Memory;
  /** Whether the memory is shared (threads possible). */
  readonly shared: boolean;
  /** The raw exports. */
  readonly exports: KernelExports;
  readonly #alloc: Allocator;

  /** Wraps an instance; use {@linkcode loadKernels}. */
  constructor(
    flavor: Flavor,
    reason: string,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    shared: boolean,
  ) {
    this.flavor = flavor;
    this.reason = reason;
    this.module = module;
    this.memory = memory;
    this.shared = shared;
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    this.exports = instance.exports as unknown as KernelExports;
    this.#alloc = new Allocator(memory, this.exports.__heap_base.value as number, MAX_PAGES);
  }

  /** Bytes the memory holds now (it only grows). */
  get bytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** Bytes handed out by {@linkcode Kernels.alloc} and not yet freed. */
  get used(): number {
    return this.#alloc.used;
  }

  /** Allocates `bytes` (64-byte aligned); throws when the 4 GiB memory is full. */
  alloc(bytes: number): number {
    const p = this.#alloc.alloc(bytes);
    if (p < 0) {
      throw new RangeError(`Cannot allocate ${bytes} bytes in wasm memory: 4 GiB limit reached`);
    }
    return p;
  }

  /** Frees a block from {@linkcode Kernels.alloc}. */
  free(ptr: number): void {
    this.#alloc.free(ptr);
  }

  /** Allocates and fills a copy of `data`; returns its pointer. */
  put(data: Float32Array | Int8Array | Uint8Array): number {
    const p = this.alloc(data.byteLength);
    new Uint8Array(this.memory.buffer, p, data.byteLength).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    return p;
  }

  /** A Float32Array view of `len` floats at `ptr` (take a fresh one after any allocation). */
  f32(ptr: number, len: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, len);
  }
}

function decode(b64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** What this host supports, and the build that follows. */
export function detectFlavor(): { flavor: Flavor; reason: string } {
  let shared = false;
  try {
    shared = typeof SharedArrayBuffer === "function" &&
      new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof
        SharedArrayBuffer;
  } catch { /* not cross-origin isolated, or no threads proposal */ }
  if (!shared) return { flavor: "simd", reason: "simd128, 1 thread: shared memory unavailable" };
  const node = nodeMajor();
  if (node !== undefined && node < 22) {
    return { flavor: "simd", reason: `simd128: Node ${node} lacks (correct) relaxed SIMD` };
  }
  if (!WebAssembly.validate(decode(WASM_RELAXED))) {
    return { flavor: "simd", reason: "simd128: this host does not validate relaxed SIMD" };
  }
  return { flavor: "relaxed", reason: "relaxed SIMD + shared memory" };
}

/** Runs a relaxed int8 dot on known integers; false if this engine computes it wrongly. */
function relaxedDotWorks(k: Kernels): boolean {
  const din = 64;
  const x = k.alloc(4 * din), out = k.alloc(16);
  const act = k.alloc(k.exports.act_bytes(1, din));
  const xs = k.f32(x, din), qs = new Int8Array(din);
  let want = 0;
  for (let i = 0; i < din; i++) {
    xs[i] = i === 0 ? 127 : ((i * 37) % 255) - 127;
    qs[i] = ((i * 91) % 255) - 127;
    want += xs[i] * qs[i];
  }
  // One row of two blocks, scales 1, in the record layout (layout.ts).
  const w = k.put(tileQuant("q8_0", qs, new Float32Array([1, 1]), 1, 2));
  k.exports.quantize_act(act, x, 1, din);
  k.exports.matmul_q8(out, act, w, 1, din, 1, 0, 0, 1);
  const got = k.f32(out, 1)[0];
  for (const p of [x, w, out, act]) k.free(p);
  return got === want;
}

/**
 * Loads the kernels: the relaxed SIMD build on shared memory where the host runs it
 * correctly, else plain simd128 on ordinary memory. `reason` says what was chosen and why.
 */
export async function loadKernels(options: LoadKernelsOptions = {}): Promise<Kernels> {
  const detected = detectFlavor();
  let { flavor, reason } = detected;
  if (options.flavor && options.flavor !== "auto" && options.flavor !== flavor) {
    if (options.flavor === "relaxed") {
      throw new Error(`Cannot load the relaxed build: ${detected.reason}`);
    }
    flavor = "simd";
    reason = "simd128: requested";
  }
  const make = async (f: Flavor): Promise<Kernels> => {
    const shared = f === "relaxed";
    const module = options.module ??
      await WebAssembly.compile(decode(f === "relaxed" ? WASM_RELAXED : WASM_SIMD));
    const memory = new WebAssembly.Memory({ initial: 32, maximum: MAX_PAGES, shared });
    return new Kernels(f, reason, module, memory, shared);
  };
  let k: Kernels;
  try {
    k = await make(flavor);
  } catch (e) {
    if (!options.module || flavor === "simd") throw e;
    // A given simd build wants ordinary memory.
    [flavor, reason] = ["simd", "simd128: the given module is the simd build"];
    k = await make(flavor);
  }
  if (flavor === "relaxed" && !relaxedDotWorks(k)) {
    if (options.module) {
      // The fallback below would instantiate this same (relaxed) module on ordinary memory.
      throw new Error(
        "Cannot use the given kernels module: it is the relaxed SIMD build and this host computes its relaxed int8 dot wrongly; pass the simd128 build (wasm/simd.wasm) instead",
      );
    }
    reason = "simd128: this host computes the relaxed int8 dot wrongly";
    flavor = "simd";
    k = await make(flavor);
  }
  return k;
}
