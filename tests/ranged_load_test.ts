// Partial loads read only the tensors they need: byte ranges from local files, HTTP servers
// (with and without range support) and the hub cache; the result equals a full load's tensors;
// truncated files still fail with typed errors.
import assert from "node:assert/strict";
import { DirSource, DiskCache } from "../hosts/fs.ts";
import { modelToHf } from "../runtime/formats/hf.ts";
import { HubSource } from "../runtime/hub.ts";
import { loadHfFolder } from "../runtime/load.ts";
import type { Model } from "../runtime/model.ts";
import { RANGE_GAP, readSafetensors } from "../runtime/safetensors_source.ts";
import { HttpSource } from "../runtime/source.ts";
import { assertTandemError, MemSource, randomModel, tinyConfig } from "./_fixtures.ts";

const TOKENIZER = await Deno.readFile(
  new URL("../../shared/models/stories260K-hf/tokenizer.json", import.meta.url),
);
// 8 layers of ~1 MiB each (f32), so the parts of a partial load lie more than RANGE_GAP apart.
const CONFIG = tinyConfig({
  dim: 128,
  hiddenDim: 512,
  nLayers: 8,
  nHeads: 4,
  nKvHeads: 4,
  headDim: 32,
  vocabSize: 512,
  tiedEmbeddings: false,
});
const MODEL = randomModel(CONFIG, 5);
const FILES = new Map(modelToHf(MODEL));
FILES.set("tokenizer.json", TOKENIZER);
const SIZE = FILES.get("model.safetensors")!.byteLength;

/** MemSource with range reads, counting the bytes it hands out. */
class RangeSource extends MemSource {
  bytes = 0;
  ranges = 0;
  readRange(path: string, start: number, end: number): Promise<Uint8Array> {
    this.ranges++;
    const f = this.files.get(path)!;
    const out = f.subarray(Math.min(start, f.byteLength), Math.min(end, f.byteLength));
    this.bytes += out.byteLength;
    return Promise.resolve(out);
  }
}

function assertSameTensors(part: Model, full: Model): void {
  for (const [name, t] of part.tensors) {
    assert.deepEqual(t.data, full.tensors.get(name)!.data, name);
  }
}

Deno.test("ranged: a device load reads its layers and the embedding, not the checkpoint", async () => {
  assert.ok(SIZE > 8 * RANGE_GAP, `fixture too small: ${SIZE}`);
  const src = new RangeSource(FILES);
  const device = await loadHfFolder(src, { parts: { layers: [0, 2], head: false } });
  assert.equal(src.reads.get("model.safetensors"), undefined, "never read whole");
  assert.ok(src.bytes < 0.35 * SIZE, `${src.bytes} of ${SIZE} bytes`);
  assertSameTensors(device.model, MODEL);
  assert.deepEqual([...device.model.tensors.keys()].filter((n) => n.startsWith("layers.6")), []);

  const edge = new RangeSource(FILES);
  const tail = await loadHfFolder(edge, { parts: { layers: [6, 8], embed: false, head: true } });
  assert.ok(edge.bytes < 0.45 * SIZE, `${edge.bytes} of ${SIZE} bytes`);
  assertSameTensors(tail.model, MODEL);

  const ends = await readSafetensors(
    new RangeSource(FILES),
    "model.safetensors",
    (n) => n === "model.embed_tokens.weight" || n === "lm_head.weight",
  );
  assert.equal(ends.reads, 4, "header length, header, two separate ranges");
  assert.deepEqual([...ends.file.entries.keys()].sort(), [
    "lm_head.weight",
    "model.embed_tokens.weight",
  ]);

  const everything = new RangeSource(FILES);
  const whole = await loadHfFolder(everything, {});
  assert.equal(everything.reads.get("model.safetensors"), 1, "a full load reads the file once");
  assertSameTensors(whole.model, MODEL);
});

Deno.test("ranged: local files, HTTP with and without range support, and the hub cache", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tandem-ranged-" });
  const ranges: string[] = [];
  let honour = true;
  const wholeGets: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path.startsWith("/api/")) return Response.json({ sha: "c".repeat(40) });
    const file = FILES.get(path.split("/").at(-1)!);
    if (!file) return new Response("not found", { status: 404 });
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.get("range") ?? "");
    if (range && honour) {
      ranges.push(range[0]);
      const [a, b] = [Number(range[1]), Math.min(Number(range[2]), file.byteLength - 1)];
      if (a >= file.byteLength) return new Response(null, { status: 416 });
      return new Response(file.slice(a, b + 1), {
        status: 206,
        headers: { "content-range": `bytes ${a}-${b}/${file.byteLength}` },
      });
    }
    if (req.method === "GET") wholeGets.push(path);
    return new Response(req.method === "HEAD" ? null : file.slice());
  });
  const base = `http://127.0.0.1:${server.addr.port}/m/`;
  const parts = { layers: [0, 1] as [number, number], head: false };
  try {
    for (const [name, bytes] of FILES) await Deno.writeFile(`${dir}/${name}`, bytes);
    assertSameTensors((await loadHfFolder(new DirSource(dir), { parts })).model, MODEL);

    const viaHttp = await loadHfFolder(new HttpSource(base), { parts });
    assertSameTensors(viaHttp.model, MODEL);
    assert.ok(ranges.length >= 3, ranges.join(" "));
    honour = false; // a server that ignores Range: the same tensors, from whole answers
    assertSameTensors((await loadHfFolder(new HttpSource(base), { parts })).model, MODEL);
    assert.equal(
      wholeGets.filter((p) => p.endsWith("model.safetensors")).length,
      1,
      "the whole file is downloaded once, not once per range",
    );

    honour = true;
    const cache = new DiskCache(`${dir}/cache`);
    const hub = () =>
      new HubSource("hf:o/m", { endpoint: `http://127.0.0.1:${server.addr.port}`, cache });
    assertSameTensors((await loadHfFolder(hub(), { parts })).model, MODEL);
    const before = ranges.length;
    const offline = new HubSource("hf:o/m", { cache, offline: true });
    assertSameTensors((await loadHfFolder(offline, { parts })).model, MODEL);
    assert.equal(ranges.length, before, "the second partial load came from cached ranges");
    await assertTandemError(
      () => loadHfFolder(offline, { parts: { layers: [3, 4] } }),
      "not_found",
      /offline: not in the cache/,
    );
    await loadHfFolder(hub(), {}); // a full load caches the whole file …
    const whole = ranges.length;
    const later = await loadHfFolder(offline, { parts: { layers: [3, 4] } });
    assertSameTensors(later.model, MODEL); // … which then serves any partial load's ranges
    assert.equal(ranges.length, whole);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ranged: a truncated file fails naming the cut tensor; a bad header is bad_model", async () => {
  const bytes = FILES.get("model.safetensors")!;
  const cut = new RangeSource(new Map([["model.safetensors", bytes.subarray(0, SIZE / 2)]]));
  await assertTandemError(
    () => readSafetensors(cut, "model.safetensors", (n) => n === "lm_head.weight"),
    "bad_model",
    /mem:model\.safetensors: file is truncated \(tensor lm_head\.weight ends at byte \d+\)/,
  );
  const junk = new RangeSource(new Map([["model.safetensors", new Uint8Array(16).fill(255)]]));
  await assertTandemError(
    () => readSafetensors(junk, "model.safetensors", () => true),
    "bad_model",
    /header length \d+ is not plausible/,
  );
});
