// The browser example in Debian's Chromium (driven by playwright-core; never a downloaded
// browser): the page runs layers [0, K) in a Worker, the example server the rest, and the
// streamed story equals the all-local greedy text — on threads when the page is cross-origin
// isolated, on one thread (and saying so) when it is not. Saves examples/browser/screenshot.png.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";
import { startBrowserExample } from "../examples/browser/serve.ts";
import type { PageResult } from "../examples/browser/page.ts";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { parseLlama2cTokenizer } from "../runtime/tokenizer/llama2c.ts";
import { StreamDecoder } from "../runtime/tokenizer/tokenizer.ts";

const CHROMIUM = "/usr/bin/chromium";
const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const PROMPT = "Once upon a time";
const MAX_TOKENS = 80;

async function allLocalText(): Promise<string> {
  const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
  const tok = parseLlama2cTokenizer(
    await Deno.readFile(new URL("tok512.bin", DIR)),
    model.config.vocabSize,
  );
  const prompt = tok.encode(PROMPT);
  const stream = new StreamDecoder(tok, prompt);
  let text = "";
  for (const id of generate(new RefEngine(model), prompt, { maxTokens: MAX_TOKENS })) {
    text += stream.push(id);
  }
  return text + stream.flush();
}

async function runPage(
  browser: Browser,
  isolated: boolean,
  screenshot?: string,
): Promise<{ result: PageResult; notice: string }> {
  const server = await startBrowserExample({ port: 0, isolated });
  const page = await browser.newPage({ viewport: { width: 960, height: 720 } });
  try {
    const q = new URLSearchParams({
      auto: "1",
      prompt: PROMPT,
      maxTokens: String(MAX_TOKENS),
      threads: "2",
    });
    await page.goto(`${server.url}?${q}`);
    await page.waitForFunction(
      () => ["done", "error"].includes(document.body.dataset.state!),
      null,
      {
        timeout: 40_000,
      },
    );
    const result = await page.evaluate(() =>
      (globalThis as { tandemResult?: unknown }).tandemResult
    ) as PageResult;
    const notice = await page.textContent("#notice") ?? "";
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    return { result, notice };
  } finally {
    await page.close();
    await server.close();
  }
}

Deno.test({
  name:
    "browser example: Chromium streams the all-local text, threaded when isolated, 1 thread when not",
  ignore: !existsSync(CHROMIUM),
  fn: async () => {
    const expected = await allLocalText();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
      ],
    });
    try {
      const shot = new URL("../examples/browser/screenshot.png", import.meta.url).pathname;
      const iso = await runPage(browser, true, shot);
      assert.equal(iso.result.error, undefined);
      assert.equal(iso.result.isolated, true);
      assert.equal(iso.result.text, expected);
      assert.equal(iso.result.tokens, MAX_TOKENS);
      assert.match(iso.result.engine, /^wasm-/, iso.result.reason);
      assert.equal(iso.result.threads, 2, iso.result.reason);
      assert.match(iso.notice, /run on threads/);

      const plain = await runPage(browser, false);
      assert.equal(plain.result.error, undefined);
      assert.equal(plain.result.isolated, false);
      assert.equal(plain.result.text, expected);
      assert.equal(plain.result.threads, 1, plain.result.reason);
      assert.match(plain.notice, /Not cross-origin isolated.*1 thread/);
    } finally {
      await browser.close();
    }
  },
});
