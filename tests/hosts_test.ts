// The edge on each host, as a real process on loopback: Deno (model from a URL), Node
// (@hono/node-server, bundled by esbuild), workerd (the repo's config, model as a data
// binding), and examples/cloudflare under `wrangler dev` (the npm build, weights from a URL).
// A device session splits against each and must match the all-local tokens.
import assert from "node:assert/strict";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { createSession } from "../runtime/session.ts";
import { serveEdge } from "../edge/hosts/deno.ts";
import { buildWorker } from "../edge/workerd/build.ts";
import { buildNpm } from "../cli/build_npm.ts";
import workerdModule from "workerd";

const ROOT = new URL("../", import.meta.url);
const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const MODEL = new URL("stories260K.bin", DIR).pathname;
const TOK = new URL("tok512.bin", DIR).pathname;
const modelBytes = await Deno.readFile(MODEL);
const tokBytes = await Deno.readFile(TOK);
const model = parseLlama2c(modelBytes);
const want = [...generate(new RefEngine(model), [1], { maxTokens: 60 })];

/** Starts a command, waits for a line matching `ready`, and returns it with a stopper. */
async function start(
  cmd: string,
  args: string[],
  ready: RegExp,
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ match: RegExpMatchArray; stop: () => Promise<void> }> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: options.cwd ?? ROOT.pathname,
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
    await reader.cancel();
    await stderr;
  };
  let seen = "";
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
    const match = seen.match(ready);
    if (match) return { match, stop };
  }
  await stop();
  throw new Error(`${cmd} did not get ready: ${seen}\n${await stderr}`);
}

async function splitTokens(url: string, split: number): Promise<number[]> {
  const session = await createSession({
    model,
    modelId: "stories260K",
    split,
    edge: url,
  });
  const got: number[] = [];
  for await (const t of session.generate([1], { maxTokens: 60 })) got.push(t);
  await session.close();
  return got;
}

async function waitHealthy(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return void await res.body?.cancel();
      await res.body?.cancel();
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} never became healthy`);
}

/** Once healthy: a split session at `split` gives the all-local tokens, and chat completes. */
async function splitAndChat(url: string, split: number): Promise<void> {
  await waitHealthy(url);
  assert.deepEqual(await splitTokens(url, split), want);
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    body: JSON.stringify({
      model: "stories260K",
      messages: [{ role: "user", content: "Once upon" }],
      max_tokens: 8,
      temperature: 0,
    }),
  });
  const body = await res.json();
  assert.match(body.choices[0].message.content, /^ a time, there was/);
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("Deno host: the edge command loads its model from a URL", async () => {
  const files = serveEdge(() => new Response(modelBytes));
  const deno = Deno.execPath();
  const edge = await start(deno, [
    "run",
    "-A",
    "edge/hosts/deno.ts",
    "--model",
    `${files.url}/stories260K.bin`,
    "--id",
    "stories260K",
    "--port",
    "0",
  ], /on (http:\/\/\S+)/);
  try {
    assert.deepEqual(await splitTokens(edge.match[1], 3), want);
  } finally {
    await edge.stop();
    await files.close();
  }
});

Deno.test("Node host: @hono/node-server edge serves split sessions", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const out = `${tmp}/edge-node.mjs`;
    const esbuild = new URL("node_modules/.bin/esbuild", ROOT).pathname;
    const built = await new Deno.Command(esbuild, {
      args: [
        "edge/hosts/node.ts",
        "--bundle",
        "--platform=node",
        "--format=esm",
        `--outfile=${out}`,
        "--log-level=warning",
      ],
      cwd: ROOT.pathname,
    }).output();
    assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));
    const edge = await start("node", [
      out,
      "--model",
      MODEL,
      "--tokenizer",
      TOK,
      "--id",
      "stories260K",
      "--port",
      "0",
    ], /on (http:\/\/\S+)/);
    try {
      assert.deepEqual(await splitTokens(edge.match[1], 2), want);
      const models = await (await fetch(`${edge.match[1]}/v1/models`)).json();
      assert.equal(models.data[0].chat, true);
    } finally {
      await edge.stop();
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("workerd host: the repo's config serves split sessions and chat", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const config = await buildWorker({ out: tmp });
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    // The binary itself (the package's default export): killing npm's wrapper would leave it running.
    const m = workerdModule as unknown as string | { default: string };
    const workerd = typeof m === "string" ? m : m.default;
    const child = new Deno.Command(workerd, {
      args: ["serve", config, "-s", `http=127.0.0.1:${port}`],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    try {
      await splitAndChat(url, 4);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await stderr;
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("Cloudflare example: wrangler dev runs worker.ts on the npm build; split and chat work", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "tandem-cf-" });
  const files = serveEdge((req) =>
    new Response(
      new URL(req.url).pathname.endsWith("tok512.bin") ? tokBytes : modelBytes,
    )
  );
  try {
    // The example as a user has it: its files, and tandem-llm (built now) in node_modules.
    const pkg = `${tmp}/node_modules/tandem-llm`;
    await buildNpm({ out: pkg });
    const manifest = JSON.parse(await Deno.readTextFile(`${pkg}/package.json`));
    for (const dep of Object.keys(manifest.dependencies)) {
      const scope = dep.includes("/") ? `/${dep.split("/")[0]}` : "";
      await Deno.mkdir(`${tmp}/node_modules${scope}`, { recursive: true });
      await Deno.symlink(
        `${ROOT.pathname}node_modules/${dep}`,
        `${tmp}/node_modules/${dep}`,
      );
    }
    for (const f of ["worker.ts", "wrangler.toml", "package.json"]) {
      await Deno.copyFile(
        `${ROOT.pathname}examples/cloudflare/${f}`,
        `${tmp}/${f}`,
      );
    }
    const port = freePort();
    const wrangler = await start(
      `${ROOT.pathname}node_modules/.bin/wrangler`,
      [
        "dev",
        "--ip",
        "127.0.0.1",
        "--port",
        String(port),
        "--var",
        `MODEL_URL:${files.url}/stories260K.bin`,
        "--var",
        `TOKENIZER_URL:${files.url}/tok512.bin`,
      ],
      /Ready on (http:\/\/\S+)/,
      {
        cwd: tmp,
        env: {
          WRANGLER_SEND_METRICS: "false",
          CI: "true",
          NO_COLOR: "1",
          HOME: tmp,
        },
      },
    );
    try {
      await splitAndChat(`http://127.0.0.1:${port}`, 3);
    } finally {
      await wrangler.stop();
    }
  } finally {
    await files.close();
    await Deno.remove(tmp, { recursive: true });
  }
});
