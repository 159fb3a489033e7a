/**
 * GPTQ (Frantar et al., 2022): error-compensating quantization of one weight matrix into the
 * same q8_0 / q4_0 blocks {@linkcode quantize} makes (runtime/quant.ts), so the same kernels
 * run it; only which integers and scales are stored changes.
 *
 * Round-to-nearest makes each weight as close as possible; GPTQ makes the matrix's outputs
 * on real inputs as close as possible. Given H = Σ x xᵀ over calibration inputs x of the
 * matrix ([cols, cols]), it quantizes the input columns in order; each column's rounding
 * error is pushed onto the columns not yet quantized through the upper Cholesky factor U of
 * (H + λI)⁻¹ (λ = `damp` × mean diagonal of H), which minimises Σ ‖(W − Q) x‖² greedily. A
 * block's scale is chosen when its first column is reached, from the weights as updated so
 * far, by the same rule round-to-nearest uses (`fit`).
 *
 * Cost: one Cholesky and one triangular inverse of [cols, cols] (cols³ / 3 multiply-adds)
 * plus rows · cols² / 2 for the updates. Measured in plain TS at SmolLM2-135M's shapes:
 * 0.4 s for w1 [1536, 576], 2.2 s for w2 [576, 1536], 3.9 s a layer, 17 s the classifier.
 *
 * @example
 * ```ts
 * import { quantizeGptq } from "./gptq.ts";
 * import { dequantize } from "./quant.ts";
 * const w = new Float32Array(4 * 32).map((_, i) => Math.sin(i));
 * const h = new Float64Array(32 * 32);
 * for (let i = 0; i < 32; i++) h[i * 32 + i] = 1 + i; // Σ x xᵀ of the inputs
 * const q = quantizeGptq("q8_0", w, 4, 32, h);
 * console.log(dequantize(q)[5]); // ≈ Math.sin(5)
 * ```
 *
 * @module
 */

import { check } from "./errors.ts";
import {
  blockScale,
  blocksPerRow,
  packQ4,
  QUANT_RANGE,
  type QuantTensor,
  type QuantType,
  roundHalfAway,
  type ScaleFit,
} from "./quant.ts";

/** Options of {@linkcode quantizeGptq}. */
export interface GptqOptions {
  /** Dampening λ as a fraction of H's mean diagonal, added to the diagonal (default 0.01). */
  damp?: number;
  /** How each block's scale is chosen (default "max" for q8_0, "rmse" for q4_0). */
  fit?: ScaleFit;
}

/**
 * A hessian prepared for GPTQ: the upper triangular U with (H + λI)⁻¹ = Uᵀ U. Matrices that
 * read the same input (wq, wk, wv; w1, w3) share one; see {@linkcode gptqFactor}.
 */
export interface GptqFactor {
  /** Columns (inputs) of the matrices it serves. */
  cols: number;
  /** U: f64 [cols, cols]. */
  u: Float64Array;
}

/**
 * Prepares `hessian` = Σ x xᵀ: f64 [cols, cols] (not modified) for {@linkcode quantizeGptq},
 * with dampening `damp` (default 0.01) as a fraction of its mean diagonal. Throws
 * `bad_argument` for a mismatched size, a non-finite or non-positive-definite hessian, or a
 * bad `damp`.
 *
 * @example
 * ```ts
 * import { gptqFactor, quantizeGptq } from "./gptq.ts";
 * declare const h: Float64Array; declare const wk: Float32Array; declare const wv: Float32Array;
 * const f = gptqFactor(h, 64);
 * const k = quantizeGptq("q8_0", wk, 32, 64, f), v = quantizeGptq("q8_0", wv, 32, 64, f);
 * ```
 */
export function gptqFactor(hessian: Float64Array, cols: number, damp = 0.01): GptqFactor {
  return factorOf(hessian, cols, damp, `Cannot prepare a GPTQ hessian of ${cols} columns`);
}

function factorOf(hessian: Float64Array, cols: number, damp: number, what: string): GptqFactor {
  check(
    hessian.length === cols * cols,
    "bad_argument",
    () => `${what}: the hessian holds ${hessian.length} values, expected ${cols} × ${cols}`,
  );
  check(
    Number.isFinite(damp) && damp >= 0,
    "bad_argument",
    `${what}: damp must be ≥ 0, got ${damp}`,
  );
  return { cols, u: inverseCholeskyUpper(dampedHessian(hessian, cols, damp, what), cols, what) };
}

/**
 * Quantizes w: f32 [rows, cols] to `type` with GPTQ, given `hessian` = Σ x xᵀ: f64
 * [cols, cols] over calibration inputs (not modified), or that hessian already prepared by
 * {@linkcode gptqFactor} (then `damp` is the factor's). Columns the calibration never saw
 * (zero diagonal) are rounded to nearest. Throws `bad_argument` for mismatched sizes, a
 * non-finite or non-positive-definite hessian, or a bad `damp`.
 */
