// Every task answers --help with its usage (exit 0) and a bad flag with one clear line naming
// it (exit 2, no stack trace). Subprocesses, run side by side.
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

/** deno task name → the script it runs (see deno.json). */
const TASKS: Record<string, string> = {
  generate: "cli/generate.ts",
  pack: "cli/pack.ts",
  demo: "cli/demo.ts",
  "build:npm": "cli/build_npm.ts",
  bench: "bench/main.ts",
  "browser example": "examples/browser/serve.ts",
  edge: "edge/hosts/deno.ts",
};

async function run(script: string, ...flags: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...flags],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

Deno.test("every task: --help prints usage, a bad flag is one clear line with exit 2", async () => {
  const deno = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  for (const [name, script] of Object.entries(TASKS)) {
    if (name in deno.tasks) assert.match(deno.tasks[name], new RegExp(script), name);
  }
  await Promise.all(
    Object.entries(TASKS).map(async ([name, script]) => {
      const help = await run(script, "--help");
      assert.equal(help.code, 0, `${name} --help: ${help.out}`);
      assert.match(help.out, /usage:/, `${name} --help`);

      const bad = await run(script, "--no-such-flag");
      assert.equal(bad.code, 2, `${name} --no-such-flag: ${bad.out}`);
      assert.match(bad.out, /no-such-flag|usage:/, name);
      assert.doesNotMatch(bad.out, /^\s+at /m, `${name} printed a stack trace: ${bad.out}`);
    }),
  );
});

Deno.test("edge host: a bad --price-per-flop is one clear line with exit 2", async () => {
  const bad = await run(TASKS.edge, "--model", "m.bin", "--price-per-flop=-1");
  assert.equal(bad.code, 2, bad.out);
  assert.match(bad.out, /--price-per-flop must be a number ≥ 0, got "-1"/);
});
