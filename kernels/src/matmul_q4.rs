//! int4 weight matmul, q4_0 layout (see `runtime/quant.ts`): per block of 32 weights, 16 bytes
//! wq: u8 [dout, nb * 16] where byte j holds element j (low nibble) and j + 16 (high nibble),
//! each stored as q + 8 with q in [-8, 7], and one scale wd: f32 [dout, nb].
//!
//! Activations are quantized on the fly (`quantize_act`). The nibbles (0..15) are already a
//! valid 7-bit operand of the relaxed int8 dot, so sum(a * (q + 8)) is computed directly and
//! the zero point removed with the block's activation sum: sum(a * q) = dot - 8 * sum(a).
use crate::quant_act::{act_parts, Act};
use crate::simd::{fmadd, for_rows, hsum, load};
use core::arch::wasm32::*;

/// Four i32 partial sums of sum(a * nibble) over one block of 32.
#[inline(always)]
unsafe fn block_dot(w: *const u8, a: &Act, k: usize) -> v128 {
    let p = load(w);
    let lo = v128_and(p, u8x16_splat(15)); // elements 0..16
    let hi = u8x16_shr(p, 4); //               elements 16..32
    let (x0, x1) = (load(a.qs.add(k)), load(a.qs.add(k + 16)));
    #[cfg(target_feature = "relaxed-simd")]
    {
        let s = i32x4_relaxed_dot_i8x16_i7x16_add(x0, lo, i32x4_splat(0));
        i32x4_relaxed_dot_i8x16_i7x16_add(x1, hi, s)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let p0 = i32x4_dot_i16x8(u16x8_extend_low_u8x16(lo), i16x8_extend_low_i8x16(x0));
        let p1 = i32x4_dot_i16x8(u16x8_extend_high_u8x16(lo), i16x8_extend_high_i8x16(x0));
        let p2 = i32x4_dot_i16x8(u16x8_extend_low_u8x16(hi), i16x8_extend_low_i8x16(x1));
        let p3 = i32x4_dot_i16x8(u16x8_extend_high_u8x16(hi), i16x8_extend_high_i8x16(x1));
        i32x4_add(i32x4_add(p0, p1), i32x4_add(p2, p3))
    }
}

/// out[t, o] = sum_i xq[t, i] * W[o, i] (+ bias[o]) for r0 <= o < r1, with x quantized in
/// `act` by `quantize_act(act, x, n, din)`.
///
/// out: [n, dout]; wq: u8 [dout, nb * 16]; wd: f32 [dout, nb]; bias: [dout] or null.
#[no_mangle]
pub unsafe extern "C" fn matmul_q4(
    out: *mut f32,
    act: *mut u8,
    wq: *const u8,
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
    for_rows(out, n, dout, bias, r0, r1, |o, t| {
        let (wr, dr) = (wq.add(o * nb * 16), wd.add(o * nb));
        let mut acc = f32x4_splat(0.0);
        for b in 0..nb {
            let blk = t * nb + b;
            let zero = i32x4_replace_lane::<0>(i32x4_splat(0), 8 * *a.sum.add(blk));
            let p = i32x4_sub(block_dot(wr.add(b * 16), &a, blk * 32), zero);
            let scale = f32x4_splat(*dr.add(b) * *a.d.add(blk));
            acc = fmadd(f32x4_convert_i32x4(p), scale, acc);
        }
        hsum(acc)
    });
}
