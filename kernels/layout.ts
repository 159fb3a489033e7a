/**
 * The row-tiled weight layouts of the matmul kernels (src/matmul_*.rs): rows are taken
 * {@linkcode TILE} at a time (the last tile padded with zero rows), and inside a tile the
 * rows' pieces are interleaved, so that a tile is read as one sequential stream and each
 * activation load serves the tile's four rows.
 *
 * f32 weights: a row of `rowLen` elements is cut into `rowLen / chunk` whole chunks and a rest;
 * a tile holds, for each chunk c, rows 0..3's chunk c, then rows 0..3's rests
 * ({@linkcode tileRows}).
 *
 * Quantized weights (q8_0, q4_0; runtime/quant.ts) are tile-block records
 * ({@linkcode tileQuant}): for each block b of 32 columns, rows 0..3's quants of block b, then
 * their four f32 scales, so the scales travel in the same stream as the quants (a second
 * stream cost ~30% of the cold matvec speed: bench/README.md, issue 3).
 *
 * | tensor       | per tile                        | record bytes |
 * | ------------ | ------------------------------- | ------------ |
 * | f32 weights  | [din / 8, 4, 8] ++ [4, din % 8] |              |
 * | q8_0 quants  | [nb, (4 × 32 i8, 4 × f32)]      | 144          |
 * | q4_0 quants  | [nb, (4 × 16 u8, 4 × f32)]      | 80           |
 *
 * with nb = ceil(din / 32). Records are multiples of 16 bytes, so every SIMD load stays 16-byte
 * aligned. Row ranges passed to the kernels start on a tile; the thread pool splits in
 * multiples of {@linkcode TILE} rows.
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

/** Chunk (elements) of f32 weights; see the module doc. */
export const CHUNK = { f32: 8 } as const;

/** Quant bytes of one row's block of 32 values. */
export const QUANT_BLOCK_BYTES = { q8_0: 32, q4_0: 16 } as const;

/** A quantized type with a record layout. */
export type RecordType = keyof typeof QUANT_BLOCK_BYTES;

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

/** Bytes of one tile-block record: the tile's rows' quants of one block, then their scales. */
export function recordBytes(type: RecordType): number {
  return TILE * (QUANT_BLOCK_BYTES[type] + 4);
}

/**
 * Packs quants qs: [rows, nb · blockBytes] and scales d: [rows, nb] (runtime/quant.ts) into
 * tile-block records: [tiledRows(rows) / 4, nb, record] (padding rows are zero).
 */
export function tileQuant(
  type: RecordType,
  qs: Int8Array | Uint8Array,
  d: Float32Array,
  rows: number,
  nb: number,
): Uint8Array {
  const bb = QUANT_BLOCK_BYTES[type], rec = recordBytes(type);
  const out = new Uint8Array(tiledRows(rows) / TILE * nb * rec);
  const scales = new Float32Array(out.buffer);
  const q = new Uint8Array(qs.buffer, qs.byteOffset, qs.byteLength);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const at = (Math.floor(r / TILE) * nb + b) * rec;
      out.set(q.subarray((r * nb + b) * bb, (r * nb + b + 1) * bb), at + (r % TILE) * bb);
      scales[(at + TILE * bb) / 4 + (r % TILE)] = d[r * nb + b];
    }
  }
  return out;
}

/** Copies row r's quants into qs: [nb · blockBytes] and its scales into d: [nb]. */
export function untileQuantRow(
  t: Uint8Array,
  type: RecordType,
  nb: number,
  r: number,
  qs: Int8Array | Uint8Array,
  d: Float32Array,
): void {
  const bb = QUANT_BLOCK_BYTES[type], rec = recordBytes(type);
  const q = new Uint8Array(qs.buffer, qs.byteOffset, qs.byteLength);
  const view = new DataView(t.buffer, t.byteOffset, t.byteLength);
  for (let b = 0; b < nb; b++) {
    const at = (Math.floor(r / TILE) * nb + b) * rec;
    q.set(t.subarray(at + (r % TILE) * bb, at + (r % TILE + 1) * bb), b * bb);
    d[b] = view.getFloat32(at + TILE * bb + 4 * (r % TILE), true);
  }
}
