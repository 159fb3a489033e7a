/**
 * The all-edge token-id route, for devices that route a query to the cloud without sending
 * text: `POST /v1/generate` with token ids in, token ids streamed out as the NDJSON answer of
 * `runtime/wire_reply.ts` (one line per token as soon as it is computed, then the closing
 * line), so the device reads it with the same `readReply` as a split frame's answer.
 *
 * | field         | type       | meaning                                              |
 * | ------------- | ---------- | ---------------------------------------------------- |
 * | `model`       | string     | model id (a whole model the edge serves)             |
 * | `tokens`      | number[]   | the context, BOS first; 1 ..< maxSeqLen ids          |
 * | `max_tokens`  | number?    | most tokens to produce (default 256, ≤ maxChatTokens) |
 * | `temperature` | number?    | default 0 (greedy)                                   |
 * | `top_p`, `seed` | number?  | sampling, as in chat completions                     |
 * | `stop_at_eos` | boolean?   | default true; the stop token is not sent             |
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { registerGenerate } from "./generate_route.ts";
 * import type { EdgeModel } from "./models.ts";
 * declare const models: Map<string, EdgeModel>;
 * registerGenerate(new Hono(), models, { maxBodyBytes: 1 << 20, maxChatTokens: 256 });
 * ```
 *
 * @module
 */

import type { Context, Hono } from "hono";
import { stream } from "hono/streaming";
import { TandemError } from "../runtime/errors.ts";
import { generate } from "../runtime/generate.ts";
import { encodeReplyLine } from "../runtime/wire_reply.ts";
import { readJson } from "./body.ts";
import { createYielder } from "./flush.ts";
import { type GenerationAccount, StepTimer } from "./metrics.ts";
import { type EdgeModel, isWhole } from "./models.ts";

interface GenerateRequest {
  model: string;
  tokens: number[];
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  seed?: number;
  stop_at_eos?: boolean;
}

function checkRequest(v: unknown, models: Map<string, EdgeModel>): [GenerateRequest, EdgeModel] {
  const o = v as Partial<GenerateRequest>;
  const bad = (why: string) => new TandemError("bad_request", `Cannot generate: ${why}`);
  if (!o || typeof o !== "object") throw bad("the body must be a JSON object");
  if (typeof o.model !== "string") throw bad("`model` must be a string");
  const m = models.get(o.model);
  if (!m) throw new TandemError("not_found", `Cannot generate: no model ${o.model} here`);
  if (!isWhole(m)) {
    throw new TandemError("unsupported", `Cannot generate with ${m.id}: only a shard is held`);
  }
  const { vocabSize, maxSeqLen } = m.config;
  if (!Array.isArray(o.tokens) || o.tokens.length === 0 || o.tokens.length >= maxSeqLen) {
    throw bad(`\`tokens\` must be 1..${maxSeqLen - 1} token ids`);
  }
  if (!o.tokens.every((t) => Number.isInteger(t) && t >= 0 && t < vocabSize)) {
    throw bad(`every token must be an integer id below ${vocabSize}`);
  }
  if (o.max_tokens !== undefined && !(Number.isInteger(o.max_tokens) && o.max_tokens >= 0)) {
    throw bad("`max_tokens` must be a whole number");
  }
  return [o as GenerateRequest, m];
}

/**
 * Adds `POST /v1/generate` (token ids in, streamed token ids out) to an edge app.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { registerGenerate } from "./generate_route.ts";
 * import type { EdgeModel } from "./models.ts";
 * declare const models: Map<string, EdgeModel>;
 * registerGenerate(new Hono(), models, { maxBodyBytes: 1 << 20, maxChatTokens: 64 });
 * ```
 */
export function registerGenerate(
  app: Hono,
  models: Map<string, EdgeModel>,
  limits: { maxBodyBytes: number; maxChatTokens: number },
  account?: GenerationAccount,
): void {
  app.post("/v1/generate", async (c: Context) => {
    const [req, m] = checkRequest(await readJson(c.req.raw, limits.maxBodyBytes), models);
    const maxTokens = Math.min(req.max_tokens ?? 256, limits.maxChatTokens);
    const t0 = performance.now();
    const timer = new StepTimer();
    const tokens = timer.wrap(generate(m.engine, req.tokens, {
      maxTokens,
      temperature: req.temperature ?? 0,
      topP: req.top_p ?? 1,
      seed: req.seed ?? 1,
      stopAtEos: req.stop_at_eos ?? true,
    }));
    const first = tokens.next(); // validation and the prefill before the answer starts
    c.header("content-type", "application/x-ndjson");
    return stream(c, async (out) => {
      const flush = createYielder();
      let pos = req.tokens.length;
      try {
        for (let r = first; !r.done; r = tokens.next()) {
          await out.write(encodeReplyLine({ token: r.value, pos: ++pos }));
          await flush.yield();
          if (out.aborted) return;
        }
      } catch (e) {
        const code = e instanceof TandemError ? e.code : "internal";
        await out.write(encodeReplyLine({ error: { code, message: String(e) } }));
        return;
      } finally {
        flush.close();
        account?.(m, "generate", req.tokens.length, timer.tokens, timer.ms);
      }
      const edgeMs = performance.now() - t0;
      await out.write(encodeReplyLine({ done: true, seq: 0, accepted: 0, length: pos, edgeMs }));
    });
  });
}
