//! f32 weight matmul: decode (n = 1, a matvec) and prefill (n tokens, blocked by 4 tokens so
//! each weight row is loaded once per block while it sits in L1).
use crate::simd::{dot4_f32, dot_f32};

/// out[t, o] = sum_i x[t, i] * w[o, i] (+ bias[o]) for t < n, r0 <= o < r1.
///
/// out: [n, dout]; x: [n, din]; w: [dout, din]; bias: [dout] or null.
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
    for o in r0..r1 {
        let wr = w.add(o * din); // row o: [din]
        let b = if bias.is_null() { 0.0 } else { *bias.add(o) };
        let mut t = 0;
        while t + 4 <= n {
            let s = dot4_f32(wr, x.add(t * din), din, din);
            for j in 0..4 {
                *out.add((t + j) * dout + o) = s[j] + b;
            }
            t += 4;
        }
        while t < n {
            *out.add(t * dout + o) = dot_f32(wr, x.add(t * din), din) + b;
            t += 1;
        }
    }
}
