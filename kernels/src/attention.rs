//! Causal grouped-query attention over the KV cache, split by heads for the thread pool.
use crate::ops::softmax;
use crate::simd::{axpy, dot_f32, fmadd, load, sqrt};
use core::arch::wasm32::*;

/// Attention of n new tokens at positions pos0 .. pos0+n-1 for query heads [h0, h1), over a
/// cache that already holds their keys and values.
///
/// out, q: [n, nHeads * headDim]; kc, vc: [>= pos0 + n, nKvHeads * headDim];
/// scratch: [nHeads, pos0 + n] (one row per head, so heads never share scratch).
#[no_mangle]
pub unsafe extern "C" fn attention(
    out: *mut f32,
    q: *const f32,
    kc: *const f32,
    vc: *const f32,
    scratch: *mut f32,
    n: usize,
    pos0: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    h0: usize,
    h1: usize,
) {
    let q_dim = n_heads * head_dim;
    let kv_dim = n_kv_heads * head_dim;
    let group = n_heads / n_kv_heads;
    let scale = (1.0 / sqrt(head_dim as f64)) as f32;
    let cap = pos0 + n;
    for h in h0..h1 {
        let sc = scratch.add(h * cap); // [ctx]
        let kvo = (h / group) * head_dim;
        for t in 0..n {
            let ctx = pos0 + t + 1;
            let qr = q.add(t * q_dim + h * head_dim);
            for p in 0..ctx {
                *sc.add(p) = dot_f32(qr, kc.add(p * kv_dim + kvo), head_dim) * scale;
            }
            softmax(sc, ctx);
            let or = out.add(t * q_dim + h * head_dim);
            // out = sum_p sc[p] * v[p]: 32 columns at a time kept in registers over all
            // positions (the same multiply-adds, in the same order, as axpy on memory).
            let mut i = 0;
            while i + 32 <= head_dim {
                let mut acc = [f32x4_splat(0.0); 8];
                for p in 0..ctx {
                    let (s, v) = (f32x4_splat(*sc.add(p)), vc.add(p * kv_dim + kvo + i));
                    for j in 0..8 {
                        acc[j] = fmadd(s, load(v.add(4 * j)), acc[j]);
                    }
                }
                for j in 0..8 {
                    v128_store(or.add(i + 4 * j) as *mut v128, acc[j]);
                }
                i += 32;
            }
            if i < head_dim {
                for j in i..head_dim {
                    *or.add(j) = 0.0;
                }
                for p in 0..ctx {
                    axpy(or.add(i), *sc.add(p), vc.add(p * kv_dim + kvo + i), head_dim - i);
                }
            }
        }
    }
}
