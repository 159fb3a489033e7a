//! SIMD building blocks shared by the kernels: multiply-add, horizontal sums, f32 dot
//! products with tails, and a scalar `exp` accurate to f64 rounding (no libm in `no_std`).
use core::arch::wasm32::*;

/// a * b + c per lane: fused (relaxed) where the build allows it, else multiply then add.
#[inline(always)]
pub fn fmadd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(f32x4_mul(a, b), c)
    }
}

/// Sum of the four lanes of an f32x4.
#[inline(always)]
pub fn hsum(v: v128) -> f32 {
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<2>(v))
        + (f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<3>(v))
}

/// [sum v[0], sum v[1], sum v[2], sum v[3]] of four i32x4 (a 4×4 transpose folded into adds:
/// four unpacks, two 64-bit unpacks and three adds).
#[inline(always)]
pub fn hsum4_i32(v: [v128; 4]) -> v128 {
    let u01 = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(v[0], v[1]), i32x4_shuffle::<2, 6, 3, 7>(v[0], v[1]));
    let u23 = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(v[2], v[3]), i32x4_shuffle::<2, 6, 3, 7>(v[2], v[3]));
    i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(u01, u23), i32x4_shuffle::<2, 3, 6, 7>(u01, u23))
}

/// Loads 16 bytes (any alignment).
#[inline(always)]
pub unsafe fn load<T>(p: *const T) -> v128 {
    v128_load(p as *const v128)
}

/// sum_i a[i] * b[i] for i < len. a, b: [len].
#[inline(always)]
pub unsafe fn dot_f32(a: *const f32, b: *const f32, len: usize) -> f32 {
    let (mut s0, mut s1, mut s2, mut s3) = (f32x4_splat(0.0), f32x4_splat(0.0), f32x4_splat(0.0), f32x4_splat(0.0));
    let mut i = 0;
    while i + 16 <= len {
        s0 = fmadd(load(a.add(i)), load(b.add(i)), s0);
        s1 = fmadd(load(a.add(i + 4)), load(b.add(i + 4)), s1);
        s2 = fmadd(load(a.add(i + 8)), load(b.add(i + 8)), s2);
        s3 = fmadd(load(a.add(i + 12)), load(b.add(i + 12)), s3);
        i += 16;
    }
    while i + 4 <= len {
        s0 = fmadd(load(a.add(i)), load(b.add(i)), s0);
        i += 4;
    }
    let mut s = hsum(f32x4_add(f32x4_add(s0, s1), f32x4_add(s2, s3)));
    while i < len {
        s += *a.add(i) * *b.add(i);
        i += 1;
    }
    s
}

/// y[i] += a * x[i] for i < len.
#[inline(always)]
pub unsafe fn axpy(y: *mut f32, a: f32, x: *const f32, len: usize) {
    let av = f32x4_splat(a);
    let mut i = 0;
    while i + 4 <= len {
        v128_store(y.add(i) as *mut v128, fmadd(av, load(x.add(i)), load(y.add(i))));
        i += 4;
    }
    while i < len {
        *y.add(i) += a * *x.add(i);
        i += 1;
    }
}

/// 1/j! for j = 12 .. 0, the Taylor coefficients of `exp`.
const EXP_C: [f64; 13] = [2.08767569878681e-09, 2.505210838544172e-08, 2.755731922398589e-07, 2.7557319223985893e-06, 2.48015873015873e-05, 0.0001984126984126984, 0.001388888888888889, 0.008333333333333333, 0.041666666666666664, 0.16666666666666666, 0.5, 1.0, 1.0];

/// e^x in f64 (error ~1e-15 relative): range reduction by ln 2, then a degree-12 Taylor series.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    if x < -708.0 {
        return 0.0;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    let k = ((x * core::f64::consts::LOG2_E) + if x >= 0.0 { 0.5 } else { -0.5 }) as i64 as f64;
    let r = x - k * LN2_HI - k * LN2_LO; // |r| <= 0.35
    // Horner over 1/j! for j = 12 .. 0: p = sum_(j<=12) r^j / j!
    let mut p = EXP_C[0];
    let mut j = 1;
    while j < 13 {
        p = p * r + EXP_C[j];
        j += 1;
    }
    p * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// e^x per lane of an f64x2: `exp`'s algorithm, two lanes at once (x clamped to
/// [-708, 709], where e^x as f32 is already 0 or infinity).
#[inline(always)]
pub fn exp_f64x2(x: v128) -> v128 {
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    let x = f64x2_pmax(f64x2_pmin(x, f64x2_splat(709.0)), f64x2_splat(-708.0));
    let k = f64x2_nearest(f64x2_mul(x, f64x2_splat(core::f64::consts::LOG2_E)));
    let r = f64x2_sub(f64x2_sub(x, f64x2_mul(k, f64x2_splat(LN2_HI))), f64x2_mul(k, f64x2_splat(LN2_LO)));
    let mut p = f64x2_splat(EXP_C[0]);
    let mut j = 1;
    while j < 13 {
        p = f64x2_add(f64x2_mul(p, r), f64x2_splat(EXP_C[j]));
        j += 1;
    }
    let e = i64x2_shl(i64x2_add(i64x2_extend_low_i32x4(i32x4_trunc_sat_f64x2_zero(k)), i64x2_splat(1023)), 52);
    f64x2_mul(p, e)
}

/// Lane L of an f32x4 in every lane.
#[inline(always)]
pub fn lane<const L: usize>(v: v128) -> v128 {
    match L {
        0 => i32x4_shuffle::<0, 0, 0, 0>(v, v),
        1 => i32x4_shuffle::<1, 1, 1, 1>(v, v),
        2 => i32x4_shuffle::<2, 2, 2, 2>(v, v),
        _ => i32x4_shuffle::<3, 3, 3, 3>(v, v),
    }
}

/// Square root in f64 (through the SIMD instruction: the scalar one is unstable in core).
#[inline(always)]
pub fn sqrt(v: f64) -> f64 {
    f64x2_extract_lane::<0>(f64x2_sqrt(f64x2_splat(v)))
}
