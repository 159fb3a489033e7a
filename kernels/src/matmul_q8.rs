//! int8 weight matmul on q8_0 blocks (see `runtime/quant.ts`) stored row-tiled (see
//! `kernels/layout.ts`): rows are taken `TILE` at a time (the last tile zero-padded), and
//! within a tile the blocks are interleaved, so a tile is one sequential stream:
//!
//! - wq: i8 [ceil(dout / 4), nb, 4, 32]: block b of the tile's 4 rows, one after the other;
//! - wd: f32 [ceil(dout / 4), nb, 4]: their scales (one f32x4 per block of the tile);
//!
//! with nb = ceil(din / 32) blocks per row, the last one zero-padded.
//!
//! Two variants, both exported so the bench can compare them:
//! - `matmul_q8`: activations quantized on the fly (`quantize_act`), int8 × int8 dots. With
//!   relaxed SIMD the sign of each activation is moved onto the weight, so the 7-bit operand of
//!   `i32x4.relaxed_dot_i8x16_i7x16_add` is |a| (0..127, exact on every engine) and the result
//!   is exact; the plain build widens to i16 and uses `i32x4.dot_i16x8_s`. Both builds give
//!   the same integers.
//! - `matmul_q8f`: activations kept f32, weights widened to f32 in the loop.
//!
//! Each activation block is loaded (and, in the plain build, widened) once per tile, and the
//! tile's four accumulators stay in registers. Row ranges [r0, r1) start on a tile (r0 a
//! multiple of 4); a row's arithmetic does not depend on the range, so any split gives the
//! same bits.
//!
//! The engine uses `matmul_q8`: measured by `deno task bench kernels` it is the faster one,
//! and the extra error of 8-bit activations stays far below the weights' own quantization
//! error (except for the classifier of a tiny model, see runtime/wasm_weights.ts).
use crate::quant_act::{act_parts, Act};
use crate::simd::{fmadd, hsum, load, lane};
use core::arch::wasm32::*;

/// Rows per tile.
const TILE: usize = 4;

/// One activation block in the form the dot wants, shared by the rows of a tile.
#[derive(Clone, Copy)]
struct ABlock {
    // relaxed: sign masks of elements 0..16, 16..32, then |a| of the same halves;
    // plain: a widened to i16, elements 0..8, 8..16, 16..24, 24..32.
    v: [v128; 4],
}

#[inline(always)]
unsafe fn ablock(a: &Act, k: usize) -> ABlock {
    #[cfg(target_feature = "relaxed-simd")]
    {
        ABlock { v: [load(a.sgn.add(k)), load(a.sgn.add(k + 16)), load(a.abs.add(k)), load(a.abs.add(k + 16))] }
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let (x0, x1) = (load(a.qs.add(k)), load(a.qs.add(k + 16)));
        ABlock {
            v: [
                i16x8_extend_low_i8x16(x0),
                i16x8_extend_high_i8x16(x0),
                i16x8_extend_low_i8x16(x1),
                i16x8_extend_high_i8x16(x1),
            ],
        }
    }
}

/// Four i32 partial sums of the 32 products of one weight block and one activation block.
#[inline(always)]
unsafe fn block_dot(w: *const i8, a: &ABlock) -> v128 {
    let (w0, w1) = (load(w), load(w.add(16)));
    #[cfg(target_feature = "relaxed-simd")]
    {
        let [m0, m1, x0, x1] = a.v;
        let w0 = i8x16_sub(v128_xor(w0, m0), m0); // w * sign(a)
        let w1 = i8x16_sub(v128_xor(w1, m1), m1);
        // Pairwise i16 sums (one instruction each on x86), widened separately: two of them
        // could reach 4 · 127² and overflow i16. Cheaper than two i32x4 relaxed dot-adds.
        let p0 = i16x8_relaxed_dot_i8x16_i7x16(w0, x0);
        let p1 = i16x8_relaxed_dot_i8x16_i7x16(w1, x1);
        i32x4_add(i32x4_extadd_pairwise_i16x8(p0), i32x4_extadd_pairwise_i16x8(p1))
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let p0 = i32x4_dot_i16x8(i16x8_extend_low_i8x16(w0), a.v[0]);
        let p1 = i32x4_dot_i16x8(i16x8_extend_high_i8x16(w0), a.v[1]);
        let p2 = i32x4_dot_i16x8(i16x8_extend_low_i8x16(w1), a.v[2]);
        let p3 = i32x4_dot_i16x8(i16x8_extend_high_i8x16(w1), a.v[3]);
        i32x4_add(i32x4_add(p0, p1), i32x4_add(p2, p3))
    }
}

/// Writes hsum(acc[r]) + bias for the tile's rows o + r < end of token t.
#[inline(always)]
pub unsafe fn store_tile(out: *mut f32, acc: &[v128; TILE], t: usize, dout: usize, bias: *const f32, o: usize, end: usize) {
    for r in 0..TILE {
        if o + r < end {
            let bv = if bias.is_null() { 0.0 } else { *bias.add(o + r) };
            *out.add(t * dout + o + r) = hsum(acc[r]) + bv;
        }
    }
}

