/**
 * A first-fit allocator for tensors inside one `WebAssembly.Memory`: the binding asks it for
 * byte ranges, it grows the memory when nothing fits. Blocks are 64-byte aligned (a cache
 * line, and more than any SIMD load needs); freed neighbours are merged.
 *
 * @module
 */

/** Alignment and size granule of every block, in bytes. */
export const ALIGN = 64;
const PAGE = 65536;

/** Allocates and frees byte ranges of a growable wasm memory. */
export class Allocator {
  readonly #memory: WebAssembly.Memory;
  readonly #maxPages: number;
  /** Free blocks [start, size], sorted by start, never adjacent. */
  #free: [number, number][] = [];
  /** Sizes of live blocks by start. */
  #live = new Map<number, number>();
  #top: number;

  /** Manages memory from byte `base` (rounded up to ALIGN) to the end, growing up to maxPages. */
  constructor(memory: WebAssembly.Memory, base: number, maxPages: number) {
    this.#memory = memory;
    this.#maxPages = maxPages;
    this.#top = roundUp(base, ALIGN);
    const end = memory.buffer.byteLength;
    if (end > this.#top) this.#free.push([this.#top, end - this.#top]);
  }

  /** Bytes currently handed out. */
  get used(): number {
    let n = 0;
    for (const s of this.#live.values()) n += s;
    return n;
  }

  /** Returns the start of a fresh block of at least `bytes` bytes, or -1 if memory is full. */
  alloc(bytes: number): number {
    const size = roundUp(Math.max(bytes, 1), ALIGN);
    let i = this.#free.findIndex(([, s]) => s >= size);
    if (i < 0) {
      if (!this.#grow(size)) return -1;
      i = this.#free.findIndex(([, s]) => s >= size);
    }
    const [start, s] = this.#free[i];
    if (s === size) this.#free.splice(i, 1);
    else this.#free[i] = [start + size, s - size];
    this.#live.set(start, size);
    return start;
  }

  /** Returns a block to the free list (no-op for 0 or unknown pointers). */
  free(ptr: number): void {
    const size = this.#live.get(ptr);
    if (size === undefined) return;
    this.#live.delete(ptr);
    this.#insert(ptr, size);
  }

  #insert(start: number, size: number): void {
    const f = this.#free;
    let i = 0;
    while (i < f.length && f[i][0] < start) i++;
    f.splice(i, 0, [start, size]);
    if (i + 1 < f.length && f[i][0] + f[i][1] === f[i + 1][0]) {
      f[i][1] += f[i + 1][1];
      f.splice(i + 1, 1);
    }
    if (i > 0 && f[i - 1][0] + f[i - 1][1] === f[i][0]) {
      f[i - 1][1] += f[i][1];
      f.splice(i, 1);
    }
  }

  #grow(size: number): boolean {
    const end = this.#memory.buffer.byteLength;
    const last = this.#free.at(-1);
    const tail = last && last[0] + last[1] === end ? last[1] : 0;
    const pages = Math.ceil((size - tail) / PAGE);
    if (end / PAGE + pages > this.#maxPages) return false;
    try {
      this.#memory.grow(pages);
    } catch {
      return false;
    }
    this.#insert(end, pages * PAGE);
    return true;
  }
}

function roundUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}
