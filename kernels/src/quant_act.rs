//! On-the-fly quantization of activations to q8_0 blocks (32 values, one f32 scale), the
//! left operand of the int8 × int8 dot products of `matmul_q8` and `matmul_q4`.
//!
//! Layout of an activation buffer for n tokens of din values, nb = ceil(din / 32) blocks:
//!
//! | part  | type | shape        | meaning                                            |
//! | ----- | ---- | ------------ | -------------------------------------------------- |
//! | `qs`  | i8   | [n, nb * 32] | round(x / d), in [-127, 127]; zero past din        |
//! | `abs` | i8   | [n, nb * 32] | \|qs\| (the 7-bit operand of the relaxed dot)      |
//! | `sgn` | i8   | [n, nb * 32] | -1 where qs < 0 else 0 (applied to the weights)    |
//! | `d`   | f32  | [n, nb]      | per-block scale: max\|x\| / 127                    |
//! | `sum` | i32  | [n, nb]      | sum of the block's qs (the q4 zero-point term)     |

/// Bytes an activation buffer for n tokens of din values needs.
#[no_mangle]
pub extern "C" fn act_bytes(n: usize, din: usize) -> usize {
    n * din.div_ceil(32) * (3 * 32 + 8)
}

/// Pointers to the five parts of an activation buffer.
pub struct Act {
    pub qs: *mut i8,
    pub abs: *mut i8,
    pub sgn: *mut i8,
    pub d: *mut f32,
    pub sum: *mut i32,
}

/// Splits an activation buffer at `act` into its parts.
#[inline(always)]
pub fn act_parts(act: *mut u8, n: usize, nb: usize) -> Act {
    let q = n * nb * 32;
    Act {
        qs: act as *mut i8,
        abs: act.wrapping_add(q) as *mut i8,
        sgn: act.wrapping_add(2 * q) as *mut i8,
        d: act.wrapping_add(3 * q) as *mut f32,
        sum: act.wrapping_add(3 * q + 4 * n * nb) as *mut i32,
    }
}

/// Quantizes x: [n, din] into the activation buffer `act` (see the module doc).
#[no_mangle]
pub unsafe extern "C" fn quantize_act(act: *mut u8, x: *const f32, n: usize, din: usize) {
    let nb = din.div_ceil(32);
    let a = act_parts(act, n, nb);
    for t in 0..n {
        for b in 0..nb {
            let lo = b * 32;
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
                let k = blk * 32 + j;
                *a.qs.add(k) = q as i8;
                *a.abs.add(k) = (if q < 0 { -q } else { q }) as i8;
                *a.sgn.add(k) = if q < 0 { -1 } else { 0 };
                sum += q;
            }
            *a.d.add(blk) = d;
            *a.sum.add(blk) = sum;
        }
    }
}

/// Rounds half away from zero, as C's `roundf` (and ggml's quantizers) do.
#[inline(always)]
fn round(v: f32) -> i32 {
    (v + if v >= 0.0 { 0.5 } else { -0.5 }) as i32
}
