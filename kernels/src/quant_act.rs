//! On-the-fly quantization of activations to q8_0 blocks (32 values, one f32 scale), the
//! left operand of the int8 × int8 dot products of `matmul_q8` and `matmul_q4`.
//!
//! Layout of an activation buffer for n tokens of din values, nb = ceil(din / 32) blocks:
//!
//! | part | type        | shape        | meaning                                           |
//! | ---- | ----------- | ------------ | ------------------------------------------------- |
//! | `qs` | i8          | [n, nb * 32] | round(x / d), in [-127, 127]; zero past din       |
//! | `ds` | (f32, i32)  | [n, nb]      | per block: scale max\|x\| / 127, sum of its qs    |
//!
//! Only `qs` is stored: the relaxed q8 kernel derives \|qs\| and the sign mask in registers
//! (two cheap ops per block, shared by a tile's rows), because every extra load per weight
//! byte costs more than arithmetic once the weights stream from DRAM (`deno task bench
//! kernels`, bench/README.md). A block's scale and sum share one 8-byte load (q4 needs both).

use crate::simd::load;
use core::arch::wasm32::*;

/// Bytes an activation buffer for n tokens of din values needs.
#[no_mangle]
pub extern "C" fn act_bytes(n: usize, din: usize) -> usize {
    n * din.div_ceil(32) * (32 + 8)
}

/// Pointers to the parts of an activation buffer.
pub struct Act {
    pub qs: *mut i8,
    /// Block k's scale is `ds[2k]` (f32), its sum `ds[2k + 1]` (i32 bits).
    pub ds: *mut f32,
}

impl Act {
    /// Block k's scale.
    #[inline(always)]
    pub unsafe fn d(&self, k: usize) -> f32 {
        *self.ds.add(2 * k)
    }
}

/// Splits an activation buffer at `act` into its parts.
#[inline(always)]
pub fn act_parts(act: *mut u8, n: usize, nb: usize) -> Act {
    Act { qs: act as *mut i8, ds: act.wrapping_add(n * nb * 32) as *mut f32 }
}

/// Stores block k's scale and sum.
#[inline(always)]
unsafe fn store_ds(a: &Act, k: usize, d: f32, sum: i32) {
    *a.ds.add(2 * k) = d;
    *(a.ds.add(2 * k + 1) as *mut i32) = sum;
}

/// Quantizes one whole block of 32 values at xs (SIMD; the same numbers as the scalar path).
#[inline(always)]
unsafe fn quantize_block(a: &Act, blk: usize, xs: *const f32) {
    let v: [v128; 8] = core::array::from_fn(|j| load(xs.add(4 * j)));
    let mut m = f32x4_abs(v[0]);
    for j in 1..8 {
        m = f32x4_pmax(m, f32x4_abs(v[j]));
    }
    m = f32x4_pmax(m, i32x4_shuffle::<2, 3, 0, 1>(m, m));
    m = f32x4_pmax(m, i32x4_shuffle::<1, 0, 3, 2>(m, m));
    let amax = f32x4_extract_lane::<0>(m);
    let id = f32x4_splat(if amax > 0.0 { 127.0 / amax } else { 0.0 });
    let (sign, half) = (f32x4_splat(-0.0), f32x4_splat(0.5));
    let lim = (i32x4_splat(127), i32x4_splat(-127));
    let q: [v128; 8] = core::array::from_fn(|j| {
        let y = f32x4_mul(v[j], id);
        // round half away from zero: y + copysign(0.5, y), truncated
        let r = i32x4_trunc_sat_f32x4(f32x4_add(y, v128_or(v128_and(y, sign), half)));
        i32x4_max(i32x4_min(r, lim.0), lim.1)
    });
    let mut sum = i32x4_add(i32x4_add(q[0], q[1]), i32x4_add(q[2], q[3]));
    sum = i32x4_add(sum, i32x4_add(i32x4_add(q[4], q[5]), i32x4_add(q[6], q[7])));
    let k = blk * 32;
    for h in 0..2 {
        let lo = i16x8_narrow_i32x4(q[4 * h], q[4 * h + 1]);
        let hi = i16x8_narrow_i32x4(q[4 * h + 2], q[4 * h + 3]);
        v128_store(a.qs.add(k + 16 * h) as *mut v128, i8x16_narrow_i16x8(lo, hi));
    }
    let sum = i32x4_extract_lane::<0>(sum) + i32x4_extract_lane::<1>(sum) + i32x4_extract_lane::<2>(sum) + i32x4_extract_lane::<3>(sum);
    store_ds(a, blk, amax / 127.0, sum);
}

/// Quantizes x: [n, din] into the activation buffer `act` (see the module doc).
#[no_mangle]
pub unsafe extern "C" fn quantize_act(act: *mut u8, x: *const f32, n: usize, din: usize) {
    let nb = din.div_ceil(32);
    let a = act_parts(act, n, nb);
    for t in 0..n {
        for b in 0..nb {
            let lo = b * 32;
            if lo + 32 <= din {
                quantize_block(&a, t * nb + b, x.add(t * din + lo));
                continue;
            }
            let hi = if lo + 32 < din { lo + 32 } else { din };
            let xs = x.add(t * din);
            let mut amax = 0.0f32;
            for i in lo..hi {
                let v = (*xs.add(i)).abs();
                if v > amax {
                    amax = v;
                }
            }
            let d = amax / 127.0;
            let id = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            let blk = t * nb + b;
            let mut sum = 0i32;
            for j in 0..32 {
                let i = lo + j;
                let q = if i < hi { round(*xs.add(i) * id) } else { 0 };
                let q = if q > 127 { 127 } else if q < -127 { -127 } else { q };
                *a.qs.add(blk * 32 + j) = q as i8;
                sum += q;
            }
            store_ds(&a, blk, d, sum);
        }
    }
}

/// Rounds half away from zero, as C's `roundf` (and ggml's quantizers) do.
#[inline(always)]
fn round(v: f32) -> i32 {
    (v + if v >= 0.0 { 0.5 } else { -0.5 }) as i32
}
