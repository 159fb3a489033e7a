// Hub and HTTP downloads against a loopback server that serves files this test wrote:
// `hf:` specs, the disk cache (second load never hits the server), auth and 404 errors.
import assert from "node:assert/strict";
import { loadModel } from "../hosts/load.ts";
import { DiskCache } from "../hosts/fs.ts";
import { modelToHf } from "../runtime/formats/hf.ts";
import { serializeLlama2c } from "../runtime/formats/llama2c.ts";
import { HubSource, parseHubSpec } from "../runtime/hub.ts";
import { assertTandemError, randomModel, tinyConfig } from "./_fixtures.ts";

const SHARED = new URL("../../shared/models/", import.meta.url);
const TOKENIZER = await Deno.readFile(new URL("stories260K-hf/tokenizer.json", SHARED));
const TOK512 = await Deno.readFile(new URL("stories260K/tok512.bin", SHARED));
const TOKEN = "hf_test_token";

const SHA_A = "a".repeat(40), SHA_B = "b".repeat(40);

/** A loopback hub: files by commit, branches/tags to commits (mutable), who asked for what. */
interface Hub {
  endpoint: string;
  hits: string[];
  refs: Map<string, string>;
  commits: Map<string, Map<string, Uint8Array>>;
}

/**
 * Serves `/api/models/{owner}/{repo}/revision/{rev}` (`{ sha }`) and
 * `/{owner}/{repo}/resolve/{rev}/{file}` (rev a branch, tag or commit) from maps; "private/*"
 * needs the token, "gone/*" answers RepoNotFound, "test/plain" has no revision API (a mirror).
 */
