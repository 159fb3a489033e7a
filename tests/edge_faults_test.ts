// Faults between device and edge: the edge process killed and restarted mid-generation,
// requests and answers lost in flight (retried with the same sequence number, run once), and
// a slow edge (per-request timeout, then a typed `network` error). Every token stream is
// compared with the all-local run.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { TandemError } from "../runtime/errors.ts";
import { createSession } from "../runtime/session.ts";
import { withRetries } from "../runtime/retry.ts";
import { createEdgeApp } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";
import { startFaultProxy } from "./_fault_proxy.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const MODEL_PATH = new URL("stories260K.bin", DIR).pathname;
const model = parseLlama2c(await Deno.readFile(MODEL_PATH));
const ID = "stories260K";
const PROMPT = [1, 403, 407, 261];
const N = 60;
const KEY = "fault-test-key-0123456789";
const want = [...generate(new RefEngine(model), PROMPT, { maxTokens: N, stopAtEos: false })];

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Starts `edge/hosts/deno.ts` in its own process; resolves once it serves. */
async function startEdgeProcess(port: number): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../edge/hosts/deno.ts", import.meta.url).pathname,
      "--model",
      MODEL_PATH,
      "--id",
      ID,
      "--port",
      String(port),
    ],
    stdout: "piped",
    stderr: "null",
    env: { TANDEM_API_KEYS: KEY },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("serving")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`the edge process exited before serving: ${out}`);
    out += value;
  }
  await reader.cancel();
  return child;
}

async function collect(
  stream: AsyncIterable<number>,
  each?: (n: number) => void | Promise<void>,
): Promise<number[]> {
  const got: number[] = [];
  for await (const t of stream) {
    got.push(t);
    await each?.(got.length);
  }
  return got;
}

Deno.test("edge process killed (SIGKILL) and restarted mid-generation: the stream is the all-local one", async () => {
  const port = freePort();
  let edge = await startEdgeProcess(port);
  const session = await createSession({
    model,
    modelId: ID,
    split: 2,
    edge: `http://127.0.0.1:${port}`,
    apiKey: KEY,
    retries: 12,
    retryDelayMs: 25,
  });
  let restarting: Promise<Deno.ChildProcess> | undefined;
  const got = await collect(
    session.generate(PROMPT, { maxTokens: N, stopAtEos: false }),
    async (n) => {
      if (n !== 20) return;
      edge.kill("SIGKILL");
      await edge.status;
      restarting = startEdgeProcess(port); // not awaited: the device meets a dead port first
    },
  );
  edge = await restarting!;
  assert.deepEqual(got, want);
  assert.equal(session.stats.recoveries, 1);
  assert.equal(session.stats.replayedRows, PROMPT.length + 19);
  await session.close();
  edge.kill("SIGKILL");
  await edge.status;
});

Deno.test("requests and answers lost in flight: retried with the same sequence number and run once", async () => {
  let rows = 0; // rows the edge ran through its layers
  const edge = await createEdgeApp({
    models: [{ id: ID, model }],
    engine: (m) => {
      const e = new RefEngine(m);
      const forward = e.forward.bind(e);
      e.forward = (cache, x, pos, from, to) => {
        rows += x.length / m.config.dim;
        return forward(cache, x, pos, from, to);
      };
      return e;
    },
  });
  const server = serveEdge(edge.fetch);
  let forwards = 0;
  const proxy = startFaultProxy(server.url, (req) => {
    if (!new URL(req.url).pathname.endsWith("/forward")) return "pass";
    const k = forwards++;
    return k % 6 === 2
      ? "drop-answer"
      : k % 7 === 3
      ? "drop-request"
      : k % 5 === 4
      ? "bad-gateway"
      : "pass";
  });
  const session = await createSession({
    model,
    modelId: ID,
    split: 3,
    edge: proxy.url,
    retries: 4,
    retryDelayMs: 1,
    timeoutMs: 100,
  });
  const got = await collect(session.generate(PROMPT, { maxTokens: N, stopAtEos: false }));
  assert.deepEqual(got, want);
  const faults = proxy.log.filter((l) => l.fault !== '"pass"').length;
  assert.ok(faults >= 20, `only ${faults} faults injected`);
  // Every position ran through the edge's layers exactly once: no retry wrote the KV cache twice.
  assert.equal(rows, PROMPT.length + N - 1);
  assert.equal(session.stats.recoveries, 0);
  assert.equal(edge.sessions.get(session.id).length, PROMPT.length + N - 1);
  await session.close();
  await proxy.close();
  await server.close();
  edge.dispose();
});

Deno.test("a slow edge: each request times out, retries run out, the device gets a typed network error", async () => {
  const edge = await createEdgeApp({ models: [{ id: ID, model }] });
  const server = serveEdge(edge.fetch);
  let forwards = 0;
  const proxy = startFaultProxy(server.url, (req) => {
    if (!new URL(req.url).pathname.endsWith("/forward")) return "pass";
    return forwards++ >= 10 ? { delayMs: 2000 } : "pass";
  });
  const session = await createSession({
    model,
    modelId: ID,
    split: 2,
    edge: proxy.url,
    timeoutMs: 150,
    retries: 1,
    retryDelayMs: 5,
  });
  const got: number[] = [];
  await assert.rejects(
    async () => {
      for await (const t of session.generate(PROMPT, { maxTokens: N, stopAtEos: false })) {
        got.push(t);
      }
    },
    (e: unknown) => e instanceof TandemError && e.code === "network" && /150 ms/.test(e.message),
  );
  assert.deepEqual(got, want.slice(0, 10), "the tokens before the slowdown are the right ones");
  await proxy.close();
  await server.close();
  edge.dispose();
});

Deno.test("withRetries: retries network errors and 429s (waiting Retry-After), not other errors", async () => {
  let calls = 0;
  const value = await withRetries(async (i) => {
    calls++;
    await Promise.resolve();
    if (i === 0) throw new TandemError("network", "reset");
    if (i === 1) throw new TandemError("rate_limited", "slow down", { retryAfterSeconds: 0.01 });
    return "ok";
  }, { retries: 2, baseDelayMs: 1 });
  assert.equal(value, "ok");
  assert.equal(calls, 3);
  await assert.rejects(
    withRetries(() => Promise.reject(new TandemError("bad_frame", "no")), {
      retries: 5,
      baseDelayMs: 1,
    }),
    /no/,
  );
  await assert.rejects(
    withRetries(() => Promise.reject(new TandemError("network", "down")), {
      retries: 2,
      baseDelayMs: 1,
    }),
    /down/,
  );
});
