// Seeded random numbers for deterministic tests (mulberry32).

/** Returns a generator of uniform numbers in [0, 1) from a 32-bit seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A Float32Array of `len` values uniform in [-scale, scale). */
export function randf(r: () => number, len: number, scale = 1): Float32Array {
  return Float32Array.from({ length: len }, () => (2 * r() - 1) * scale);
}

/** Largest |a - b| divided by the largest |b| (relative error on a whole tensor). */
export function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / (m || 1);
}
