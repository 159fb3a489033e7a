// Test fixture: stories260K with its tokenizer and digest, the whole model as a reference
// engine, two prompts, an edge serving it, and device engines for layers [0, K) + head.
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { cutModel } from "../runtime/shard.ts";
import { digestModel } from "../runtime/digest.ts";
import type { EdgeOptions } from "../edge/app.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
/** The model. */
export const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
/** Its tokenizer. */
export const tok = parseLlama2cTokenizer(await Deno.readFile(new URL("tok512.bin", DIR)), 512);
/** Its weights digest (hex). */
export const modelDigest = (await digestModel(model)).modelDigest!;
/** Its model id on the edge. */
export const ID = "stories260K";
/** The whole model, the tokens every split run must reproduce. */
export const full = new RefEngine(model);
/** Two story openings. */
export const PROMPTS = [
  tok.encode("Once upon a time, there was a dog"),
  tok.encode("Tom and Sue went"),
];
/** An edge serving the whole model. */
export const EDGE: EdgeOptions = { models: [{ id: ID, model }] };

/** A device engine holding the embedding, layers [0, K) and the head. */
export function device(K: number): RefEngine {
  return new RefEngine(cutModel(model, { layers: [0, K], embed: true, head: true }));
}
