// The edge's guards: API keys (bearer, constant-time, sessions bound to their key), the
// per-key rate limit (429 + Retry-After), the per-key session quota, and bounded memory
// under a load that opens sessions and never closes them.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { digestModel, hexToBytes } from "../runtime/digest.ts";
import { encodeFrame } from "../runtime/wire.ts";
import { createSession } from "../runtime/session.ts";
import { createEdgeApp, type EdgeApp } from "../edge/app.ts";
import { createKeyring, parseApiKeys, timingSafeEqual } from "../edge/auth.ts";
import { RateLimiter } from "../edge/rate_limit.ts";
import { uuidBytes } from "../edge/split_forward.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const ID = "stories260K";
const digest = (await digestModel(model)).modelDigest!;
const KEY_A = "tandem-test-key-aaaaaaaa";
const KEY_B = "tandem-test-key-bbbbbbbb";

function call(edge: EdgeApp, path: string, init: RequestInit & { key?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.key) headers.set("authorization", `Bearer ${init.key}`);
  return edge.app.request(path, { ...init, headers });
}

async function expectError(res: Response, status: number, code: string): Promise<unknown> {
  const body = await res.json();
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code);
  return body;
}

const openBody = JSON.stringify({ model: ID, split: 2, digest });

async function open(edge: EdgeApp, key?: string): Promise<string> {
  const res = await call(edge, "/v1/sessions", { method: "POST", body: openBody, key });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()).id;
}

function frame(id: string, seq = 0, pos = 0): Uint8Array<ArrayBuffer> {
  return encodeFrame({
    dtype: "f32",
    split: 2,
    dim: 64,
    pos,
    seq,
    modelId: ID,
    session: uuidBytes(id),
    digest: hexToBytes(digest),
    rows: new Float32Array(64).fill(0.1),
  }) as Uint8Array<ArrayBuffer>;
}

Deno.test("API keys: parsing, constant-time comparison, keyring", async () => {
  assert.deepEqual(parseApiKeys(undefined), []);
  assert.deepEqual(parseApiKeys(` ${KEY_A},\n${KEY_B} `), [KEY_A, KEY_B]);
  assert.throws(() => parseApiKeys("short"), /API key #0: keys must be 16/);
  assert.throws(() => parseApiKeys(`${KEY_A},${KEY_A}`), /#1 is a duplicate/);
  assert.ok(timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])));
  assert.ok(!timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])));
  assert.ok(!timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0])));
  const ring = await createKeyring([KEY_A, KEY_B]);
  assert.equal(await ring.identify(`Bearer ${KEY_B}`), "key1");
  assert.equal(await ring.identify(`bearer ${KEY_A}`), "key0");
  for (
    const bad of [
      null,
      "",
      "Basic abc",
      `Bearer ${KEY_A}x`,
      "Bearer ",
      `Bearer ${"x".repeat(5000)}`,
    ]
  ) {
    await assert.rejects(ring.identify(bad), (e: Error) => {
      assert.match(e.message, /Cannot authorize/);
      assert.ok(!e.message.includes(KEY_A), "never echo a key");
      return true;
    });
  }
  assert.equal(await (await createKeyring([])).identify(null), "anonymous");
});

Deno.test("every route but /healthz needs a key; sessions answer only the key that opened them", async () => {
  const edge = await createEdgeApp({ models: [{ id: ID, model }], apiKeys: [KEY_A, KEY_B] });
  assert.equal(edge.open, false);
  assert.equal((await call(edge, "/healthz")).status, 200);
  for (
    const [method, path] of [
      ["GET", "/v1/models"],
      ["POST", "/v1/sessions"],
      ["POST", "/v1/chat/completions"],
      ["DELETE", "/v1/sessions/x"],
      ["GET", "/nowhere"],
    ]
  ) {
    const res = await call(edge, path, { method });
    assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="tandem"');
    await expectError(res, 401, "unauthorized");
    await expectError(
      await call(edge, path, { method, key: "wrong-key-0123456789" }),
      401,
      "unauthorized",
    );
  }
  assert.equal((await call(edge, "/v1/models", { key: KEY_A })).status, 200);
  const id = await open(edge, KEY_A);
  // Key B cannot see, use or delete A's session: the same 404 as a session that does not exist.
  const fwd = (key: string, seq = 0) =>
    call(edge, `/v1/sessions/${id}/forward`, { method: "POST", body: frame(id, seq, seq), key });
  const stranger = await expectError(await fwd(KEY_B), 404, "session_not_found");
  await expectError(
    await call(edge, `/v1/sessions/${id}`, { method: "DELETE", key: KEY_B }),
    404,
    "session_not_found",
  );
  const unknown = crypto.randomUUID();
  const missing = await expectError(
    await call(edge, `/v1/sessions/${unknown}/forward`, {
      method: "POST",
      body: frame(unknown),
      key: KEY_B,
    }),
    404,
    "session_not_found",
  );
  const scrub = (b: unknown) =>
    JSON.stringify(b).replaceAll(id.slice(0, 64), "ID").replaceAll(unknown, "ID");
  assert.equal(scrub(stranger), scrub(missing));
  assert.equal((await fwd(KEY_A)).status, 200);
  assert.equal(
    (await call(edge, `/v1/sessions/${id}`, { method: "DELETE", key: KEY_A })).status,
    204,
  );
  edge.dispose();
});

