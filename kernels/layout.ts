/**
 * The row-tiled weight layout of the matmul kernels (src/matmul_*.rs): rows are taken
 * {@linkcode TILE} at a time (the last tile padded with zero rows), and inside a tile the
 * rows' chunks are interleaved, so that a tile is read as one sequential stream and each
 * activation load serves the tile's four rows.
 *
 * A row of `rowLen` elements is cut into `rowLen / chunk` whole chunks and a rest; a tile
 * holds, for each chunk c, rows 0..3's chunk c, then rows 0..3's rests:
 *
 * | tensor            | elements per row | chunk | tile layout                      |
 * | ----------------- | ---------------- | ----- | -------------------------------- |
 * | f32 weights       | din              | 8     | [din / 8, 4, 8] ++ [4, din % 8]  |
 * | q8_0 quants (i8)  | nb · 32          | 32    | [nb, 4, 32]                      |
 * | q4_0 quants (u8)  | nb · 16          | 16    | [nb, 4, 16]                      |
 * | q8_0/q4_0 scales  | nb               | 1     | [nb, 4]                          |
 *
 * Row ranges passed to the kernels start on a tile; the thread pool splits in multiples of
 * {@linkcode TILE} rows.
 *
 * @example
 * ```ts
 * import { tileRows, untileRow } from "./layout.ts";
 * const w = Float32Array.from({ length: 5 * 9 }, (_, i) => i); // [5, 9]
 * const t = tileRows(w, 5, 9, 8); // 8 rows × 9
 * const row = new Float32Array(9);
 * untileRow(t, 9, 8, 4, row);
 * console.log(row[0]); // 36
 * ```
 *
 * @module
 */

/** Rows per tile. */
export const TILE = 4;

/** Chunk (elements) of each tensor kind; see the module doc. */
export const CHUNK = { f32: 8, q8_0: 32, q4_0: 16, scales: 1 } as const;

type Arr = Float32Array | Int8Array | Uint8Array;

/** Rows rounded up to whole tiles. */
export function tiledRows(rows: number): number {
  return Math.ceil(rows / TILE) * TILE;
}

/** Offset, in a tiled array, of element i of row r. */
export function tiledIndex(rowLen: number, chunk: number, r: number, i: number): number {
  const tile = Math.floor(r / TILE), rr = r % TILE;
  const full = Math.floor(rowLen / chunk) * chunk;
  const base = tile * TILE * rowLen;
  if (i < full) {
    const c = Math.floor(i / chunk);
    return base + (c * TILE + rr) * chunk + (i - c * chunk);
  }
  return base + full * TILE + rr * (rowLen - full) + (i - full);
}

/** Tiles src: [rows, rowLen] (row-major) into a new array of tiledRows(rows) rows. */
export function tileRows<T extends Arr>(src: T, rows: number, rowLen: number, chunk: number): T {
  const C = src.constructor as new (n: number) => T;
  const out = new C(tiledRows(rows) * rowLen);
  const full = Math.floor(rowLen / chunk) * chunk;
  for (let r = 0; r < rows; r++) {
    const row = src.subarray(r * rowLen, (r + 1) * rowLen);
    for (let i = 0; i < full; i += chunk) {
      out.set(row.subarray(i, i + chunk), tiledIndex(rowLen, chunk, r, i));
    }
    if (full < rowLen) out.set(row.subarray(full), tiledIndex(rowLen, chunk, r, full));
  }
  return out;
}

/** Copies row r of a tiled array into out: [rowLen]. */
export function untileRow(t: Arr, rowLen: number, chunk: number, r: number, out: Arr): void {
  const full = Math.floor(rowLen / chunk) * chunk;
  for (let i = 0; i < full; i += chunk) {
    const o = tiledIndex(rowLen, chunk, r, i);
    out.set(t.subarray(o, o + chunk), i);
  }
  if (full < rowLen) {
    const o = tiledIndex(rowLen, chunk, r, full);
    out.set(t.subarray(o, o + rowLen - full), full);
  }
}
