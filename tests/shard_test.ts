// Weights digests, device/edge shards, the shard file and the pack manifest.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { digestModel, modelDigestFrom, sha256Hex } from "../runtime/digest.ts";
import { makeShard, shardParts, verifyShard } from "../runtime/shard.ts";
import { isShardFile, parseShard, serializeShard } from "../runtime/shard_file.ts";
import { packModel } from "../runtime/pack.ts";
import { RefEngine } from "../runtime/forward.ts";
import { TandemError } from "../runtime/errors.ts";
import type { Model } from "../runtime/model.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const bytes = await Deno.readFile(new URL("stories260K.bin", DIR));
const model = parseLlama2c(bytes, "stories260K.bin");
const L = model.config.nLayers;

function withTweak(m: Model, name: string): Model {
  const tensors = new Map(m.tensors);
  const t = tensors.get(name)!;
  const data = t.data.slice();
  data[0] += 1e-3;
  tensors.set(name, { shape: t.shape, data });
  return { ...m, tensors };
}

Deno.test("model digest is stable and changes with any weight", async () => {
  const a = await digestModel(model);
  const b = await digestModel(parseLlama2c(bytes));
  assert.match(a.modelDigest!, /^[0-9a-f]{64}$/);
  assert.equal(a.modelDigest, b.modelDigest);
  const c = await digestModel(withTweak(model, "layers.4.w2"));
  assert.notEqual(c.modelDigest, a.modelDigest);
  assert.equal(c.tensors.get("embed"), a.tensors.get("embed"));
  const d = await digestModel({ ...model, config: { ...model.config, normEps: 1e-6 } });
  assert.notEqual(d.modelDigest, a.modelDigest);
});

Deno.test("device and edge shards hold their parts and prove the same model", async () => {
  for (let k = 1; k < L; k++) {
    const device = await makeShard(model, "stories260K", "device", k);
    const edge = await makeShard(model, "stories260K", "edge", k);
    assert.deepEqual(device.model.parts, { layers: [0, k], embed: true, head: true });
    assert.deepEqual(edge.model.parts, { layers: [k, L], embed: false, head: true });
    assert.ok(
      device.model.tensors.has(`layers.${k - 1}.wq`) && !device.model.tensors.has(`layers.${k}.wq`),
    );
    assert.ok(edge.model.tensors.has("embed"), "tied classifier: the edge needs the embedding");
    assert.equal(device.modelDigest, edge.modelDigest);
    assert.notEqual(device.shardDigest, edge.shardDigest);
    assert.equal(await modelDigestFrom(model.config, edge.tensorDigests), edge.modelDigest);
  }
  assert.throws(() => shardParts("edge", L, L), /split must be 1\.\.4/);
});

Deno.test("shard files round-trip and refuse tampering", async () => {
  const edge = await makeShard(model, "stories260K", "edge", 2);
  const file = serializeShard(edge);
  assert.ok(isShardFile(file));
  assert.ok(!isShardFile(bytes));
  const back = parseShard(file, "edge.safetensors");
  await verifyShard(back, "edge.safetensors");
  assert.equal(back.modelId, "stories260K");
  assert.deepEqual(back.model.parts, edge.model.parts);
  assert.deepEqual(
    back.model.tensors.get("layers.3.w1")!.data,
    model.tensors.get("layers.3.w1")!.data,
  );
  const bad = file.slice();
  bad[bad.length - 1] ^= 0x40;
  await assert.rejects(verifyShard(parseShard(bad), "edge.safetensors"), (e: unknown) => {
    assert.ok(e instanceof TandemError && e.code === "bad_model");
    assert.match(e.message, /does not match its digest/);
    return true;
  });
  assert.throws(() => parseShard(file.subarray(0, 100)), /Cannot load shard/);
});

Deno.test("pack writes both shards and a manifest whose digests check out", async () => {
  const { files, manifest } = await packModel(model, { modelId: "stories260K", split: 3 });
  assert.deepEqual([...files.keys()], ["device.safetensors", "edge.safetensors", "manifest.json"]);
  assert.equal(manifest.modelDigest, (await digestModel(model)).modelDigest);
  for (const role of ["device", "edge"] as const) {
    const entry = manifest.shards[role];
    const file = files.get(entry.file)!;
    assert.equal(entry.bytes, file.byteLength);
    assert.equal(entry.sha256, await sha256Hex(file));
    const shard = parseShard(file);
    await verifyShard(shard);
    assert.equal(shard.shardDigest, entry.shardDigest);
  }
  const json = JSON.parse(new TextDecoder().decode(files.get("manifest.json")));
  assert.equal(json.split, 3);
  assert.ok(manifest.shards.device.bytes < bytes.byteLength);
});

Deno.test("device shard [0,K) then edge shard [K,L) equals the whole model", async () => {
  const k = 2;
  const device = new RefEngine(
    parseShard(serializeShard(await makeShard(model, "m", "device", k))).model,
  );
  const edge = new RefEngine(
    parseShard(serializeShard(await makeShard(model, "m", "edge", k))).model,
  );
  const full = new RefEngine(model);
  const tokens = [1, 403, 407, 261];
  const want = full.head(full.forward(full.createCache(), full.embed(tokens), 0, 0, L));
  const mid = device.forward(device.createCache(), device.embed(tokens), 0, 0, k);
  const got = edge.head(edge.forward(edge.createCache(), mid, 0, k, L));
  assert.deepEqual(got, want);
});
