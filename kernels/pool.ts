/**
 * A portable thread pool for the kernels: N−1 workers (web Workers in Deno and browsers,
 * worker_threads in Node; see _host.ts) instantiate the same module on the same shared memory,
 * and every split call divides rows between them and the calling thread.
 *
 * Synchronisation is a control block in the shared memory, never a message per call: the
 * caller writes the job, bumps `GEN` (and notifies only when a worker sleeps), then it and
 * the workers claim chunks of rows one at a time by compare-exchange on `TICKET` (which
 * carries the generation, so a late worker cannot claim from the next job). The caller keeps
 * claiming until no chunk is left, then waits only for chunks already taken, polling `DONE`:
 * a descheduled or sleeping worker costs at most one chunk's time, never its whole share.
 * Workers poll `GEN` briefly (calls of one forward pass come microseconds apart; up to
 * SPIN_US), then sleep in `Atomics.wait`. The caller never blocks, so the pool also runs on a
 * browser's main thread. Without shared memory or Workers the pool has one thread and says
 * why.
 *
 * @example
 * ```ts
 * import { loadKernels } from "./binding.ts";
 * import { ThreadPool } from "./pool.ts";
 * const k = await loadKernels();
 * const pool = await ThreadPool.create(k, 2);
 * console.log(pool.threads, pool.reason);
 * pool.dispose();
 * ```
 *
 * @module
 */

import type { Kernels } from "./binding.ts";
import { type HostWorker, startWorker, workerSupport } from "./_host.ts";
import { CTRL, WORKER_SOURCE } from "./_worker_src.ts";

/** Exports the pool can split by rows (their last two parameters are r0, r1). */
export const SPLITTABLE = [
  "matmul_f32",
  "matmul_q8",
  "matmul_q8f",
  "matmul_q4",
  "attention",
] as const;
/** One of {@linkcode SPLITTABLE}. */
export type Splittable = typeof SPLITTABLE[number];

/** Bytes of each worker's stack. */
const STACK_BYTES = 64 * 1024;
/**
 * Microseconds a worker polls `GEN` before it sleeps: longer than the gaps between the split
 * calls of one forward pass (the caller's own kernels, an uneven split), so that waking a
 * sleeping worker (100–300 µs here) is paid about once per token, not once per matmul.
 */
const SPIN_US = 1000;
/**
 * Chunks per thread of a split call: enough that whoever is left finishes the others' share
 * when a thread is descheduled, few enough that claiming (one compare-exchange and one call
 * from JS, ~0.1 µs) stays negligible.
 */
const CHUNKS_PER_THREAD = 4;
/**
 * Below this many multiply-adds a call runs on the caller alone: splitting a matvec of
 * ~100k multiply-adds (SmolLM2-135M's k/v projections, 5–10 µs) cost more than it saved in
 * `deno task bench kernels`.
 */
export const MIN_SPLIT_WORK = 131072;

/** fn(...args, r0, r1) without allocating for the common argument counts. */
function call(fn: (...a: number[]) => void, a: number[], r0: number, r1: number): void {
  switch (a.length) {
    case 7:
      return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], r0, r1);
    case 8:
      return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], r0, r1);
    case 10:
      return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], r0, r1);
    default:
      return fn(...a, r0, r1);
  }
}

/** Runs row-splittable kernels on the calling thread plus N−1 workers. */
export class ThreadPool {
  /** Threads taking part in each split call (1 = caller only). */
  readonly threads: number;
  /** Why this many threads. */
  readonly reason: string;
  readonly #k: Kernels;
  readonly #workers: HostWorker[];
  readonly #blocks: number[];
  #ctrl: Int32Array | undefined;
  readonly #args: Float64Array | undefined;

  private constructor(k: Kernels, workers: HostWorker[], blocks: number[], reason: string) {
    this.#k = k;
    this.#workers = workers;
    this.#blocks = blocks;
    this.threads = workers.length + 1;
    this.reason = reason;
    if (workers.length > 0) {
      this.#ctrl = new Int32Array(k.memory.buffer, blocks[0], 16);
      this.#args = new Float64Array(k.memory.buffer, blocks[0] + CTRL.ARGS_BYTE, 16);
    }
  }

