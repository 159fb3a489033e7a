// The portable core stays portable: no host globals in runtime/ and kernels/, and the
// dependency direction of STYLE.md (kernels ← runtime ← edge; hosts only at the edges).
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

/** Host-specific adapters: the only files in the core folders allowed to touch host APIs. */
const ADAPTERS = new Set(["kernels/_worker_src.ts"]);
/** Host adapter folders (one per host), skipped whole. */
const ADAPTER_DIRS = new Set(["edge/hosts", "edge/workerd"]);

/** Drops comments (doc examples may show host code) and string contents of a TS source. */
function codeOnly(src: string): string {
  return src
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

async function* tsFiles(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(new URL(dir, ROOT))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory && e.name !== "target" && !ADAPTER_DIRS.has(path)) yield* tsFiles(path);
    else if (e.isFile && e.name.endsWith(".ts")) yield path;
  }
}

Deno.test("runtime/, kernels/ and edge/ (outside host adapters) use no host globals", async () => {
  const leaks: string[] = [];
  for (const dir of ["runtime", "kernels", "edge"]) {
    for await (const path of tsFiles(dir)) {
      if (ADAPTERS.has(path)) continue;
      const code = codeOnly(await Deno.readTextFile(new URL(path, ROOT)));
      for (
        const re of [/\bDeno\./, /from\s+["']node:/, /\bprocess\.\w/, /\brequire\(/, /\bwindow\./]
      ) {
        const m = re.exec(code);
        if (m) leaks.push(`${path}: ${m[0]}`);
      }
    }
  }
  assert.deepEqual(leaks, []);
});

Deno.test("the library's module graph holds no hono, no host code and no node: modules", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "mod.ts"],
    cwd: ROOT,
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const specifiers: string[] = info.modules.map((m: { specifier: string }) => m.specifier);
  assert.ok(specifiers.some((s) => s.endsWith("/runtime/forward.ts")), "sanity: graph was read");
  const bad = specifiers.filter((s) => /hono|^node:|\/hosts\/|\/edge\/|\/cli\//.test(s));
  assert.deepEqual(bad, []);
});

Deno.test("kernels import nothing of ours outside kernels/", async () => {
  for await (const path of tsFiles("kernels")) {
    const src = await Deno.readTextFile(new URL(path, ROOT));
    for (const m of src.matchAll(/from\s+["'](\.[^"']+)["']/g)) {
      assert.ok(!m[1].startsWith("../"), `${path} imports ${m[1]}`);
    }
  }
});