export function quantizeGptq(
  type: QuantType,
  w: Float32Array,
  rows: number,
  cols: number,
  hessian: Float64Array | GptqFactor,
  options: GptqOptions = {},
): QuantTensor {
  const { damp = 0.01, fit = type === "q4_0" ? "rmse" : "max" } = options;
  const what = `Cannot quantize [${rows}, ${cols}] with GPTQ`;
  check(w.length === rows * cols, "bad_argument", () => `${what}: it holds ${w.length} values`);
  const factor = hessian instanceof Float64Array ? factorOf(hessian, cols, damp, what) : hessian;
  check(
    factor.cols === cols,
    "bad_argument",
    () => `${what}: the factor is for ${factor.cols} columns`,
  );
  const U = factor.u;
  const W = Float64Array.from(w); // updated in place as errors are pushed right
  const nb = blocksPerRow(cols);
  const d = new Float32Array(rows * nb);
  const q = new Int8Array(rows * nb * 32);
  const [qmin, qmax] = QUANT_RANGE[type];
  const block = new Float32Array(32);
  const err = new Float64Array(rows);
  for (let b = 0; b < nb; b++) {
    const j0 = b * 32, j1 = Math.min(cols, j0 + 32);
    for (let r = 0; r < rows; r++) {
      block.fill(0);
      for (let j = j0; j < j1; j++) block[j - j0] = W[r * cols + j];
      d[r * nb + b] = blockScale(type, block, fit);
    }
    for (let j = j0; j < j1; j++) {
      const ujj = U[j * cols + j];
      for (let r = 0; r < rows; r++) {
        const s = d[r * nb + b];
        const x = W[r * cols + j];
        const l = s ? Math.max(qmin, Math.min(qmax, roundHalfAway(x / s))) : 0;
        q[(r * nb + b) * 32 + j - j0] = l;
        err[r] = (x - l * s) / ujj;
      }
      // W[:, j+1:] -= err ⊗ U[j, j+1:]
      const uo = j * cols;
      for (let r = 0; r < rows; r++) {
        const e = err[r];
        if (e === 0) continue;
        const wo = r * cols;
        for (let k = j + 1; k < cols; k++) W[wo + k] -= e * U[uo + k];
      }
    }
  }
  if (type === "q8_0") return { type, rows, cols, qs: q, d };
  const qs = new Uint8Array(rows * nb * 16);
  for (let k = 0; k < rows * nb; k++) packQ4(q, k * 32, qs, k * 16);
  return { type, rows, cols, qs, d };
}

/** H + λI with λ = damp × mean diagonal; unseen columns (zero diagonal) get a diagonal of 1. */
function dampedHessian(hessian: Float64Array, n: number, damp: number, what: string): Float64Array {
  const H = hessian.slice();
  let mean = 0;
  for (let i = 0; i < n * n; i++) {
    check(Number.isFinite(H[i]), "bad_argument", `${what}: the hessian holds ${H[i]}`);
  }
  for (let i = 0; i < n; i++) mean += H[i * n + i];
  mean = mean / n || 1;
  for (let i = 0; i < n; i++) {
    if (H[i * n + i] === 0) {
      for (let j = 0; j < n; j++) H[i * n + j] = H[j * n + i] = 0;
      H[i * n + i] = mean;
    }
    H[i * n + i] += damp * mean;
  }
  return H;
}

/**
 * The upper triangular U with H⁻¹ = Uᵀ U, from the Cholesky factor of H with rows and columns
 * reversed: if J H J = L Lᵀ then U = J L⁻¹ J.
 */
function inverseCholeskyUpper(H: Float64Array, n: number, what: string): Float64Array {
  const L = new Float64Array(n * n); // chol(J H J), lower
  for (let i = 0; i < n; i++) {
    const ri = i * n, hi = (n - 1 - i) * n + n - 1;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      let s = H[hi - j];
      for (let k = 0; k < j; k++) s -= L[ri + k] * L[rj + k];
      if (i === j) {
        check(
          s > 0,
          "bad_argument",
          () => `${what}: the hessian is not positive definite (column ${n - 1 - i})`,
        );
        L[ri + i] = Math.sqrt(s);
      } else {
        L[ri + j] = s / L[rj + j];
      }
    }
  }
  const Li = new Float64Array(n * n); // L⁻¹, row by row: L Li = I
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    Li[ri + i] = 1;
    for (let k = 0; k < i; k++) {
      const f = L[ri + k];
      if (f === 0) continue;
      const rk = k * n;
      for (let c = 0; c <= k; c++) Li[ri + c] -= f * Li[rk + c];
    }
    const inv = 1 / L[ri + i];
    for (let c = 0; c <= i; c++) Li[ri + c] *= inv;
  }
  const U = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const src = (n - 1 - i) * n + n - 1;
    for (let j = i; j < n; j++) U[i * n + j] = Li[src - j];
  }
  return U;
}
