//! int8 weight matmul on q8_0 blocks (see `runtime/quant.ts`) stored as tile-block records
//! (see `kernels/layout.ts`): rows are taken `TILE` at a time (the last tile zero-padded), and
//! a tile is one sequential stream of nb records, one per block of 32 columns:
//!
//! - w: [ceil(dout / 4), nb, 144 bytes]: a record holds block b of the tile's 4 rows (4 × 32
//!   i8 quants, one row after the other), then their 4 f32 scales;
//!
//! with nb = ceil(din / 32) blocks per row, the last one zero-padded.
//!
//! Why records: the scales used to be a second array. Once the weights come from DRAM, each
//! load in the loop limits how far ahead the core can have misses in flight, and a second
//! stream's page crossings stall too; with the scales inside the stream (and 2 instead of 4
//! activation loads per block) cold matvecs run ~1.4× faster (`deno task bench kernels`).
//!
//! Two variants, both exported so the bench can compare them:
//! - `matmul_q8`: activations quantized on the fly (`quantize_act`), int8 × int8 dots. With
//!   relaxed SIMD the sign of each activation is moved onto the weight, so the 7-bit operand of
//!   `i16x8.relaxed_dot_i8x16_i7x16_s` is |a| (0..127, exact on every engine) and the result
//!   is exact; the plain build widens to i16 and uses `i32x4.dot_i16x8_s`. Both builds give
//!   the same integers.
//! - `matmul_q8f`: activations kept f32, weights widened to f32 in the loop.
//!
//! Each activation block is loaded (and prepared) once per tile; the tile's four rows' i32
//! partial sums are reduced to one i32x4 [row 0..3] (`hsum4_i32`, exact), so each block costs
//! one conversion and one fused multiply-add per tile, and a tile's four outputs are one store.
//! Row ranges [r0, r1) start on a tile (r0 a multiple of 4); a row's arithmetic does not
//! depend on the range, so any split gives the same bits.
//!
//! Measured and not taken (bench/README.md, issue 3): 7-bit activations stored as a + 64
//! (no per-row sign moves, a 64 · sum(w) correction per block): ~20% faster hot, but top-1
//! agreement on stories260K fell from 98.36% to 97.09%; `i32x4.relaxed_dot_i8x16_i7x16_add`
//! (V8 emits no vpdpbusd without AVX-VNNI, and rebuilds its constant); two tiles per pass
//! (register spills); touching the weights 1–4 KiB ahead (the touch loads stall retirement).
//!
//! The engine uses `matmul_q8`: measured by `deno task bench kernels` it is the faster one,
//! and the extra error of 8-bit activations stays far below the weights' own quantization
//! error (except for the classifier of a tiny model, see runtime/wasm_weights.ts).
use crate::quant_act::{act_parts, Act};
use crate::simd::{fmadd, hsum, hsum4_i32, lane, load};
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

/// Vectors the relaxed loop keeps in registers, built once per call from values LLVM cannot
/// see: with literal constants it rewrites `x < 0` as an i8 arithmetic shift and a dot with
/// ones as an extended pairwise add, which V8 lowers to 5 and 2–3 x64 instructions; as
/// opaque vectors they stay one `pcmpgtb` and one `pmaddwd`.
#[derive(Clone, Copy)]
pub struct Consts {
    /// i8x16 zeros.
    pub zero: v128,
    /// i16x8 ones.
    pub ones: v128,
}

impl Consts {
    #[inline(always)]
    pub fn new() -> Consts {
        let z = core::hint::black_box(0i32);
        Consts { zero: i32x4_splat(z), ones: i16x8_splat(1 + z as i16) }
    }
}

