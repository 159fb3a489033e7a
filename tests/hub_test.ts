// Hub and HTTP downloads against a loopback server that serves files this test wrote:
// `hf:` specs, the disk cache (second load never hits the server), auth and 404 errors.
import assert from "node:assert/strict";
import { loadModel } from "../hosts/load.ts";
import { DiskCache } from "../hosts/fs.ts";
import { modelToHf } from "../runtime/formats/hf.ts";
import { serializeLlama2c } from "../runtime/formats/llama2c.ts";
import { HubSource, parseHubSpec } from "../runtime/source.ts";
import { assertTandemError, randomModel, tinyConfig } from "./_fixtures.ts";

const SHARED = new URL("../../shared/models/", import.meta.url);
const TOKENIZER = await Deno.readFile(new URL("stories260K-hf/tokenizer.json", SHARED));
const TOK512 = await Deno.readFile(new URL("stories260K/tok512.bin", SHARED));
const TOKEN = "hf_test_token";

/** Serves `/{owner}/{repo}/resolve/{rev}/{file}` from maps; "private/*" needs the token. */
async function withHub(
  fn: (endpoint: string, hits: string[]) => Promise<void>,
): Promise<void> {
  const model = randomModel(tinyConfig({ tiedEmbeddings: false }), 3);
  const repo = new Map(modelToHf(model, { dtype: "F16", tensorsPerShard: 10 }));
  repo.set("tokenizer.json", TOKENIZER);
  const repos = new Map([
    ["test/tiny/main", repo],
    ["test/tiny/v2", repo],
    ["private/tiny/main", repo],
    [
      "test/plain/main",
      new Map([["model.bin", serializeLlama2c(randomModel(tinyConfig({ vocabSize: 512 }), 4))], [
        "tok512.bin",
        TOK512,
      ]]),
    ],
  ]);
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    hits.push(`${req.method} ${path}`);
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return new Response("not found", { status: 404 });
    if (m[1].startsWith("gone/")) {
      return new Response("no repo", { status: 401, headers: { "x-error-code": "RepoNotFound" } });
    }
    if (m[1].startsWith("private/") && req.headers.get("authorization") !== `Bearer ${TOKEN}`) {
      return new Response("unauthorized", { status: 401 });
    }
    const file = repos.get(`${m[1]}/${m[2]}`)?.get(m[3]);
    if (!file) return new Response("not found", { status: 404 });
    return new Response(req.method === "HEAD" ? null : file.slice(), {
      headers: { "content-length": String(file.byteLength) },
    });
  });
  const cacheDir = await Deno.makeTempDir({ prefix: "tandem-hub-" });
  try {
    Deno.env.set("TANDEM_CACHE", cacheDir);
    await fn(`http://127.0.0.1:${server.addr.port}`, hits);
  } finally {
    Deno.env.delete("TANDEM_CACHE");
    await server.shutdown();
    await Deno.remove(cacheDir, { recursive: true });
  }
}

Deno.test("hf: specs parse, with main as the default revision", async () => {
  assert.deepEqual(parseHubSpec("hf:a/b"), { repo: "a/b", revision: "main" });
  assert.deepEqual(parseHubSpec("hf:Org-1/model.x@v1.0"), {
    repo: "Org-1/model.x",
    revision: "v1.0",
  });
  await assertTandemError(
    () => parseHubSpec("hf:justone"),
    "bad_argument",
    /expected hf:owner\/repo\[@revision\]/,
  );
  await assertTandemError(() => parseHubSpec("hf:a/../b"), "bad_argument", /expected/);
});

