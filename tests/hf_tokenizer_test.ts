// tokenizer.json (stories260K-hf) against the llama2.c tokenizer of the same model.
import assert from "node:assert/strict";
import { parseHfTokenizer } from "../runtime/tokenizer/hf.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { StreamDecoder } from "../runtime/tokenizer/tokenizer.ts";
import { assertTandemError, rng } from "./_fixtures.ts";

const HF = new URL("../../shared/models/stories260K-hf/", import.meta.url);
const json = await Deno.readTextFile(new URL("tokenizer.json", HF));
const cfg = await Deno.readTextFile(new URL("tokenizer_config.json", HF));
const hf = parseHfTokenizer(json, cfg);
const ref = parseLlama2cTokenizer(
  await Deno.readFile(new URL("../stories260K/tok512.bin", HF)),
  512,
  "tok512.bin",
);

const STRINGS = [
  "Once upon a time",
  "",
  " ",
  "Hello, world!",
  "  two  spaces  ",
  "tabs\tand\nnew\r\nlines",
  "naïve café — 日本語 🙂 👩‍👩‍👧",
  'Lily said: "It\'s 3:45pm!" (really?)',
  "\u0000\u0001 control \u007f bytes",
  "ünïcödé and ZWJ\u200d and é (combining)",
];

Deno.test("tokenizer.json encodes like tok512.bin, BOS included", () => {
  assert.deepEqual(hf.encode("Once upon a time"), [1, 403, 407, 261, 378]);
  assert.deepEqual([hf.bosId, [...hf.eosIds], hf.vocabSize], [1, [2], 512]);
  for (const s of STRINGS) {
    assert.deepEqual(hf.encode(s), ref.encode(s), `encode ${JSON.stringify(s)}`);
    assert.deepEqual(
      hf.encode(s, { bos: false }),
      ref.encode(s, { bos: false }),
      `no BOS ${JSON.stringify(s)}`,
    );
  }
});

Deno.test("tokenizer.json decodes like tok512.bin, on text and on random id streams", () => {
  for (const s of STRINGS) {
    const ids = ref.encode(s);
    assert.equal(hf.decode(ids), ref.decode(ids), `decode ${JSON.stringify(s)}`);
    assert.equal(
      hf.decode(ids.slice(1)),
      ref.decode(ids.slice(1)),
      `decode without BOS ${JSON.stringify(s)}`,
    );
  }
  // Id 0 (<unk>) is left out: tok512.bin prints it as "<unk>", tokenizer.json skips it as
  // a special token, which is what the Tokenizer contract asks for.
  const r = rng(17);
  for (let trial = 0; trial < 200; trial++) {
    const ids = Array.from({ length: 1 + Math.floor(r() * 12) }, () => 1 + Math.floor(r() * 511));
    if (r() < 0.5) ids.unshift(1);
    assert.equal(hf.decode(ids), ref.decode(ids), `ids ${ids}`);
  }
});

Deno.test("streaming decode through tokenizer.json equals the whole decode", () => {
  const ids = hf.encode("snow ☃ and 🙂 fall", { bos: false });
  const stream = new StreamDecoder(hf, [hf.bosId]);
  const pieces = ids.map((id) => stream.push(id));
  pieces.push(stream.flush());
  assert.equal(pieces.join(""), "snow ☃ and 🙂 fall");
  assert.ok(pieces.every((p) => !p.includes("\uFFFD")));
});

Deno.test("bad tokenizer files are bad_tokenizer errors", async () => {
  await assertTandemError(
    () => parseHfTokenizer("{nope", undefined, {}, "t.json"),
    "bad_tokenizer",
    /Cannot load t\.json: /,
  );
  await assertTandemError(
    () => parseHfTokenizer("{}", undefined, {}, "t.json"),
    "bad_tokenizer",
    /no "model" section/,
  );
  const noBos = JSON.stringify({ ...JSON.parse(json), post_processor: null });
  await assertTandemError(
    () => parseHfTokenizer(noBos, "{}", {}, "t.json"),
    "bad_tokenizer",
    /no BOS token/,
  );
  // Without a config naming BOS, the model's config.json id is used.
  assert.equal(parseHfTokenizer(json, undefined, { bosId: 1, eosIds: [2] }).encode("a")[0], 1);
});
