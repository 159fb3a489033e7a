/**
 * Benchmark entry: `deno task bench <name> [--quick] [...]` runs `bench/<name>.ts`.
 * Every bench measures its baseline in the same run, prints ratios, and writes
 * `bench/results/<name>.json`.
 *
 * @module
 */

const benches: Record<string, string> = {
  // name: module path relative to this file; each module exports `run(args: string[])`.
  fuzz: "./fuzz.ts",
  load: "./load.ts",
  kernels: "./kernels.ts",
  engine: "./engine.ts",
  quant: "./quant.ts",
  router: "./router.ts",
  wire: "./wire.ts",
};

const [name, ...args] = Deno.args;
if (!name || name === "--help" || !(name in benches)) {
  console.error(
    `usage: deno task bench <name> [--quick]\n\nbenches:\n${
      Object.keys(benches).map((b) => `  ${b}`).join("\n") || "  (none yet)"
    }`,
  );
  Deno.exit(name && name !== "--help" ? 2 : 0);
}
const mod = await import(benches[name]);
await mod.run(args);