Deno.test("hub download: sharded f16 repo loads, progress is reported, the cache serves the second load", async () => {
  await withHub(async (endpoint, hits) => {
    const progress: string[] = [];
    const first = await loadModel("hf:test/tiny", {
      endpoint,
      onProgress: (done, total, what) => progress.push(`${what} ${done}/${total}`),
    });
    assert.match(first.description, /hf:test\/tiny@main \(Hugging Face safetensors, 2 layers/);
    assert.ok(
      hits.some((h) =>
        /^GET \/test\/tiny\/resolve\/main\/model-00001-of-00003\.safetensors$/.test(h)
      ),
    );
    assert.ok(progress.some((p) => p.startsWith("config.json ")));
    const before = hits.length;
    const second = await loadModel("hf:test/tiny", { endpoint });
    assert.equal(hits.length, before, `server hit again: ${hits.slice(before)}`);
    assert.deepEqual(
      second.model.tensors.get("output")!.data,
      first.model.tensors.get("output")!.data,
    );
    const pinned = await loadModel("hf:test/tiny@v2", { endpoint });
    assert.ok(hits.length > before, "another revision is another cache entry");
    assert.deepEqual(pinned.model.tensors.get("norm")!.data, first.model.tensors.get("norm")!.data);
  });
});

Deno.test("hub errors: 404 and 401 name the file and URL; a token fixes 401", async () => {
  await withHub(async (endpoint) => {
    await assertTandemError(
      () => loadModel("hf:test/missing", { endpoint }),
      "bad_model",
      /hf:test\/missing@main: no config\.json/,
    );
    await assertTandemError(
      () => new HubSource("hf:gone/repo", { endpoint }).read("config.json"),
      "not_found",
      /HTTP 401 .*\(no such repository, or it is private: set HF_TOKEN\)/,
    );
    const hub = new HubSource("hf:test/tiny", { endpoint });
    await assertTandemError(
      () => hub.read("nope.json"),
      "not_found",
      new RegExp(
        `Cannot download nope\\.json from ${endpoint}/test/tiny/resolve/main/nope\\.json: HTTP 404`,
      ),
    );
    await assertTandemError(
      () => loadModel("hf:private/tiny", { endpoint }),
      "unauthorized",
      /config\.json from .*private\/tiny\/resolve\/main\/config\.json: HTTP 401.*HF_TOKEN/,
    );
    const authed = new HubSource("hf:private/tiny", {
      endpoint,
      token: TOKEN,
      cache: new DiskCache(Deno.env.get("TANDEM_CACHE") + "/authed"),
    });
    assert.ok((await authed.read("config.json")).byteLength > 0);
    Deno.env.set("HF_TOKEN", TOKEN);
    try {
      const viaEnv = await loadModel("hf:private/tiny", { endpoint });
      assert.equal(viaEnv.model.config.nLayers, 2);
    } finally {
      Deno.env.delete("HF_TOKEN");
    }
    const dead = "http://127.0.0.1:1";
    await assertTandemError(
      () => loadModel("hf:test/other", { endpoint: dead }),
      "network",
      /Cannot download config\.json from http:\/\/127\.0\.0\.1:1\//,
    );
  });
});

Deno.test("HTTP folder and llama2.c URLs load through fetch; HF_ENDPOINT and an injected fetch are used", async () => {
  await withHub(async (endpoint, hits) => {
    const folder = await loadModel(`${endpoint}/test/tiny/resolve/main/`);
    assert.equal(folder.model.config.dim, 16);
    const plain = await loadModel(`${endpoint}/test/plain/resolve/main/model.bin`);
    assert.match(plain.description, /model\.bin \(llama2\.c/);
    assert.equal(plain.tokenizer.vocabSize, 512);
    Deno.env.set("HF_ENDPOINT", endpoint);
    const calls: string[] = [];
    try {
      const viaEnv = await loadModel("hf:test/tiny@v2", {
        cacheDir: Deno.env.get("TANDEM_CACHE") + "/env",
        fetch: (input, init) => {
          calls.push(String(input));
          return fetch(input, init);
        },
      });
      assert.equal(viaEnv.model.config.nLayers, 2);
    } finally {
      Deno.env.delete("HF_ENDPOINT");
    }
    assert.ok(calls.length > 0 && calls.every((u) => u.startsWith(endpoint)));
    assert.ok(hits.length > 0);
  });
});
