// The all-edge path: the stock `openai` npm client against the edge on loopback.
import assert from "node:assert/strict";
import OpenAI from "openai";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { createEdgeApp } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const tokenizer = parseLlama2cTokenizer(await Deno.readFile(new URL("tok512.bin", DIR)), 512);

async function withClient(fn: (client: OpenAI) => Promise<void>): Promise<void> {
  const edge = await createEdgeApp({ models: [{ id: "stories260K", model, tokenizer }] });
  const server = serveEdge(edge.fetch);
  try {
    await fn(new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 }));
  } finally {
    await server.close();
    edge.dispose();
  }
}

Deno.test("openai client: models list and a greedy completion", async () => {
  await withClient(async (client) => {
    const models = await client.models.list();
    assert.equal(models.data[0].id, "stories260K");
    const r = await client.chat.completions.create({
      model: "stories260K",
      messages: [{ role: "user", content: "Once upon a time" }],
      max_tokens: 20,
      temperature: 0,
    });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0].message.role, "assistant");
    assert.match(r.choices[0].message.content!, /^, there was a little girl named Lily/);
    assert.equal(r.choices[0].finish_reason, "length");
    assert.equal(r.usage!.completion_tokens, 20);
  });
});

Deno.test("openai client: streaming (SSE) gives the same text as the plain answer", async () => {
  await withClient(async (client) => {
    const req = {
      model: "stories260K",
      messages: [{ role: "user" as const, content: "Tom and Sue" }],
      max_tokens: 40,
      temperature: 0.8,
      seed: 7,
    };
    const plain = await client.chat.completions.create(req);
    const stream = await client.chat.completions.create({
      ...req,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let chunks = 0;
    let finish: string | null = null;
    let usage = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage?.completion_tokens ?? usage;
    }
    assert.ok(chunks > 10);
    assert.equal(text, plain.choices[0].message.content);
    assert.equal(finish, "length");
    assert.equal(usage, 40);
  });
});

Deno.test("openai client: errors arrive as API errors with the edge's code", async () => {
  await withClient(async (client) => {
    await assert.rejects(
      client.chat.completions.create({
        model: "nope",
        messages: [{ role: "user", content: "hi" }],
      }),
      (e: unknown) => {
        assert.ok(e instanceof OpenAI.APIError);
        assert.equal(e.status, 404);
        assert.match(e.message, /does not serve model nope/);
        return true;
      },
    );
    await assert.rejects(
      client.chat.completions.create({
        model: "stories260K",
        messages: [{ role: "user", content: "hi" }],
        temperature: -1,
      }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 400,
    );
  });
});
