//! The element-wise and per-token kernels: RMSNorm, RoPE, softmax, SwiGLU, add.
use crate::simd::{exp, exp_f64x2, fmadd, hsum, load, sqrt};
use core::arch::wasm32::*;

/// out[t] = x[t] / rms(x[t]) * weight per token. out, x: [n, dim]; weight: [dim].
#[no_mangle]
pub unsafe extern "C" fn rmsnorm(out: *mut f32, x: *const f32, weight: *const f32, n: usize, dim: usize, eps: f32) {
    for t in 0..n {
        let (xr, or) = (x.add(t * dim), out.add(t * dim));
        let mut acc = f32x4_splat(0.0);
        let mut i = 0;
        while i + 4 <= dim {
            let v = load(xr.add(i));
            acc = fmadd(v, v, acc);
            i += 4;
        }
        let mut ss = hsum(acc) as f64;
        while i < dim {
            ss += (*xr.add(i) as f64) * (*xr.add(i) as f64);
            i += 1;
        }
        let scale = (1.0 / sqrt(ss / dim as f64 + eps as f64)) as f32;
        for i in 0..dim {
            *or.add(i) = *weight.add(i) * (*xr.add(i) * scale);
        }
    }
}

/// Rotates consecutive pairs of every head of every token in place, with the angles' cosines
/// and sines precomputed by the caller. x: [n, nHeads * headDim]; cs: [n, headDim / 2, 2]
/// holding (cos, sin) of (pos0 + t) * freqs[j].
#[no_mangle]
pub unsafe extern "C" fn rope(x: *mut f32, cs: *const f32, n: usize, n_heads: usize, head_dim: usize) {
    let half = head_dim / 2;
    for t in 0..n {
        for h in 0..n_heads {
            let xr = x.add(t * n_heads * head_dim + h * head_dim);
            for j in 0..half {
                let c = *cs.add((t * half + j) * 2);
                let s = *cs.add((t * half + j) * 2 + 1);
                let (a, b) = (*xr.add(2 * j), *xr.add(2 * j + 1));
                *xr.add(2 * j) = a * c - b * s;
                *xr.add(2 * j + 1) = a * s + b * c;
            }
        }
    }
}

/// Softmax over x[0 .. len), in place (exp and sum in f64).
#[no_mangle]
pub unsafe extern "C" fn softmax(x: *mut f32, len: usize) {
    let mut max = f32::NEG_INFINITY;
    for i in 0..len {
        if *x.add(i) > max {
            max = *x.add(i);
        }
    }
    let mut sum = 0.0f64;
    let mut i = 0;
    let (mv, mut sv) = (f64x2_splat(max as f64), f64x2_splat(0.0));
    while i + 2 <= len {
        let v = f64x2_promote_low_f32x4(v128_load64_zero(x.add(i) as *const u64));
        let e = exp_f64x2(f64x2_sub(v, mv));
        v128_store64_lane::<0>(f32x4_demote_f64x2_zero(e), x.add(i) as *mut u64);
        sv = f64x2_add(sv, e);
        i += 2;
    }
    sum += f64x2_extract_lane::<0>(sv) + f64x2_extract_lane::<1>(sv);
    while i < len {
        let e = exp((*x.add(i) - max) as f64);
        *x.add(i) = e as f32;
        sum += e;
        i += 1;
    }
    let inv = (1.0 / sum) as f32;
    for i in 0..len {
        *x.add(i) *= inv;
    }
}

/// out[i] = silu(gate[i]) * up[i] for i < len; silu(g) = g / (1 + e^-g). out may alias gate.
#[no_mangle]
pub unsafe extern "C" fn swiglu(out: *mut f32, gate: *const f32, up: *const f32, len: usize) {
    let one = f64x2_splat(1.0);
    let mut i = 0;
    while i + 2 <= len {
        let g = f64x2_promote_low_f32x4(v128_load64_zero(gate.add(i) as *const u64));
        let u = f64x2_promote_low_f32x4(v128_load64_zero(up.add(i) as *const u64));
        let e = exp_f64x2(f64x2_neg(g));
        let y = f64x2_mul(f64x2_div(g, f64x2_add(one, e)), u);
        v128_store64_lane::<0>(f32x4_demote_f64x2_zero(y), out.add(i) as *mut u64);
        i += 2;
    }
    for i in i..len {
        let g = *gate.add(i) as f64;
        *out.add(i) = ((g / (1.0 + exp(-g))) * *up.add(i) as f64) as f32;
    }
}

/// x[i] += y[i] for i < len.
#[no_mangle]
pub unsafe extern "C" fn add(x: *mut f32, y: *const f32, len: usize) {
    let mut i = 0;
    while i + 4 <= len {
        v128_store(x.add(i) as *mut v128, f32x4_add(load(x.add(i)), load(y.add(i))));
        i += 4;
    }
    while i < len {
        *x.add(i) += *y.add(i);
        i += 1;
    }
}