  /** Starts a pool of up to `threads` threads (the caller counts as one). */
  static async create(k: Kernels, threads: number): Promise<ThreadPool> {
    if (threads <= 1) return new ThreadPool(k, [], [], "1 thread: requested");
    if (!k.shared) return new ThreadPool(k, [], [], `1 thread: ${k.reason}`);
    const host = workerSupport();
    if (!host.ok) return new ThreadPool(k, [], [], `1 thread: ${host.reason}`);
    const ctrlPtr = k.alloc(CTRL.BYTES);
    new Uint8Array(k.memory.buffer, ctrlPtr, CTRL.BYTES).fill(0);
    new Int32Array(k.memory.buffer, ctrlPtr, 16)[CTRL.SPIN] = SPIN_US;
    const blocks = [ctrlPtr];
    const workers: HostWorker[] = [];
    try {
      for (let i = 1; i < threads; i++) {
        const stack = k.alloc(STACK_BYTES);
        blocks.push(stack);
        const w = await startWorker(WORKER_SOURCE);
        workers.push(w);
        const ready = w.first();
        w.post({
          module: k.module,
          memory: k.memory,
          stackTop: stack + STACK_BYTES,
          ctrlPtr,
          index: i,
          names: SPLITTABLE,
        });
        await ready;
      }
    } catch (e) {
      for (const w of workers) w.terminate();
      for (const b of blocks) k.free(b);
      return new ThreadPool(k, [], [], `1 thread: workers failed to start (${e})`);
    }
    return new ThreadPool(
      k,
      workers,
      blocks,
      `${threads} threads: caller + ${threads - 1} ${host.reason}`,
    );
  }

  /**
   * Runs `exports[name](...args, r0, r1)` over rows [0, rows), in chunks of a multiple of
   * `grain` rows (matmuls: 4, a weight tile) that the caller and the workers claim one at a
   * time. Calls with less than MIN_SPLIT_WORK multiply-adds (`work`) run on the caller
   * alone. Returns when every row is done.
   */
  run(name: Splittable, args: number[], rows: number, work = Infinity, grain = 4): void {
    const fn = this.#k.exports[name] as (...a: number[]) => void;
    const ctrl = this.#ctrl;
    if (!ctrl || rows <= grain || work < MIN_SPLIT_WORK) {
      call(fn, args, 0, rows);
      return;
    }
    const units = Math.ceil(rows / grain);
    const nchunks = Math.min(units, this.threads * CHUNKS_PER_THREAD, 0xfffe);
    const chunk = Math.ceil(units / nchunks) * grain;
    const count = Math.ceil(rows / chunk);
    // Close the finished job's ticket before rewriting the job: a worker still holding the
    // old generation can then claim nothing.
    const gen = Atomics.load(ctrl, CTRL.GEN);
    Atomics.store(ctrl, CTRL.TICKET, ((gen & 0xffff) << 16) | 0xffff);
    const a = this.#args!;
    for (let i = 0; i < args.length; i++) a[i] = args[i];
    ctrl[CTRL.FN] = SPLITTABLE.indexOf(name);
    ctrl[CTRL.ROWS] = rows;
    ctrl[CTRL.NARGS] = args.length;
    ctrl[CTRL.NCHUNKS] = count;
    ctrl[CTRL.CHUNK] = chunk;
    Atomics.store(ctrl, CTRL.DONE, 0);
    const g16 = (gen + 1) & 0xffff;
    Atomics.store(ctrl, CTRL.TICKET, g16 << 16);
    Atomics.add(ctrl, CTRL.GEN, 1);
    if (Atomics.load(ctrl, CTRL.SLEEP) > 0) Atomics.notify(ctrl, CTRL.GEN);
    // Claim chunks until none is left (a slow or sleeping worker just gets fewer) ...
    let mine = 0;
    for (;;) {
      const v = Atomics.load(ctrl, CTRL.TICKET);
      const c = v & 0xffff;
      if (c >= count) break;
      if (Atomics.compareExchange(ctrl, CTRL.TICKET, v, v + 1) !== v) continue;
      call(fn, args, c * chunk, Math.min((c + 1) * chunk, rows));
      mine++;
    }
    // ... then wait only for the chunks the workers took (microseconds each).
    while (Atomics.load(ctrl, CTRL.DONE) + mine < count) { /* spin */ }
    if (Atomics.exchange(ctrl, CTRL.ERROR, 0) !== 0) {
      throw new Error(`Kernel ${name} failed in a worker`);
    }
  }

  /** Stops the workers and frees their memory; the pool then runs on the caller alone. */
  dispose(): void {
    const ctrl = this.#ctrl;
    if (ctrl) {
      Atomics.store(ctrl, CTRL.QUIT, 1);
      Atomics.add(ctrl, CTRL.GEN, 1);
      Atomics.notify(ctrl, CTRL.GEN);
      this.#ctrl = undefined;
    }
    for (const w of this.#workers) w.terminate();
    this.#workers.length = 0;
    for (const b of this.#blocks) this.#k.free(b);
    this.#blocks.length = 0;
  }
}
