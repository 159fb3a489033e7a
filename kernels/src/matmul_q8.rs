//! int8 weight matmul, q8_0 layout (see `runtime/quant.ts`): weights wq: i8 [dout, nb * 32]
//! (rows zero-padded to whole blocks), scales wd: f32 [dout, nb], nb = ceil(din / 32).
//!
//! Two variants, both exported so the bench can compare them:
//! - `matmul_q8`: activations quantized on the fly (`quantize_act`), int8 × int8 dots. With
//!   relaxed SIMD the sign of each activation is moved onto the weight, so the 7-bit operand of
//!   `i32x4.relaxed_dot_i8x16_i7x16_add` is |a| and the result is exact; the plain build widens
//!   to i16 and uses `i32x4.dot_i16x8_s`. Both builds give the same integers.
//! - `matmul_q8f`: activations kept f32, weights widened to f32 in the loop.
//!
//! The engine uses `matmul_q8`: measured by `deno task bench kernels` it is the faster one
//! (the f32 variant spends 18 instructions per 16 weights against 5), and the extra error of
//! 8-bit activations stays far below the weights' own quantization error.
use crate::quant_act::{act_parts, Act};
use crate::simd::{fmadd, for_rows, hsum, load};
use core::arch::wasm32::*;

/// Four i32 partial sums of the 32 products of one weight block and one activation block.
#[inline(always)]
unsafe fn block_dot(w: *const i8, a: &Act, k: usize) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        let (m0, m1) = (load(a.sgn.add(k)), load(a.sgn.add(k + 16)));
        let w0 = i8x16_sub(v128_xor(load(w), m0), m0); // w * sign(a)
        let w1 = i8x16_sub(v128_xor(load(w.add(16)), m1), m1);
        let p = i32x4_relaxed_dot_i8x16_i7x16_add(w0, load(a.abs.add(k)), i32x4_splat(0));
        i32x4_relaxed_dot_i8x16_i7x16_add(w1, load(a.abs.add(k + 16)), p)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let (w0, w1) = (load(w), load(w.add(16)));
        let (x0, x1) = (load(a.qs.add(k)), load(a.qs.add(k + 16)));
        let p0 = i32x4_dot_i16x8(i16x8_extend_low_i8x16(w0), i16x8_extend_low_i8x16(x0));
        let p1 = i32x4_dot_i16x8(i16x8_extend_high_i8x16(w0), i16x8_extend_high_i8x16(x0));
        let p2 = i32x4_dot_i16x8(i16x8_extend_low_i8x16(w1), i16x8_extend_low_i8x16(x1));
        let p3 = i32x4_dot_i16x8(i16x8_extend_high_i8x16(w1), i16x8_extend_high_i8x16(x1));
        i32x4_add(i32x4_add(p0, p1), i32x4_add(p2, p3))
    }
}

/// out[t, o] = sum_i xq[t, i] * W[o, i] (+ bias[o]) for r0 <= o < r1, with x quantized in
/// `act` by `quantize_act(act, x, n, din)`.
///
/// out: [n, dout]; wq: i8 [dout, nb * 32]; wd: f32 [dout, nb]; bias: [dout] or null.
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
    for_rows(out, n, dout, bias, r0, r1, |o, t| {
        let (wr, dr) = (wq.add(o * nb * 32), wd.add(o * nb));
        let mut acc = f32x4_splat(0.0);
        for b in 0..nb {
            let blk = t * nb + b;
            let scale = f32x4_splat(*dr.add(b) * *a.d.add(blk));
            acc = fmadd(f32x4_convert_i32x4(block_dot(wr.add(b * 32), &a, blk * 32)), scale, acc);
        }
        hsum(acc)
    });
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
    for_rows(out, n, dout, bias, r0, r1, |o, t| {
        let (wr, dr, xr) = (wq.add(o * nb * 32), wd.add(o * nb), x.add(t * din));
        let mut acc = f32x4_splat(0.0);
        for b in 0..full {
            let mut s = f32x4_splat(0.0);
            for h in 0..2 {
                let i = b * 32 + h * 16;
                let wv = load(wr.add(i));
                let (lo, hi) = (i16x8_extend_low_i8x16(wv), i16x8_extend_high_i8x16(wv));
                let f0 = f32x4_convert_i32x4(i32x4_extend_low_i16x8(lo));
                let f1 = f32x4_convert_i32x4(i32x4_extend_high_i16x8(lo));
                let f2 = f32x4_convert_i32x4(i32x4_extend_low_i16x8(hi));
                let f3 = f32x4_convert_i32x4(i32x4_extend_high_i16x8(hi));
                s = fmadd(f0, load(xr.add(i)), s);
                s = fmadd(f1, load(xr.add(i + 4)), s);
                s = fmadd(f2, load(xr.add(i + 8)), s);
                s = fmadd(f3, load(xr.add(i + 12)), s);
            }
            acc = fmadd(s, f32x4_splat(*dr.add(b)), acc);
        }
        let mut sum = hsum(acc);
        if full < nb {
            let mut tail = 0.0;
            for i in full * 32..din {
                tail += *wr.add(i) as f32 * *xr.add(i);
            }
            sum += tail * *dr.add(full);
        }
        sum
    });
}
