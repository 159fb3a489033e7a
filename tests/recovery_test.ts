// Recovery: the edge loses the session (restart, eviction, TTL) mid-generation; the device
// replays its boundary activations into a new session and the token stream is unchanged.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { createSession } from "../runtime/session.ts";
import { createEdgeApp } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const ID = "stories260K";
const PROMPT = [1, 403, 407, 261, 1201 % 512];
const want = [...generate(new RefEngine(model), PROMPT, { maxTokens: 150, stopAtEos: false })];

Deno.test("edge restarted mid-generation: no lost or repeated token (real server, same port)", async () => {
  for (const wire of ["f32", "int8"] as const) {
    const reference = wire === "f32" ? want : undefined;
    let edge = await createEdgeApp({ models: [{ id: ID, model }] });
    let server = serveEdge(edge.fetch);
    const port = server.port;
    const session = await createSession({ model, modelId: ID, split: 2, edge: server.url, wire });
    const got: number[] = [];
    const restartsAt = new Set([10, 60, 61]);
    for await (const t of session.generate(PROMPT, { maxTokens: 150, stopAtEos: false })) {
      got.push(t);
      if (restartsAt.has(got.length)) {
        await server.close(); // the process "dies": every session is gone with it
        edge.dispose();
        edge = await createEdgeApp({ models: [{ id: ID, model }] });
        server = serveEdge(edge.fetch, { port });
      }
    }
    await session.close();
    await server.close();
    edge.dispose();
    assert.equal(got.length, 150);
    assert.equal(session.stats.recoveries, 3);
    // Replays re-sent every position held before each lost step.
    assert.equal(
      session.stats.replayedRows,
      (PROMPT.length + 9) + (PROMPT.length + 59) + (PROMPT.length + 60),
    );
    if (reference) assert.deepEqual(got, reference);
    else {
      // int8: the replayed session must continue exactly as an unbroken int8 session does.
      const e2 = await createEdgeApp({ models: [{ id: ID, model }] });
      const s2 = serveEdge(e2.fetch);
      const plain = await createSession({ model, modelId: ID, split: 2, edge: s2.url, wire });
      const unbroken: number[] = [];
      for await (const t of plain.generate(PROMPT, { maxTokens: 150, stopAtEos: false })) {
        unbroken.push(t);
      }
      await plain.close();
      await s2.close();
      assert.deepEqual(got, unbroken);
    }
  }
});

Deno.test("evicted and expired sessions are rebuilt the same way (in-process edge)", async () => {
  let clock = 0;
  const edge = await createEdgeApp({
    models: [{ id: ID, model }],
    limits: { ttlMs: 1000, maxSessions: 2 },
    now: () => clock,
  });
  const fetchApp = (input: RequestInfo | URL, init?: RequestInit) =>
    edge.fetch(new Request(input, init));
  const session = await createSession({
    model,
    modelId: ID,
    split: 3,
    edge: "http://edge.test",
    fetch: fetchApp as typeof fetch,
  });
  const got: number[] = [];
  for await (const t of session.generate(PROMPT, { maxTokens: 150, stopAtEos: false })) {
    got.push(t);
    if (got.length === 30) clock += 5000; // TTL passes
    if (got.length === 80) {
      // Two other devices open sessions: with maxSessions 2 ours is the least recently used.
      for (let i = 0; i < 2; i++) {
        await createSession({
          model,
          modelId: ID,
          split: 1,
          edge: "http://edge.test",
          fetch: fetchApp as typeof fetch,
        });
      }
    }
  }
  assert.deepEqual(got, want);
  assert.equal(session.stats.recoveries, 2);
  assert.equal(edge.sessions.expirations, 1);
  assert.ok(edge.sessions.evictions >= 1);
  edge.dispose();
});
