// The demo's routed run (`deno task demo`, edge/run_routed.ts) end to end on loopback: the
// device fits its exit adapter, the router decides, the text is the whole model's greedy text,
// and the report names the decision, the adapter and the savings.
import assert from "node:assert/strict";
import { formatRoutedReport, runRoutedGeneration } from "../edge/run_routed.ts";
import { generate } from "../runtime/generate.ts";
import { StreamDecoder } from "../runtime/tokenizer/tokenizer.ts";
import { full, model, tok } from "./_stories.ts";

Deno.test("demo: the routed run streams the whole model's text and reports the decision and cost", async () => {
  let text = "";
  const report = await runRoutedGeneration({
    model,
    tokenizer: tok,
    prompt: "Once upon a time",
    maxTokens: 40,
    onText: (t) => (text += t),
  });
  const prompt = tok.encode("Once upon a time", { bos: true });
  const want = [...generate(full, prompt, { maxTokens: 40 })];
  const d = new StreamDecoder(tok, prompt);
  assert.equal(text, want.map((t) => d.push(t)).join("") + d.flush());
  assert.ok(report.exitAdapter && report.exitAdapter.agreement > report.exitAdapter.plainAgreement);
  const out = formatRoutedReport(report);
  assert.match(out, /^decision 1: /);
  assert.match(out, /drafting through an exit adapter/);
  assert.match(out, /% saved\)/);
  assert.equal(report.metrics.tokens, want.length);
});
