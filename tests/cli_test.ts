// The generate CLI as a user runs it: text on stdout, diagnostics on stderr, clear errors.
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const MODEL = new URL("../../shared/models/stories260K/stories260K.bin", import.meta.url).pathname;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/generate.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("generate streams only the generated text to stdout", async () => {
  const r = await cli("--model", MODEL, "--max-tokens", "30", "--temperature", "0");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Once upon a time, there was a little girl named Lily\./);
  assert.doesNotMatch(r.stdout, /tok\/s|llama2\.c/);
  assert.match(r.stderr, /30 tokens in .* tok\/s/);
});

Deno.test("generate continues a prompt and reproduces a seeded sample", async () => {
  const a = await cli("--model", MODEL, "--prompt", "Once upon a time", "--max-tokens", "12");
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /^, there was a little girl/);
  const s1 = await cli("--model", MODEL, "--max-tokens", "20", "--temperature", "1", "--seed", "9");
  const s2 = await cli("--model", MODEL, "--max-tokens", "20", "--temperature", "1", "--seed", "9");
  assert.equal(s1.stdout, s2.stdout);
});

Deno.test("generate answers bad input with one clear line and no stack trace", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const bytes = await Deno.readFile(MODEL);
    await Deno.writeFile(`${tmp}/cut.bin`, bytes.subarray(0, 5000));
    await Deno.writeFile(`${tmp}/lonely.bin`, bytes);
    const cases: [string[], number, RegExp][] = [
      [["--model", `${tmp}/missing.bin`], 1, /no such file/],
      [["--model", `${tmp}/cut.bin`], 1, /truncated \(5000 bytes/],
      [["--model", `${tmp}/lonely.bin`], 1, /tokenizer/],
      [["--model", MODEL, "--max-tokens", "lots"], 2, /--max-tokens must be a whole number/],
      [["--model", MODEL, "--nope"], 2, /Unknown option '--nope'/],
      [[], 2, /no model given/],
    ];
    for (const [args, code, pattern] of cases) {
      const r = await cli(...args);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
      assert.equal(r.stdout, "");
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("generate runs the wasm engine quantized and threaded, and split over loopback", async () => {
  const local = await cli("--model", MODEL, "--max-tokens", "20");
  for (
    const args of [["--quant", "q8", "--threads", "2"], ["--split", "2"], [
      "--split",
      "3",
      "--wire",
      "f16",
    ]]
  ) {
    const r = await cli("--model", MODEL, "--max-tokens", "20", ...args);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, local.stdout, args.join(" "));
  }
  const q8 = await cli("--model", MODEL, "--max-tokens", "5", "--quant", "q8", "--threads", "2");
  assert.match(q8.stderr, /engine wasm-q8x2/);
  const split = await cli("--model", MODEL, "--max-tokens", "5", "--split", "2", "--wire", "int8");
  assert.match(split.stderr, /edge layers \[2, 5\) \+ head; wire int8/);
  assert.match(split.stderr, /bytes per token +sent \d/);
  for (
    const [args, pattern] of [
      [["--quant", "q3"], /--quant must be one of f32, q8, q4/],
      [["--threads", "0"], /--threads must be a whole number from 1 to 64/],
      [["--split", "5"], /--split must be between 1 and 4/],
      [["--wire", "int8"], /need --split/],
      [["--split", "2", "--wire", "bf16"], /--wire must be one of f32, f16, int8/],
    ] as [string[], RegExp][]
  ) {
    const r = await cli("--model", MODEL, ...args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, pattern);
  }
});

Deno.test("generate --help lists the flags", async () => {
  const r = await cli("--help");
  assert.equal(r.code, 0);
  for (
    const flag of [
      "--model",
      "--prompt",
      "--max-tokens",
      "--temperature",
      "--seed",
      "--quant",
      "--threads",
      "--split",
      "--edge",
      "--wire",
    ]
  ) {
    assert.ok(r.stdout.includes(flag), flag);
  }
});
