// The README's "Generate locally" example runs as written.
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

Deno.test("the README's local generation example runs and prints a story", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  const example = blocks.find((b) => b.includes("createEngine(model"));
  assert.ok(example, "the README shows createEngine");
  const file = new URL(`.readme_example_${Deno.pid}.ts`, ROOT);
  await Deno.writeTextFile(file, example);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", file.pathname],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.ok(stdout.trim().split(/\s+/).length >= 20, `a story: ${stdout}`);
  } finally {
    await Deno.remove(file);
  }
});