async function withHub(fn: (hub: Hub) => Promise<void>): Promise<void> {
  const model = randomModel(tinyConfig({ tiedEmbeddings: false }), 3);
  const tiny = new Map(modelToHf(model, { dtype: "F16", tensorsPerShard: 10 }));
  tiny.set("tokenizer.json", TOKENIZER);
  const commits = new Map([
    [`test/tiny@${SHA_A}`, tiny],
    [`private/tiny@${SHA_A}`, tiny],
    [
      "test/plain@main",
      new Map([["model.bin", serializeLlama2c(randomModel(tinyConfig({ vocabSize: 512 }), 4))], [
        "tok512.bin",
        TOK512,
      ]]),
    ],
  ]);
  const refs = new Map([
    ["test/tiny@main", SHA_A],
    ["test/tiny@v2", SHA_A],
    ["private/tiny@main", SHA_A],
  ]);
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    hits.push(`${req.method} ${path}`);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    const m = api ?? /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return new Response("not found", { status: 404 });
    if (m[1].startsWith("gone/")) {
      return new Response("no repo", { status: 401, headers: { "x-error-code": "RepoNotFound" } });
    }
    if (m[1].startsWith("private/") && req.headers.get("authorization") !== `Bearer ${TOKEN}`) {
      return new Response("unauthorized", { status: 401 });
    }
    if (api) {
      if (m[1] === "test/plain") return new Response("not found", { status: 404 });
      const sha = refs.get(`${m[1]}@${m[2]}`) ?? (commits.has(`${m[1]}@${m[2]}`) ? m[2] : "");
      if (sha) return Response.json({ id: m[1], sha });
      const known = [...refs.keys()].some((k) => k.startsWith(`${m[1]}@`));
      const code = known ? "RevisionNotFound" : "RepoNotFound";
      return new Response(code, { status: known ? 404 : 401, headers: { "x-error-code": code } });
    }
    const file = commits.get(`${m[1]}@${m[2]}`)?.get(m[3]);
    if (!file) return new Response("not found", { status: 404 });
    return new Response(req.method === "HEAD" ? null : file.slice(), {
      headers: { "content-length": String(file.byteLength) },
    });
  });
  const cacheDir = await Deno.makeTempDir({ prefix: "tandem-hub-" });
  try {
    Deno.env.set("TANDEM_CACHE", cacheDir);
    await fn({ endpoint: `http://127.0.0.1:${server.addr.port}`, hits, refs, commits });
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

Deno.test("hub download: sharded f16 repo loads at one commit, progress is reported, the cache serves the second load", async () => {
  await withHub(async ({ endpoint, hits }) => {
    const progress: string[] = [];
    const first = await loadModel("hf:test/tiny", {
      endpoint,
      onProgress: (done, total, what) => progress.push(`${what} ${done}/${total}`),
    });
    assert.match(first.description, /hf:test\/tiny@main \(Hugging Face safetensors, 2 layers/);
    assert.equal(hits[0], "GET /api/models/test/tiny/revision/main");
    assert.ok(
      hits.some((h) => h === `GET /test/tiny/resolve/${SHA_A}/model-00001-of-00003.safetensors`),
      "files are read at the resolved commit",
    );
    assert.ok(!hits.some((h) => h.includes("/resolve/main/")), hits.join("\n"));
    assert.ok(progress.some((p) => p.startsWith("config.json ")));
    const before = hits.length;
    const second = await loadModel("hf:test/tiny", { endpoint });
    assert.deepEqual(hits.slice(before), ["GET /api/models/test/tiny/revision/main"]);
    assert.deepEqual(
      second.model.tensors.get("output")!.data,
      first.model.tensors.get("output")!.data,
    );
    const other = hits.length;
    const tag = await loadModel("hf:test/tiny@v2", { endpoint });
    assert.deepEqual(hits.slice(other), ["GET /api/models/test/tiny/revision/v2"], "same commit");
    assert.deepEqual(tag.model.tensors.get("norm")!.data, first.model.tensors.get("norm")!.data);
    const pinned = hits.length;
    await loadModel(`hf:test/tiny@${SHA_A}`, { endpoint });
    assert.equal(hits.length, pinned, "a commit needs no request once cached");
  });
});

Deno.test("hub cache: a moved branch is re-read; offline and unreachable hubs use the last commit", async () => {
  await withHub(async ({ endpoint, hits, refs, commits }) => {
    const a = await loadModel("hf:test/tiny", { endpoint });
    const moved = randomModel(tinyConfig({ tiedEmbeddings: false }), 9);
    const files = new Map(modelToHf(moved, { dtype: "F32" }));
    files.set("tokenizer.json", TOKENIZER);
    commits.set(`test/tiny@${SHA_B}`, files);
    refs.set("test/tiny@main", SHA_B);
    const b = await loadModel("hf:test/tiny", { endpoint });
    assert.deepEqual(b.model.tensors.get("norm")!.data, moved.tensors.get("norm")!.data);
    assert.notDeepEqual(b.model.tensors.get("norm")!.data, a.model.tensors.get("norm")!.data);
    assert.ok(hits.includes(`GET /test/tiny/resolve/${SHA_B}/config.json`));

    const before = hits.length;
    const offline = await loadModel("hf:test/tiny", { endpoint, offline: true });
    assert.equal(hits.length, before, "offline: no request at all");
    assert.deepEqual(offline.model.tensors.get("norm")!.data, moved.tensors.get("norm")!.data);
    Deno.env.set("HF_HUB_OFFLINE", "1");
    try {
      await assertTandemError(
        () => loadModel("hf:test/never", { endpoint }),
        "not_found",
        /Cannot load hf:test\/never@main offline: it was never downloaded/,
      );
    } finally {
      Deno.env.delete("HF_HUB_OFFLINE");
    }
    assert.equal(hits.length, before);
    const unreachable = await loadModel("hf:test/tiny", { endpoint: "http://127.0.0.1:1" });
    assert.deepEqual(unreachable.model.tensors.get("norm")!.data, moved.tensors.get("norm")!.data);
  });
});

Deno.test("hub errors: missing repo, revision and file, 401; each names the URL; a token fixes 401", async () => {
  await withHub(async ({ endpoint }) => {
    await assertTandemError(
      () => loadModel("hf:test/missing", { endpoint }),
      "not_found",
      /revision main from .*\/api\/models\/test\/missing\/revision\/main: HTTP 401.*no such repository/,
    );
    await assertTandemError(
      () => loadModel("hf:test/tiny@nope", { endpoint }),
      "not_found",
      /HTTP 404 .*\(no such branch, tag or commit\)/,
    );
    await assertTandemError(
      () => loadModel("hf:test/plain", { endpoint }),
      "bad_model",
      /hf:test\/plain@main: no config\.json/,
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
        `Cannot download nope\\.json from ${endpoint}/test/tiny/resolve/${SHA_A}/nope\\.json: HTTP 404`,
      ),
    );
    await assertTandemError(() => hub.read("../x"), "bad_argument", /not a plain relative path/);
    await assertTandemError(
      () => loadModel("hf:private/tiny", { endpoint }),
      "unauthorized",
      /private\/tiny\/revision\/main: HTTP 401.*HF_TOKEN/,
    );
    const authed = new HubSource("hf:private/tiny", {
      endpoint,
      token: TOKEN,
      cache: new DiskCache(Deno.env.get("TANDEM_CACHE") + "/authed"),
    });
    assert.ok((await authed.read("config.json")).byteLength > 0);
    assert.equal(await authed.commit(), SHA_A);
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
      /Cannot resolve hf:test\/other@main at http:\/\/127\.0\.0\.1:1\//,
    );
  });
});

Deno.test("HTTP folder and llama2.c URLs load through fetch; HF_ENDPOINT and an injected fetch are used", async () => {
  await withHub(async ({ endpoint, hits }) => {
    const folder = await loadModel(`${endpoint}/test/tiny/resolve/${SHA_A}/`);
    assert.equal(folder.model.config.dim, 16);
    const plain = await loadModel(`${endpoint}/test/plain/resolve/main/model.bin`);
    assert.match(plain.description, /model\.bin \(llama2\.c/);
    assert.equal(plain.tokenizer.vocabSize, 512);
    const mirror = new HubSource("hf:test/plain", { endpoint });
    assert.ok((await mirror.read("tok512.bin")).byteLength > 0);
    assert.equal(await mirror.commit(), undefined, "a server without the revision API: by name");
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
