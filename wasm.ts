/**
 * The fast engine: the wasm kernels (SIMD, and threads where the host has shared memory and
 * Workers) behind the same `Engine` contract as the reference engine, with weights
 * in f32, q8_0 or q4_0. A separate entry point from `./mod.ts` because its thread pool starts
 * Workers (`node:worker_threads` on Node), which the portable core never touches.
 *
 * @example
 * ```ts
 * import { createEngine } from "./wasm.ts";
 * import { parseLlama2c } from "./mod.ts";
 * const model = parseLlama2c(await Deno.readFile("../shared/models/stories260K/stories260K.bin"));
 * const engine = await createEngine(model, { quant: "q8", threads: 2 });
 * console.log(engine.name, "—", engine.reason); // "wasm-q8x2 — relaxed SIMD + shared memory; …"
 * engine.dispose();
 * ```
 *
 * @module
 */

export {
  type CreatedEngine,
  createEngine,
  type CreateEngineOptions,
} from "./runtime/create_engine.ts";
export {
  type EngineQuant,
  WasmEngine,
  type WasmEngineOptions,
  type WeightPlan,
  weightPlan,
} from "./runtime/wasm_engine.ts";
export type { WeightType } from "./runtime/wasm_weights.ts";
export {
  type CalibrationOptions,
  quantizeCalibrated,
  type QuantPlan,
  sampleCalibration,
} from "./runtime/calibrate.ts";
export { type GptqFactor, gptqFactor, type GptqOptions, quantizeGptq } from "./runtime/gptq.ts";
export type { QuantTensor, QuantType, ScaleFit } from "./runtime/quant.ts";
export { WasmCache } from "./runtime/wasm_cache.ts";
export {
  type Flavor,
  type KernelExports,
  Kernels,
  loadKernels,
  type LoadKernelsOptions,
  type QuantMatmul,
} from "./kernels/binding.ts";