Deno.test("a device session sends its apiKey and generates", async () => {
  const edge = await createEdgeApp({ models: [{ id: ID, model }], apiKeys: [KEY_A] });
  const fetchApp =
    ((input: RequestInfo | URL, init?: RequestInit) =>
      edge.fetch(new Request(input, init))) as typeof fetch;
  const base = { model, modelId: ID, split: 2, edge: "http://edge.test", fetch: fetchApp };
  await assert.rejects(createSession(base), /needs an API key/);
  const session = await createSession({ ...base, apiKey: KEY_A });
  const got: number[] = [];
  for await (const t of session.generate([1, 403], { maxTokens: 5, stopAtEos: false })) got.push(t);
  assert.equal(got.length, 5);
  await session.close();
  assert.equal(edge.sessions.size, 0);
  edge.dispose();
});

Deno.test("rate limit: a token bucket per key, 429 with Retry-After, refilled with time", async () => {
  let now = 0;
  const edge = await createEdgeApp({
    models: [{ id: ID, model }],
    apiKeys: [KEY_A, KEY_B],
    limits: { ratePerSecond: 2, rateBurst: 3 },
    now: () => now,
  });
  for (let i = 0; i < 3; i++) {
    assert.equal((await call(edge, "/v1/models", { key: KEY_A })).status, 200);
  }
  const res = await call(edge, "/v1/models", { key: KEY_A });
  assert.equal(res.headers.get("retry-after"), "1");
  await expectError(res, 429, "rate_limited");
  assert.equal(
    (await call(edge, "/v1/models", { key: KEY_B })).status,
    200,
    "other keys unaffected",
  );
  assert.equal((await call(edge, "/healthz")).status, 200, "health is never limited");
  now += 500; // one token back
  assert.equal((await call(edge, "/v1/models", { key: KEY_A })).status, 200);
  await expectError(await call(edge, "/v1/models", { key: KEY_A }), 429, "rate_limited");
  assert.equal(edge.rateLimiter.refused, 2);
  edge.dispose();
  const limiter = new RateLimiter({ perSecond: 0, burst: 1 });
  for (let i = 0; i < 10; i++) limiter.take("x"); // 0 = unlimited
  assert.throws(() => new RateLimiter({ perSecond: 1, burst: 0 }), /burst ≥ 1/);
});

Deno.test("per-key session quota: 429 past it, other keys unaffected, a close frees a slot", async () => {
  const edge = await createEdgeApp({
    models: [{ id: ID, model }],
    apiKeys: [KEY_A, KEY_B],
    limits: { maxSessionsPerKey: 3 },
  });
  const ids = [await open(edge, KEY_A), await open(edge, KEY_A), await open(edge, KEY_A)];
  await expectError(
    await call(edge, "/v1/sessions", { method: "POST", body: openBody, key: KEY_A }),
    429,
    "rate_limited",
  );
  await open(edge, KEY_B);
  assert.equal(
    (await call(edge, `/v1/sessions/${ids[0]}`, { method: "DELETE", key: KEY_A })).status,
    204,
  );
  await open(edge, KEY_A);
  assert.equal(edge.sessions.countOwned("key0"), 3);
  assert.equal(edge.sessions.countOwned("key1"), 1);
  edge.dispose();
});

Deno.test("memory stays bounded: sessions opened and never closed are evicted under the KV budget", async () => {
  const budget = 400_000;
  const edge = await createEdgeApp({
    models: [{ id: ID, model }],
    limits: {
      kvBudgetBytes: budget,
      maxSessions: 1000,
      maxSessionsPerKey: 1000,
      rateBurst: 10_000,
    },
  });
  const ids: string[] = [];
  let peak = 0;
  for (let i = 0; i < 60; i++) {
    const id = await open(edge);
    ids.push(id);
    const res = await call(edge, `/v1/sessions/${id}/forward`, { method: "POST", body: frame(id) });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    peak = Math.max(peak, edge.sessions.totalBytes);
  }
  assert.ok(peak <= budget, `peak ${peak} > budget ${budget}`);
  assert.ok(edge.sessions.evictions > 0);
  assert.ok(!edge.sessions.has(ids[0]), "the oldest session was evicted");
  assert.ok(edge.sessions.has(ids.at(-1)!), "the newest is held");
  // The count cap evicts too: a tiny maxSessions holds exactly that many.
  const capped = await createEdgeApp({ models: [{ id: ID, model }], limits: { maxSessions: 5 } });
  for (let i = 0; i < 20; i++) await open(capped);
  assert.equal(capped.sessions.size, 5);
  assert.equal(capped.sessions.evictions, 15);
  capped.dispose();
  edge.dispose();
});
