// The npm build as a Node user meets it: built fresh, installed by name (node_modules link),
// imported from `node` (no Deno), generating the golden story; its types check with tsc.
import assert from "node:assert/strict";
import { buildNpm } from "../cli/build_npm.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MODEL = new URL("../../shared/models/stories260K/stories260K.bin", import.meta.url).pathname;
const GOLDEN = ", there was a little girl named Lily. She loved to play outside in the park.";

async function run(
  cmd: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(cmd, { args, cwd, env: { NO_COLOR: "1" } }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

Deno.test("npm build: Node imports it by name, generates the golden story, and its types check", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "tandem-npm-" });
  try {
    // A Node project with the package built into its node_modules, beside its dependencies.
    const app = `${tmp}/app`;
    const pkg = `${app}/node_modules/tandem-llm`;
    await buildNpm({ out: pkg });
    const manifest = JSON.parse(await Deno.readTextFile(`${pkg}/package.json`));
    assert.deepEqual(Object.keys(manifest.exports).slice(0, 3), [".", "./hosts", "./edge"]);
    for (const e of [".", "./hosts", "./edge"]) {
      await Deno.stat(`${pkg}/${manifest.exports[e].types}`); // types exist where package.json says
    }
    for (const dep of [...Object.keys(manifest.dependencies), "@types"]) {
      const scope = dep.includes("/") ? `/${dep.split("/")[0]}` : "";
      await Deno.mkdir(`${app}/node_modules${scope}`, { recursive: true });
      await Deno.symlink(`${ROOT}node_modules/${dep}`, `${app}/node_modules/${dep}`);
    }
    await Deno.writeTextFile(`${app}/package.json`, '{ "type": "module" }\n');
    await Deno.copyFile(`${ROOT}examples/node/main.mjs`, `${app}/main.mjs`);

    const r = await run("node", ["main.mjs", MODEL], app);
    assert.equal(r.code, 0, r.out);
    assert.ok(r.out.startsWith(GOLDEN), r.out);
    assert.match(r.out, /60 tokens split at layer 2/);
    assert.match(r.out, /same text as all-local: true/);

    await Deno.writeTextFile(
      `${app}/typed.ts`,
      `import { generate, RefEngine, type Model, type SessionStats } from "tandem-llm";
import { loadModel } from "tandem-llm/hosts";
import { createEdgeApp, type EdgeApp } from "tandem-llm/edge";
const { model, tokenizer } = await loadModel("m.bin");
const m: Model = model;
const ids: number[] = [...generate(new RefEngine(m), tokenizer.encode("hi"), { maxTokens: 3 })];
const edge: EdgeApp = await createEdgeApp({ models: [{ id: "m", model }] });
declare const stats: SessionStats;
// @ts-expect-error: tokens is a number
const wrong: string = stats.tokens;
console.log(ids, edge.limits, wrong);
`,
    );
    const tsc = `${ROOT}node_modules/typescript/bin/tsc`;
    const t = await run("node", [
      tsc,
      "--noEmit",
      "--strict",
      "--skipLibCheck",
      "--module",
      "nodenext",
      "--target",
      "es2022",
      "--lib",
      "es2023,dom",
      "typed.ts",
    ], app);
    assert.equal(t.code, 0, t.out);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