/// out[t, o] = sum_i xq[t, i] * W[o, i] (+ bias[o]) for r0 <= o < r1 (r0 a multiple of 4),
/// with x quantized in `act` by `quantize_act(act, x, n, din)`.
///
/// out: [n, dout]; wq, wd: row-tiled (module doc); bias: [dout] or null.
#[no_mangle]
pub unsafe extern "C" fn matmul_q8(
    out: *mut f32,
    act: *mut u8,
    wq: *const i8,
    wd: *const f32,
    n: usize,
    din: usize,
    dout: usize,
    bias: *const f32,
    r0: usize,
    r1: usize,
) {
    let nb = din.div_ceil(32);
    let a = act_parts(act, n, nb);
    let w = wq as *const u8;
    quant_tiles::<32, ABlock>(out, &a, w, wd, n, nb, dout, bias, r0, r1, |blk| ablock(&a, blk * 32), |p, ab| {
        block_dot(p as *const i8, ab)
    });
}

/// The tile loop shared by `matmul_q8` and `matmul_q4`: for each tile of rows [o, o + 4)
/// from r0 and each token, the four rows' dots with every activation block (`dot` of the
/// weight block at a pointer with the block prepared once by `prep`), scaled by the weight
/// and activation scales, accumulated in f32. `BYTES`: bytes of one row's block of quants.
#[inline(always)]
pub unsafe fn quant_tiles<const BYTES: usize, A>(
    out: *mut f32,
    a: &Act,
    wq: *const u8,
    wd: *const f32,
    n: usize,
    nb: usize,
    dout: usize,
    bias: *const f32,
    r0: usize,
    r1: usize,
    prep: impl Fn(usize) -> A,
    dot: impl Fn(*const u8, &A) -> v128,
) {
    let mut o = r0;
    while o < r1 {
        let (tq, td) = (wq.add(o * nb * BYTES), wd.add(o * nb)); // this tile's blocks and scales
        for t in 0..n {
            let mut acc = [f32x4_splat(0.0); TILE];
            for b in 0..nb {
                let blk = t * nb + b;
                let ab = prep(blk);
                let sv = f32x4_mul(load(td.add(b * TILE)), f32x4_splat(*a.d.add(blk)));
                let w = tq.add(b * TILE * BYTES);
                acc[0] = fmadd(f32x4_convert_i32x4(dot(w, &ab)), lane::<0>(sv), acc[0]);
                acc[1] = fmadd(f32x4_convert_i32x4(dot(w.add(BYTES), &ab)), lane::<1>(sv), acc[1]);
                acc[2] = fmadd(f32x4_convert_i32x4(dot(w.add(2 * BYTES), &ab)), lane::<2>(sv), acc[2]);
                acc[3] = fmadd(f32x4_convert_i32x4(dot(w.add(3 * BYTES), &ab)), lane::<3>(sv), acc[3]);
            }
            store_tile(out, &acc, t, dout, bias, o, r1);
        }
        o += TILE;
    }
}

/// Like `matmul_q8` with f32 activations x: [n, din] (no activation quantization).
#[no_mangle]
pub unsafe extern "C" fn matmul_q8f(
    out: *mut f32,
    x: *const f32,
    wq: *const i8,
    wd: *const f32,
    n: usize,
    din: usize,
    dout: usize,
    bias: *const f32,
    r0: usize,
    r1: usize,
) {
    let nb = din.div_ceil(32);
    let full = din / 32;
    let mut o = r0;
    while o < r1 {
        let (tq, td) = (wq.add(o * nb * 32), wd.add(o * nb));
        for t in 0..n {
            let xr = x.add(t * din);
            let mut acc = [f32x4_splat(0.0); TILE];
            for b in 0..full {
                let mut s = [f32x4_splat(0.0); TILE];
                for h in 0..2 {
                    let i = b * 32 + h * 16;
                    let xv = [load(xr.add(i)), load(xr.add(i + 4)), load(xr.add(i + 8)), load(xr.add(i + 12))];
                    for r in 0..TILE {
                        let wv = load(tq.add((b * TILE + r) * 32 + h * 16));
                        let (lo, hi) = (i16x8_extend_low_i8x16(wv), i16x8_extend_high_i8x16(wv));
                        s[r] = fmadd(f32x4_convert_i32x4(i32x4_extend_low_i16x8(lo)), xv[0], s[r]);
                        s[r] = fmadd(f32x4_convert_i32x4(i32x4_extend_high_i16x8(lo)), xv[1], s[r]);
                        s[r] = fmadd(f32x4_convert_i32x4(i32x4_extend_low_i16x8(hi)), xv[2], s[r]);
                        s[r] = fmadd(f32x4_convert_i32x4(i32x4_extend_high_i16x8(hi)), xv[3], s[r]);
                    }
                }
                let dv = load(td.add(b * TILE));
                acc[0] = fmadd(s[0], lane::<0>(dv), acc[0]);
                acc[1] = fmadd(s[1], lane::<1>(dv), acc[1]);
                acc[2] = fmadd(s[2], lane::<2>(dv), acc[2]);
                acc[3] = fmadd(s[3], lane::<3>(dv), acc[3]);
            }
            if full < nb {
                // The last, partial block: scalar, as x ends at din.
                for r in 0..TILE {
                    let mut tail = 0.0;
                    for i in full * 32..din {
                        tail += *tq.add((full * TILE + r) * 32 + i - full * 32) as f32 * *xr.add(i);
                    }
                    let v = tail * *td.add(full * TILE + r);
                    acc[r] = f32x4_add(acc[r], f32x4_replace_lane::<0>(f32x4_splat(0.0), v));
                }
            }
            store_tile(out, &acc, t, dout, bias, o, r1);
        }
        o += TILE;
    }
}
