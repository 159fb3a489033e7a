// The edge's routes through app.request(): answers, limits, and every error as a JSON body
// with its status (never a crash or a stack trace).
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { digestModel, hexToBytes } from "../runtime/digest.ts";
import { makeShard } from "../runtime/shard.ts";
import { encodeFrame, type Frame } from "../runtime/wire.ts";
import { createEdgeApp, type EdgeApp } from "../edge/app.ts";
import { specFromShard } from "../edge/models.ts";
import { uuidBytes } from "../edge/split_forward.ts";
import { SessionStore } from "../edge/sessions.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const ID = "stories260K";
const digest = (await digestModel(model)).modelDigest!;
const edge = await createEdgeApp({
  models: [{ id: ID, model }],
  limits: { maxBodyBytes: 64 * 1024, maxTokensPerFrame: 64 },
  log: () => {},
});
const post = (path: string, body: BodyInit, app: EdgeApp = edge) =>
  app.app.request(path, { method: "POST", body });

async function expectError(
  res: Response,
  status: number,
  code: string,
  message?: RegExp,
): Promise<void> {
  assert.equal(res.status, status);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  const body = await res.json();
  assert.equal(body.error.code, code, body.error.message);
  assert.ok(!/at .*\.ts:\d+/.test(body.error.message), "no stack trace");
  if (message) assert.match(body.error.message, message);
}

async function open(split = 2): Promise<string> {
  const res = await post("/v1/sessions", JSON.stringify({ model: ID, split, digest }));
  assert.equal(res.status, 201);
  const info = await res.json();
  assert.deepEqual(info.layers, [split, 5]);
  assert.equal(info.wire, "1.2");
  return info.id;
}

function frame(id: string, extra: Partial<Frame> = {}): Uint8Array<ArrayBuffer> {
  return encodeFrame({
    dtype: "f32",
    split: 2,
    dim: 64,
    pos: 0,
    seq: 0,
    modelId: ID,
    session: uuidBytes(id),
    digest: hexToBytes(digest),
    rows: new Float32Array(64).fill(0.1),
    ...extra,
  });
}

Deno.test("health and model listing", async () => {
  assert.deepEqual(await (await edge.app.request("/healthz")).json(), {
    ok: true,
    sessions: edge.sessions.size,
    kvBytes: edge.sessions.totalBytes,
  });
  const models = await (await edge.app.request("/v1/models")).json();
  assert.equal(models.object, "list");
  assert.equal(models.data[0].id, ID);
  assert.equal(models.data[0].digest, digest);
  assert.deepEqual(models.data[0].layers, [0, 5]);
});

Deno.test("opening sessions: unknown model, bad split, digest mismatch, bad JSON", async () => {
  const body = (o: unknown) => JSON.stringify(o);
  await expectError(
    await post("/v1/sessions", body({ model: "nope", split: 2, digest })),
    404,
    "not_found",
  );
  await expectError(
    await post("/v1/sessions", body({ model: ID, split: 5, digest })),
    400,
    "bad_request",
    /split 5/,
  );
  await expectError(
    await post("/v1/sessions", body({ model: ID, split: 2, digest: "ab".repeat(32) })),
    409,
    "model_mismatch",
    /different models/,
  );
  await expectError(await post("/v1/sessions", "{not json"), 400, "bad_request", /not valid JSON/);
  await expectError(await post("/v1/sessions", body({ model: ID })), 400, "bad_request", /split/);
  await expectError(await post("/v1/sessions", "x".repeat(70 * 1024)), 413, "too_large");
  await expectError(await edge.app.request("/v1/nothing"), 404, "not_found");
});

Deno.test("an edge holding only a shard serves splits at or after its first layer", async () => {
  const shardEdge = await createEdgeApp({
    models: [specFromShard(await makeShard(model, ID, "edge", 3))],
  });
  const req = (split: number) =>
    post("/v1/sessions", JSON.stringify({ model: ID, split, digest }), shardEdge);
  await expectError(await req(2), 400, "bad_request", /holds layers \[3, 5\)/);
  assert.equal((await req(4)).status, 201);
  const chat = await post(
    "/v1/chat/completions",
    JSON.stringify({ model: ID, messages: [{ role: "user", content: "hi" }] }),
    shardEdge,
  );
  await expectError(chat, 501, "unsupported", /only an edge shard/);
  shardEdge.dispose();
});

