/**
 * Host-side helpers for Deno and Node: load a model from a path, a URL or the Hugging Face
 * hub (cached on disk).
 *
 * @example
 * ```ts
 * import { loadModel } from "./mod.ts";
 * const { model, tokenizer, description } = await loadModel("../shared/models/stories260K/stories260K.bin");
 * console.error(description, model.config.nLayers, tokenizer.vocabSize);
 * ```
 *
 * @module
 */

export { loadModel, type LoadModelOptions } from "./load.ts";
export { DirSource, DiskCache } from "./fs.ts";
export type { FileCache } from "../runtime/source.ts";