#[inline(always)]
unsafe fn ablock(a: &Act, k: usize, c: &Consts) -> ABlock {
    let (x0, x1) = (load(a.qs.add(k)), load(a.qs.add(k + 16)));
    #[cfg(target_feature = "relaxed-simd")]
    {
        ABlock { v: [i8x16_lt(x0, c.zero), i8x16_lt(x1, c.zero), i8x16_abs(x0), i8x16_abs(x1)] }
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let _ = c;
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
unsafe fn block_dot(w: *const i8, a: &ABlock, c: &Consts) -> v128 {
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
        i32x4_add(i32x4_dot_i16x8(p0, c.ones), i32x4_dot_i16x8(p1, c.ones))
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let _ = c;
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

/// Writes acc (rows o..o + 4 in lanes 0..3) + bias for the rows o + r < end of token t.
#[inline(always)]
unsafe fn store_lanes(out: *mut f32, acc: v128, t: usize, dout: usize, bias: *const f32, o: usize, end: usize) {
    if o + TILE <= end {
        let v = if bias.is_null() { acc } else { f32x4_add(acc, load(bias.add(o))) };
        v128_store(out.add(t * dout + o) as *mut v128, v);
        return;
    }
    let lanes = [
        f32x4_extract_lane::<0>(acc),
        f32x4_extract_lane::<1>(acc),
        f32x4_extract_lane::<2>(acc),
        f32x4_extract_lane::<3>(acc),
    ];
    for r in 0..end - o {
        let bv = if bias.is_null() { 0.0 } else { *bias.add(o + r) };
        *out.add(t * dout + o + r) = lanes[r] + bv;
    }
}

/// out[t, o] = sum_i xq[t, i] * W[o, i] (+ bias[o]) for r0 <= o < r1 (r0 a multiple of 4),
/// with x quantized in `act` by `quantize_act(act, x, n, din)`.
///
/// out: [n, dout]; w: tile-block records (module doc); bias: [dout] or null.
#[no_mangle]
pub unsafe extern "C" fn matmul_q8(
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
    quant_tiles::<32, ABlock>(out, &a, w, n, nb, dout, bias, r0, r1, |blk| (ablock(&a, blk * 32, &c), i32x4_splat(0)), |p, ab| {
        block_dot(p as *const i8, ab, &c)
    });
}

/// The tile loop shared by `matmul_q8` and `matmul_q4`: for each tile of rows [o, o + 4)
/// from r0 and each token, the four rows' dots with every activation block (`dot` of the
/// weight block at a pointer, with the block and a per-block i32 term to subtract prepared
/// once by `prep`), reduced to one i32x4, scaled by the weight and activation scales and
/// accumulated in f32. `BYTES`: bytes of one row's block of quants; a record is 4 of them
/// followed by the 4 rows' f32 scales.
#[inline(always)]
pub unsafe fn quant_tiles<const BYTES: usize, A>(
    out: *mut f32,
    a: &Act,
    w: *const u8,
    n: usize,
    nb: usize,
    dout: usize,
    bias: *const f32,
    r0: usize,
    r1: usize,
    prep: impl Fn(usize) -> (A, v128),
    dot: impl Fn(*const u8, &A) -> v128,
) {
    let rec = TILE * BYTES + 4 * TILE;
    let mut o = r0;
    while o < r1 {
        let tile = w.add(o / TILE * nb * rec);
        for t in 0..n {
            let mut acc = f32x4_splat(0.0);
            for b in 0..nb {
                let blk = t * nb + b;
                let (ab, zero) = prep(blk);
                let p = tile.add(b * rec);
                let s = hsum4_i32([dot(p, &ab), dot(p.add(BYTES), &ab), dot(p.add(2 * BYTES), &ab), dot(p.add(3 * BYTES), &ab)]);
                let sv = f32x4_mul(load(p.add(TILE * BYTES)), f32x4_splat(a.d(blk)));
                acc = fmadd(f32x4_convert_i32x4(i32x4_sub(s, zero)), sv, acc);
            }
            store_lanes(out, acc, t, dout, bias, o, r1);
        }
        o += TILE;
    }
}

/// Like `matmul_q8` with f32 activations x: [n, din] (no activation quantization).
#[no_mangle]
pub unsafe extern "C" fn matmul_q8f(
    out: *mut f32,
    x: *const f32,
    w: *const u8,
    n: usize,
    din: usize,
    dout: usize,
    bias: *const f32,
    r0: usize,
    r1: usize,
) {
    const REC: usize = TILE * 32 + 4 * TILE;
    let nb = din.div_ceil(32);
    let full = din / 32;
    let mut o = r0;
    while o < r1 {
        let tile = w.add(o / TILE * nb * REC);
        for t in 0..n {
            let xr = x.add(t * din);
            let mut acc = [f32x4_splat(0.0); TILE];
            for b in 0..full {
                let p = tile.add(b * REC);
                let mut s = [f32x4_splat(0.0); TILE];
                for h in 0..2 {
                    let i = b * 32 + h * 16;
                    let xv = [load(xr.add(i)), load(xr.add(i + 4)), load(xr.add(i + 8)), load(xr.add(i + 12))];
                    for r in 0..TILE {
                        let wv = load(p.add(r * 32 + h * 16));
                        let (lo, hi) = (i16x8_extend_low_i8x16(wv), i16x8_extend_high_i8x16(wv));
                        s[r] = fmadd(f32x4_convert_i32x4(i32x4_extend_low_i16x8(lo)), xv[0], s[r]);
                        s[r] = fmadd(f32x4_convert_i32x4(i32x4_extend_high_i16x8(lo)), xv[1], s[r]);
                        s[r] = fmadd(f32x4_convert_i32x4(i32x4_extend_low_i16x8(hi)), xv[2], s[r]);
                        s[r] = fmadd(f32x4_convert_i32x4(i32x4_extend_high_i16x8(hi)), xv[3], s[r]);
                    }
                }
                let dv = load(p.add(TILE * 32));
                acc[0] = fmadd(s[0], lane::<0>(dv), acc[0]);
                acc[1] = fmadd(s[1], lane::<1>(dv), acc[1]);
                acc[2] = fmadd(s[2], lane::<2>(dv), acc[2]);
                acc[3] = fmadd(s[3], lane::<3>(dv), acc[3]);
            }
            if full < nb {
                // The last, partial block: scalar, as x ends at din.
                let p = tile.add(full * REC);
                let d = p.add(TILE * 32) as *const f32;
                for r in 0..TILE {
                    let mut tail = 0.0;
                    for i in full * 32..din {
                        tail += *(p as *const i8).add(r * 32 + i - full * 32) as f32 * *xr.add(i);
                    }
                    let v = tail * *d.add(r);
                    acc[r] = f32x4_add(acc[r], f32x4_replace_lane::<0>(f32x4_splat(0.0), v));
                }
            }
            store_tile(out, &acc, t, dout, bias, o, r1);
        }
        o += TILE;
    }
}
