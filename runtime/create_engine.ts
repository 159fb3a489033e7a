/**
 * The engine factory the CLI and hosts use: the wasm engine when the kernels load, else the
 * TypeScript reference, and in both cases a `reason` saying what was chosen and why.
 *
 * @example
 * ```ts
 * import { createEngine } from "./create_engine.ts";
 * import type { Model } from "./model.ts";
 * declare const model: Model;
 * const engine = await createEngine(model, { quant: "q8", threads: 2 });
 * console.log(engine.name, "—", engine.reason);
 * engine.dispose();
 * ```
 *
 * @module
 */

import type { LoadKernelsOptions } from "../kernels/binding.ts";
import type { CalibrationOptions } from "./calibrate.ts";
import type { Engine } from "./engine.ts";
import { TandemError } from "./errors.ts";
import { RefEngine } from "./forward.ts";
import type { Model } from "./model.ts";
import { type EngineQuant, WasmEngine } from "./wasm_engine.ts";

/** Options of {@linkcode createEngine}. */
export interface CreateEngineOptions {
  /** Weight precision (default "f32"); the reference fallback always runs f32. */
  quant?: EngineQuant;
  /** Threads, the caller included (default 1). */
  threads?: number;
  /** "auto" (default): wasm if it loads, else the reference; "wasm" fails instead; "ref" forces it. */
  backend?: "auto" | "wasm" | "ref";
  /** How to load the kernels (e.g. a precompiled module on workerd). */
  kernels?: LoadKernelsOptions;
  /** Quantize with GPTQ on calibration text (wasm only; see `WasmEngineOptions.calibration`). */
  calibration?: CalibrationOptions;
}

/** An engine and the reason it was chosen. */
export interface CreatedEngine extends Engine {
  /** What runs and why, e.g. "relaxed SIMD + shared memory; 2 threads: caller + 1 web Worker". */
  readonly reason: string;
}

/** The reference engine, labelled with why it runs. */
class RefFallback extends RefEngine implements CreatedEngine {
  readonly reason: string;
  constructor(model: Model, reason: string) {
    super(model);
    this.reason = reason;
  }
}

/**
 * Creates the fastest engine this host runs for `model`. Throws `bad_model` for an invalid
 * model and `bad_argument` for bad options; a host without usable wasm gets the reference.
 */
export async function createEngine(
  model: Model,
  options: CreateEngineOptions = {},
): Promise<CreatedEngine> {
  const { backend = "auto" } = options;
  if (backend === "ref") return new RefFallback(model, "reference engine: requested");
  try {
    return await WasmEngine.create(model, options);
  } catch (e) {
    if (backend === "wasm" || e instanceof TandemError) throw e; // bad model or options

    const quant = options.quant && options.quant !== "f32" ? ` (f32, not ${options.quant})` : "";
    return new RefFallback(
      model,
      `reference engine${quant}: wasm kernels unavailable: ${(e as Error).message}`,
    );
  }
}
