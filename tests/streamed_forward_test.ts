// The edge runs a streamed prompt frame batch by batch as its rows arrive: the same answer (and
// the same [K, L) outputs) as the whole frame run at once, bit for bit with f32; frames that
// may not run early (wrong sequence number, another position) are read whole and run as before.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { hexToBytes } from "../runtime/digest.ts";
import { streamedFrame } from "../runtime/pipelined_frame.ts";
import { decodeFrame } from "../runtime/wire.ts";
import { prepareModels } from "../edge/models.ts";
import { newEdgeSession, runFrame } from "../edge/split_forward.ts";
import { readFrameRunning } from "../edge/streamed_forward.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const [m] = (await prepareModels([{ id: "m", model }])).values();
const full = new RefEngine(model);
const K = 3, n = 37, dim = model.config.dim;
const rows = full.forward(
  full.createCache(),
  full.embed(Array.from({ length: n }, (_, i) => 1 + (i * 7) % 400)),
  0,
  0,
  K,
);
const session = new Uint8Array(16).fill(7);
const frame = (seq: number) => ({
  dtype: "f32" as const,
  split: K,
  dim,
  pos: 0,
  seq,
  modelId: "m",
  session,
  digest: hexToBytes(m.digest),
});
const request = (seq: number) =>
  new Request("http://x/forward", {
    method: "POST",
    body: streamedFrame(frame(seq), n, 8, (a, b) => rows.subarray(a * dim, b * dim)).body,
    duplex: "half",
  } as RequestInit);

Deno.test("streamed frame: run as it arrives, the same answer as the whole frame", async () => {
  const whole = newEdgeSession(m, K, {});
  const early = newEdgeSession(m, K, {});
  const a = await readFrameRunning(request(0), 1 << 24, whole, session, {});
  assert.ok(a.early, "a plain appending f32 frame runs early");
  const b = await readFrameRunning(request(0), 1 << 24, undefined, session, {});
  assert.equal(b.early, undefined);
  assert.deepEqual(a.bytes, b.bytes);
  const hidden = a.early!.hidden;
  const ref = full.forward(full.createCache(), rows, 0, K, model.config.nLayers);
  assert.deepEqual(hidden, ref);
  const f = decodeFrame(b.bytes);
  const reply = (body: string) => body.replace(/"edgeMs":[0-9.e-]+/, "");
  assert.equal(reply(runFrame(early, f, session)), reply(runFrame(whole, f, session, a.early)));
  // Not the next sequence number: read whole, nothing run early.
  const c = await readFrameRunning(request(5), 1 << 24, newEdgeSession(m, K, {}), session, {});
  assert.equal(c.early, undefined);
});

Deno.test("a streamed frame whose header length lies is read whole, then refused as bad_frame", async () => {
  // Found by the route fuzzer: headerBytes = 0 made the early-run planner read past its buffer.
  const whole = await readFrameRunning(request(0), 1 << 24, undefined, session, {});
  const lying = whole.bytes.slice();
  new DataView(lying.buffer).setUint16(6, 0, true);
  const body = new Request("http://x/forward", { method: "POST", body: lying });
  const r = await readFrameRunning(body, 1 << 24, newEdgeSession(m, K, {}), session, {});
  assert.equal(r.early, undefined);
  assert.throws(
    () => decodeFrame(r.bytes),
    (e: Error & { code?: string }) => e.code === "bad_frame",
  );
});
