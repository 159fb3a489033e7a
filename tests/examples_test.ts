// The Deno examples as a user runs them (subprocesses, loopback only): the script streams the
// golden story through an in-process edge; the Deno Deploy entry fetches its edge shard from a
// URL, serves, and a device holding only the device shard generates the same story through it.
import assert from "node:assert/strict";
import { createSession } from "../runtime/session.ts";
import { packModel } from "../runtime/pack.ts";
import { parseShard } from "../runtime/shard_file.ts";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { StreamDecoder } from "../runtime/tokenizer/tokenizer.ts";
import { serveEdge } from "../edge/hosts/deno.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const GOLDEN = ", there was a little girl named Lily. She loved to play outside in the park.";

Deno.test("examples/deno/main.ts streams the golden story", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/deno/main.ts", "--max-tokens", "40"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.ok(text.startsWith("Once upon a time" + GOLDEN), text);
  assert.match(text, /40 tokens; device ran layers \[0, 2\)/);
});

Deno.test("examples/deno-deploy/main.ts serves an edge shard fetched from a URL", async () => {
  const whole = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
  const tok = parseLlama2cTokenizer(
    await Deno.readFile(new URL("tok512.bin", DIR)),
    whole.config.vocabSize,
  );
  const { files, manifest } = await packModel(whole, { modelId: "stories260K", split: 2 });
  const weights = serveEdge((req) => {
    const body = files.get(new URL(req.url).pathname.slice(1));
    return body ? new Response(body.slice()) : new Response("missing", { status: 404 });
  });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/deno-deploy/main.ts"],
    cwd: ROOT,
    env: { NO_COLOR: "1", MODEL_URL: `${weights.url}/edge.safetensors`, PORT: "0" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = child.stderr.pipeTo(new WritableStream()); // drained, never blocks the child
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let first = "";
    while (!first.includes("\n")) {
      const r = await reader.read();
      if (r.done) break;
      first += r.value;
    }
    reader.releaseLock();
    const url = /serving stories260K on (http:\/\/\S+)/.exec(first)?.[1];
    assert.ok(url, `no URL in: ${first}`);

    const device = parseShard(files.get("device.safetensors")!);
    const session = await createSession({
      model: device.model,
      modelId: "stories260K",
      modelDigest: manifest.modelDigest,
      split: 2,
      edge: url,
    });
    const prompt = tok.encode("Once upon a time");
    const stream = new StreamDecoder(tok, prompt);
    let text = "";
    for await (const id of session.generate(prompt, { maxTokens: 30 })) text += stream.push(id);
    await session.close();
    assert.ok(text.startsWith(GOLDEN), text);
  } finally {
    child.kill();
    await child.status;
    await child.stdout.cancel().catch(() => {});
    await stderr.catch(() => {});
    await weights.close();
  }
});