Deno.test("forward: answers, idempotent retry, sequence conflicts, bad frames", async () => {
  const id = await open();
  const first = await post(`/v1/sessions/${id}/forward`, frame(id));
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("content-type"), "application/x-ndjson");
  const text = await first.text();
  const lines = text.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].pos, 1);
  assert.deepEqual({ ...lines[1], edgeMs: 0 }, {
    done: true,
    seq: 0,
    accepted: 0,
    length: 1,
    edgeMs: 0,
  });
  // The same frame again (a retry after a lost answer) gets the same answer.
  assert.equal(await (await post(`/v1/sessions/${id}/forward`, frame(id))).text(), text);
  await expectError(
    await post(`/v1/sessions/${id}/forward`, frame(id, { seq: 5, pos: 1 })),
    409,
    "conflict",
    /expects 1/,
  );
  await expectError(
    await post(`/v1/sessions/${id}/forward`, frame(id, { seq: 1, pos: 3 })),
    409,
    "conflict",
    /holds 1/,
  );
  await expectError(
    await post(`/v1/sessions/${id}/forward`, frame(id, { seq: 1, pos: 1, split: 3 })),
    400,
    "bad_frame",
    /split at layer 3/,
  );
  await expectError(
    await post(
      `/v1/sessions/${id}/forward`,
      frame(id, { seq: 1, pos: 1, digest: new Uint8Array(32) }),
    ),
    409,
    "model_mismatch",
  );
  const other = await open();
  await expectError(
    await post(`/v1/sessions/${id}/forward`, frame(other, { seq: 1, pos: 1 })),
    400,
    "bad_frame",
    /another session/,
  );
  await expectError(
    await post(`/v1/sessions/${id}/forward`, new Uint8Array(20)),
    400,
    "bad_frame",
    /20 bytes/,
  );
  const lying = frame(id, { seq: 1, pos: 1 });
  new DataView(lying.buffer).setUint32(20, 60, true);
  await expectError(
    await post(`/v1/sessions/${id}/forward`, lying),
    400,
    "bad_frame",
    /header says 60 tokens .* payload holds 1/,
  );
  const big = frame(id, { seq: 1, pos: 1, rows: new Float32Array(64 * 65) });
  await expectError(
    await post(`/v1/sessions/${id}/forward`, big),
    413,
    "too_large",
    /65 tokens, at most 64/,
  );
  // Still serving after all that.
  assert.equal(
    (await post(`/v1/sessions/${id}/forward`, frame(id, { seq: 1, pos: 1 }))).status,
    200,
  );
});

Deno.test("unknown and deleted sessions answer session_not_found", async () => {
  const id = await open();
  assert.equal((await edge.app.request(`/v1/sessions/${id}`, { method: "DELETE" })).status, 204);
  await expectError(
    await edge.app.request(`/v1/sessions/${id}`, { method: "DELETE" }),
    404,
    "session_not_found",
  );
  await expectError(
    await post(`/v1/sessions/${id}/forward`, frame(id)),
    404,
    "session_not_found",
    /replay/,
  );
  await expectError(
    await post(`/v1/sessions/not-a-uuid/forward`, frame(id)),
    404,
    "session_not_found",
  );
});

Deno.test("session store: LRU eviction under the byte budget, TTL expiry", () => {
  let now = 0;
  const store = new SessionStore<{ bytes: number }>({
    maxSessions: 10,
    budgetBytes: 100,
    ttlMs: 50,
  }, () => now);
  const a = store.add({ bytes: 40 });
  const b = store.add({ bytes: 40 });
  store.get(a); // a is now the most recently used
  const c = store.add({ bytes: 40 }); // 120 > 100: evicts b
  assert.ok(store.has(a) && !store.has(b) && store.has(c));
  assert.equal(store.totalBytes, 80);
  assert.equal(store.evictions, 1);
  assert.throws(() => store.add({ bytes: 101 }), /budget is 100/);
  now = 40;
  store.get(c);
  now = 60;
  assert.ok(!store.has(a) && store.has(c));
  assert.equal(store.expirations, 1);
  assert.throws(() => store.get(a), /does not hold it/);
});

Deno.test("the KV budget evicts the least recently used session (edge)", async () => {
  const small = await createEdgeApp({
    models: [{ id: ID, model }],
    limits: { kvBudgetBytes: 150_000 },
  });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const res = await post("/v1/sessions", JSON.stringify({ model: ID, split: 2, digest }), small);
    const { id } = await res.json();
    ids.push(id);
    const ok = await post(
      `/v1/sessions/${id}/forward`,
      frame(id, { rows: new Float32Array(64 * 60).fill(0.1) }),
      small,
    );
    assert.equal(ok.status, 200, await ok.text());
  }
  assert.ok(small.sessions.totalBytes <= 150_000);
  assert.ok(small.sessions.evictions >= 1);
  assert.ok(!small.sessions.has(ids[0]) && small.sessions.has(ids[3]));
  small.dispose();
});
