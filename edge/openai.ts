/**
 * The all-edge path: an OpenAI-compatible `POST /v1/chat/completions`, so the stock `openai`
 * client (and anything speaking its protocol) can use a tandem edge directly.
 *
 * A base model such as stories260K has no chat template: the prompt is BOS followed by the
 * messages' text joined with newlines. Supported fields: `model`, `messages`, `max_tokens` /
 * `max_completion_tokens`, `temperature`, `top_p`, `seed`, `stream`,
 * `stream_options.include_usage`. With `stream: true` the answer is server-sent events of
 * `chat.completion.chunk` objects ending with `data: [DONE]`, each token's chunk sent as soon as
 * the token is computed (`flush.ts`).
 *
 * @example
 * ```ts
 * // import OpenAI from "openai";
 * // const client = new OpenAI({ baseURL: "http://127.0.0.1:8787/v1", apiKey: "unused" });
 * // const r = await client.chat.completions.create({ model: "stories260K",
 * //   messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 20 });
 * ```
 *
 * @module
 */

import type { Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { TandemError } from "../runtime/errors.ts";
import { generate } from "../runtime/generate.ts";
import { StreamDecoder, type Tokenizer } from "../runtime/tokenizer/tokenizer.ts";
import { readJson } from "./body.ts";
import { createYielder } from "./flush.ts";
import { type GenerationAccount, StepTimer } from "./metrics.ts";
import { type EdgeModel, isWhole } from "./models.ts";

interface ChatRequest {
  model: string;
  messages: { role: string; content: string | { type: string; text?: string }[] }[];
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  seed?: number;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
}

function checkChat(v: unknown): ChatRequest {
  const o = v as Partial<ChatRequest>;
  const bad = (why: string) => new TandemError("bad_request", `Cannot complete chat: ${why}`);
  if (!o || typeof o !== "object") throw bad("the body must be a JSON object");
  if (typeof o.model !== "string") throw bad("`model` must be a string");
  if (!Array.isArray(o.messages) || o.messages.length === 0) {
    throw bad("`messages` must be a non-empty array");
  }
  for (const m of o.messages) {
    const ok = m && typeof m === "object" &&
      (typeof m.content === "string" || Array.isArray(m.content));
    if (!ok) throw bad("each message needs a `content` string or array of parts");
    const parts = Array.isArray(m.content) ? m.content : [];
    for (const p of parts as unknown[]) {
      const part = p as { type?: unknown; text?: unknown } | null;
      if (!part || typeof part !== "object" || typeof part.type !== "string") {
        throw bad("each content part must be an object with a `type`");
      }
      if (part.type === "text" && typeof part.text !== "string") {
        throw bad("a `text` content part needs a `text` string");
      }
    }
  }
  return o as ChatRequest;
}

function promptOf(req: ChatRequest, tok: Tokenizer): number[] {
  const text = req.messages.map((m) =>
    typeof m.content === "string"
      ? m.content
      : m.content.map((p) => (p.type === "text" ? p.text ?? "" : "")).join("")
  ).join("\n");
  return text ? tok.encode(text, { bos: true }) : [tok.bosId];
}

function chatModel(
  models: Map<string, EdgeModel>,
  id: string,
): EdgeModel & { tokenizer: Tokenizer } {
  const m = models.get(id);
  if (!m) {
    throw new TandemError(
      "not_found",
      `Cannot complete chat: this edge does not serve model ${id}`,
    );
  }
  if (!isWhole(m) || !m.tokenizer) {
    throw new TandemError(
      "unsupported",
      `Cannot complete chat with ${id}: this edge holds ${
        isWhole(m) ? "no tokenizer" : "only an edge shard"
      } for it`,
    );
  }
  return m as EdgeModel & { tokenizer: Tokenizer };
}

/**
 * Adds `POST /v1/chat/completions` to an edge app.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { registerChat } from "./openai.ts";
 * import type { EdgeModel } from "./models.ts";
 * declare const models: Map<string, EdgeModel>;
 * registerChat(new Hono(), models, { maxBodyBytes: 1 << 20, maxChatTokens: 256 });
 * ```
 */
export function registerChat(
  app: Hono,
  models: Map<string, EdgeModel>,
  limits: { maxBodyBytes: number; maxChatTokens: number },
  account?: GenerationAccount,
): void {
  app.post("/v1/chat/completions", async (c: Context) => {
    const req = checkChat(await readJson(c.req.raw, limits.maxBodyBytes));
    const m = chatModel(models, req.model);
    const prompt = promptOf(req, m.tokenizer);
    const maxTokens = Math.min(
      req.max_completion_tokens ?? req.max_tokens ?? 256,
      limits.maxChatTokens,
    );
    const timer = new StepTimer();
    const tokens = timer.wrap(generate(m.engine, prompt, {
      maxTokens,
      temperature: req.temperature ?? 1,
      topP: req.top_p ?? 1,
      seed: req.seed ?? 1,
    }));
    const accounted = () => account?.(m, "chat", prompt.length, timer.tokens, timer.ms);
    const id = `chatcmpl-${crypto.randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const base = { id, created, model: m.id };
    const decoder = new StreamDecoder(m.tokenizer, prompt);
    const usage = (n: number) => ({
      prompt_tokens: prompt.length,
      completion_tokens: n,
      total_tokens: prompt.length + n,
    });
    const finish = (n: number) => (n >= maxTokens ? "length" : "stop");
    if (!req.stream) {
      let text = "";
      let n = 0;
      for (const t of tokens) {
        text += decoder.push(t);
        n++;
      }
      accounted();
      text += decoder.flush();
      return c.json({
        ...base,
        object: "chat.completion",
        choices: [{
          index: 0,
          message: { role: "assistant", content: text },
          logprobs: null,
          finish_reason: finish(n),
        }],
        usage: usage(n),
      });
    }
    const first = tokens.next(); // runs validation and the prefill before the stream starts
    const rest = function* () {
      if (!first.done) yield first.value;
      yield* tokens;
    };
    return streamSSE(c, async (stream) => {
      // Each token goes out as soon as it is computed (a macrotask hop lets the host flush).
      const flush = createYielder();
      const chunk = (delta: Record<string, string>, finishReason: string | null) =>
        stream.writeSSE({
          data: JSON.stringify({
            ...base,
            object: "chat.completion.chunk",
            choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
          }),
        });
      await chunk({ role: "assistant", content: "" }, null);
      let n = 0;
      try {
        for (const t of rest()) {
          n++;
          const piece = decoder.push(t);
          if (piece) {
            await chunk({ content: piece }, null);
            await flush.yield();
          }
          if (stream.aborted) return; // the client left: stop computing
        }
      } finally {
        flush.close();
        accounted();
      }
      const tail = decoder.flush();
      if (tail) await chunk({ content: tail }, null);
      await chunk({}, finish(n));
      if (req.stream_options?.include_usage) {
        await stream.writeSSE({
          data: JSON.stringify({
            ...base,
            object: "chat.completion.chunk",
            choices: [],
            usage: usage(n),
          }),
        });
      }
      await stream.writeSSE({ data: "[DONE]" });
    });
  });
}
