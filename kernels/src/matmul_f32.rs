//! f32 weight matmul, row-tiled like the quantized ones (see `kernels/layout.ts`): rows taken
//! 4 at a time (the last tile zero-padded); within a tile, chunks of 8 columns interleaved
//! row by row, then each row's last din % 8 columns:
//!
//! w: [ceil(dout / 4), din / 8, 4, 8] ++ [4, din % 8] per tile (a tile is 4 · din floats).
//!
//! A tile is one sequential stream (four separate row streams defeat the prefetcher when
//! the weights come from DRAM), and each load of x serves four rows. Prefill runs the same
//! loop per token while the tile (4 · din floats) stays in L1, so decode and prefill give the
//! same bits, and a row's arithmetic never depends on how rows are split.
use crate::matmul_q8::store_tile;
use crate::simd::{fmadd, load};
use core::arch::wasm32::*;

/// Rows per tile.
const TILE: usize = 4;

/// out[t, o] = sum_i x[t, i] * w[o, i] (+ bias[o]) for t < n, r0 <= o < r1 (r0 a multiple
/// of 4).
///
/// out: [n, dout]; x: [n, din]; w: row-tiled (module doc); bias: [dout] or null.
#[no_mangle]
pub unsafe extern "C" fn matmul_f32(
    out: *mut f32,
    x: *const f32,
    w: *const f32,
    n: usize,
    din: usize,
    dout: usize,
    bias: *const f32,
    r0: usize,
    r1: usize,
) {
    let chunks = din / 8;
    let rest = din % 8;
    let mut o = r0;
    while o < r1 {
        let tw = w.add(o * din); // this tile
        for t in 0..n {
            let xr = x.add(t * din);
            let mut s = [[f32x4_splat(0.0); 2]; TILE];
            for c in 0..chunks {
                let (x0, x1) = (load(xr.add(c * 8)), load(xr.add(c * 8 + 4)));
                let wc = tw.add(c * 8 * TILE);
                for r in 0..TILE {
                    s[r][0] = fmadd(load(wc.add(r * 8)), x0, s[r][0]);
                    s[r][1] = fmadd(load(wc.add(r * 8 + 4)), x1, s[r][1]);
                }
            }
            let mut acc = [f32x4_splat(0.0); TILE];
            for r in 0..TILE {
                let mut v = f32x4_add(s[r][0], s[r][1]);
                if rest > 0 {
                    let wr = tw.add(chunks * 8 * TILE + r * rest);
                    let mut tail = 0.0;
                    for j in 0..rest {
                        tail += *wr.add(j) * *xr.add(chunks * 8 + j);
                    }
                    v = f32x4_add(v, f32x4_replace_lane::<0>(f32x4_splat(0.0), tail));
                }
                acc[r] = v;
            }
            store_tile(out, &acc, t, dout, bias, o, r1);
        }
        o += TILE;
    }
}
