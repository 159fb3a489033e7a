//! tandem's wasm kernels: the fast path of every hot loop of the forward pass.
//!
//! A `#![no_std]` cdylib for `wasm32-unknown-unknown` with raw C-ABI exports and no allocator:
//! the TypeScript binding (`kernels/binding.ts`) owns the imported `WebAssembly.Memory` and
//! passes pointers into it. Conventions, as in `kernels/ref.ts` (the specification):
//! - outputs come first; matrices are row-major; a weight `w: [dout, din]` maps `y = W x`;
//! - activations of `n` tokens are `[n, dim]`;
//! - kernels that a thread pool splits take a row range `[r0, r1)` as their last two arguments
//!   (rows of the weight, or heads for attention); each row's result does not depend on the
//!   split, so one thread and many give identical bits;
//! - no kernel panics or checks: the binding validates once, at the boundary;
//! - every length works, including odd tails (not multiples of 4, 16 or 32).
//!
//! Built twice (see `build.sh`): with `+relaxed-simd,+atomics` (shared memory, threads, relaxed
//! fused multiply-add and int8 dot) and with plain `+simd128` (single thread).
#![no_std]

mod attention;
mod matmul_f32;
mod matmul_q4;
mod matmul_q8;
mod ops;
mod quant_act;
mod simd;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// Which build this is: 1 = relaxed SIMD (+ threads), 0 = plain simd128.
#[no_mangle]
pub extern "C" fn build_flavor() -> u32 {
    if cfg!(target_feature = "relaxed-simd") {
        1
    } else {
        0
    }
}
