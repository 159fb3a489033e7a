//! int4 weight matmul on q4_0 blocks (see `runtime/quant.ts`: per block of 32 weights, 16
//! bytes where byte j holds element j (low nibble) and j + 16 (high nibble), each stored as
//! q + 8 with q in [-8, 7], and one f32 scale), in tile-block records like `matmul_q8`:
//!
//! - w: [ceil(dout / 4), nb, 80 bytes]: the tile's 4 rows' 16 quant bytes of block b, then
//!   their 4 f32 scales.
//!
//! Activations are quantized on the fly (`quantize_act`). The nibbles (0..15) are already a
//! valid 7-bit operand of the relaxed int8 dot, so sum(a * (q + 8)) is computed directly and
//! the zero point removed with the block's activation sum: sum(a * q) = dot - 8 * sum(a).
//! The four rows of a tile share each activation block's loads and its zero-point term, which
//! is subtracted once per tile-block from the tile's reduced i32x4 (see `quant_tiles`).
use crate::matmul_q8::{quant_tiles, Consts};
use crate::quant_act::{act_parts, Act};
use crate::simd::load;
use core::arch::wasm32::*;

/// One activation block as the dot wants it.
#[derive(Clone, Copy)]
struct ABlock {
    // relaxed: a, elements 0..16 and 16..32 (v[2], v[3] unused);
    // plain: a widened to i16, elements 0..8, 8..16, 16..24, 24..32.
    v: [v128; 4],
}

/// The block and its zero-point term 8 · sum(a) in every lane (one per row of the tile).
#[inline(always)]
unsafe fn ablock(a: &Act, blk: usize) -> (ABlock, v128) {
    let k = blk * 32;
    let (x0, x1) = (load(a.qs.add(k)), load(a.qs.add(k + 16)));
    let zero = i32x4_shl(i32x4_splat(*(a.ds.add(2 * blk + 1) as *const i32)), 3);
    #[cfg(target_feature = "relaxed-simd")]
    {
        (ABlock { v: [x0, x1, x0, x1] }, zero)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let v = [
            i16x8_extend_low_i8x16(x0),
            i16x8_extend_high_i8x16(x0),
            i16x8_extend_low_i8x16(x1),
            i16x8_extend_high_i8x16(x1),
        ];
        (ABlock { v }, zero)
    }
}

/// Four i32 partial sums of sum(a * (q + 8)) over one block of 32 (the zero point is removed
/// per tile-block by the caller).
#[inline(always)]
unsafe fn block_dot(w: *const u8, a: &ABlock, c: &Consts) -> v128 {
    let p = load(w);
    let mask = u8x16_splat(15);
    let lo = v128_and(p, mask); //                 elements 0..16
    let hi = v128_and(u16x8_shr(p, 4), mask); //   elements 16..32
    #[cfg(target_feature = "relaxed-simd")]
    {
        // |a · nibble| pairs stay below 2 · 127 · 15, so both halves add in i16 exactly.
        let p = i16x8_add(i16x8_relaxed_dot_i8x16_i7x16(a.v[0], lo), i16x8_relaxed_dot_i8x16_i7x16(a.v[1], hi));
        i32x4_dot_i16x8(p, c.ones)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let _ = c;
        let p0 = i32x4_dot_i16x8(u16x8_extend_low_u8x16(lo), a.v[0]);
        let p1 = i32x4_dot_i16x8(u16x8_extend_high_u8x16(lo), a.v[1]);
        let p2 = i32x4_dot_i16x8(u16x8_extend_low_u8x16(hi), a.v[2]);
        let p3 = i32x4_dot_i16x8(u16x8_extend_high_u8x16(hi), a.v[3]);
        i32x4_add(i32x4_add(p0, p1), i32x4_add(p2, p3))
    }
}

/// out[t, o] = sum_i xq[t, i] * W[o, i] (+ bias[o]) for r0 <= o < r1 (r0 a multiple of 4),
/// with x quantized in `act` by `quantize_act(act, x, n, din)`.
///
/// out: [n, dout]; w: tile-block records (module doc); bias: [dout] or null.
#[no_mangle]
pub unsafe extern "C" fn matmul_q4(
    out: *mut f32,
    act: *mut u8,
    w: *const u8,
    n: usize,
    din: usize,
    dout: usize,
    bias: *const f32,
    r0: usize,
    r1: usize,
) {
    let nb = din.div_ceil(32);
    let a = act_parts(act, n, nb);
    let c = Consts::new();
    quant_tiles::<16, ABlock>(out, &a, w, n, nb, dout, bias, r0, r1, |blk| ablock(&a, blk), |p, ab| block_dot(p, ab, &c));
}
