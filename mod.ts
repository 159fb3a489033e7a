/**
 * tandem: split-compute LLM inference. This module is the portable core (no host APIs):
 * model description and formats, tokenizers, engines that run any layer range, sampling and
 * generation. Loading from the file system lives in `./hosts/mod.ts`; the edge server in
 * `./edge/mod.ts`.
 *
 * @example
 * ```ts
 * import { generate, parseLlama2c, parseLlama2cTokenizer, RefEngine, StreamDecoder } from "./mod.ts";
 * const dir = "../shared/models/stories260K/";
 * const model = parseLlama2c(await Deno.readFile(dir + "stories260K.bin"));
 * const tok = parseLlama2cTokenizer(await Deno.readFile(dir + "tok512.bin"), model.config.vocabSize);
 * const prompt = tok.encode("Once upon a time");
 * const stream = new StreamDecoder(tok, prompt);
 * let text = "";
 * for (const id of generate(new RefEngine(model), prompt, { maxTokens: 20 })) text += stream.push(id);
 * console.log(text);
 * ```
 *
 * @module
 */

export { type ErrorCode, TandemError } from "./runtime/errors.ts";
export {
  expectedShapes,
  headFlops,
  layerFlops,
  type Model,
  type ModelConfig,
  type ModelParts,
  parameterCount,
  type RopeScaling,
  type Tensor,
  validateModel,
} from "./runtime/model.ts";
export type { Engine, KVCache } from "./runtime/engine.ts";
export { RefCache, RefEngine } from "./runtime/forward.ts";
export { generate, type GenerateOptions } from "./runtime/generate.ts";
export { argmax, Rng, Sampler, type SamplerOptions } from "./runtime/sampling.ts";
export { StreamDecoder, type Tokenizer } from "./runtime/tokenizer/tokenizer.ts";
export { Llama2cTokenizer, parseLlama2cTokenizer } from "./runtime/tokenizer/llama2c.ts";
export { HfTokenizer, type HfTokenizerDefaults, parseHfTokenizer } from "./runtime/tokenizer/hf.ts";
export { parseLlama2c, serializeLlama2c } from "./runtime/formats/llama2c.ts";
export {
  parseSafetensors,
  type SafetensorsEntry,
  type SafetensorsFile,
} from "./runtime/formats/safetensors.ts";
export {
  type SafetensorsDtype,
  serializeSafetensors,
} from "./runtime/formats/safetensors_write.ts";
export { readSafetensors, type SafetensorsRead } from "./runtime/safetensors_source.ts";
export { type HfWriteOptions, modelFromHf, modelToHf } from "./runtime/formats/hf.ts";
export {
  type LoadedModel,
  loadHfFolder,
  loadLlama2cFrom,
  type SourceFile,
  type SourceLoadOptions,
} from "./runtime/load.ts";
export { type FileCache, type FileSource, HttpSource, type ProgressFn } from "./runtime/source.ts";
export { HubSource, type HubSourceOptions, type HubSpec, parseHubSpec } from "./runtime/hub.ts";
export { digestModel, type ModelDigests } from "./runtime/digest.ts";
export {
  cutModel,
  makeShard,
  type Shard,
  shardParts,
  type ShardRole,
  verifyShard,
} from "./runtime/shard.ts";
export { isShardFile, parseShard, serializeShard } from "./runtime/shard_file.ts";
export { type ManifestShard, type PackManifest, packModel } from "./runtime/pack.ts";
export {
  createSession,
  type SessionOptions,
  type SessionStats,
  type SplitGenerateOptions,
  SplitSession,
  type StreamPort,
} from "./runtime/session.ts";
export {
  EdgeClient,
  type EdgeClientOptions,
  type OpenSessionRequest,
  type SessionInfo,
} from "./runtime/edge_client.ts";
export { WIRE_DTYPES, type WireDtype } from "./runtime/wire.ts";
export type { Reply, ReplyDone, ReplyToken } from "./runtime/wire_reply.ts";
export {
  type RoutedDecision,
  routedGenerate,
  type RoutedOptions,
  type RoutedRun,
} from "./runtime/routed.ts";
export {
  measureEngineFlops,
  type RouterContext,
  routerInputFor,
  type WireChoice,
} from "./runtime/router_input.ts";
export { earlyExitGenerate } from "./runtime/early_exit.ts";
export { EdgeMonitor, type EdgeMonitorOptions } from "./runtime/edge_monitor.ts";
export {
  applyExitAdapter,
  draftLogits,
  type ExitAdapter,
  exitAdapterFlops,
  exitAgreement,
  fitExitAdapter,
  type FitExitOptions,
  type FittedExitAdapter,
  identityExitAdapter,
  parseExitAdapters,
  serializeExitAdapters,
} from "./runtime/exit_adapter.ts";
export { cloudGenerate, type CloudRun, type CloudTarget } from "./runtime/cloud_generate.ts";
export type * from "./runtime/router/types.ts";
export {
  DEFAULT_THRESHOLDS,
  DefaultPolicy,
  FixedPolicy,
  localFallback,
  NetworkEstimator,
  type RequestMetrics,
  type RequestSample,
  type Thresholds,
  TtftCorrector,
  type TtftCorrectorOptions,
} from "./runtime/router/mod.ts";
