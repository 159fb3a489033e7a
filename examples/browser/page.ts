/**
 * The browser example's page: starts the device Worker, shows whether the page is
 * cross-origin isolated (threads) or not (one thread), and streams the story with live
 * numbers. Options come from the query string: `prompt`, `maxTokens` (default 120), `threads`
 * (default: the cores, at most 4), `wire` (f32, f16 or int8; default f32) and `auto=1` (start
 * at once). The outcome is also left on `globalThis.tandemResult` for tests.
 *
 * @module
 */

/// <reference lib="dom" />

import type { StartMessage, WorkerMessage } from "./device_worker.ts";
import type { WireDtype } from "../../runtime/wire.ts";

/** What a finished run leaves on `globalThis.tandemResult`. */
export interface PageResult {
  text: string;
  engine: string;
  reason: string;
  threads: number;
  isolated: boolean;
  tokens: number;
  error?: string;
}

const $ = (id: string): HTMLElement => document.getElementById(id)!;
const params = new URLSearchParams(location.search);
const maxTokens = Number(params.get("maxTokens") ?? 120);
const threads = Number(params.get("threads") ?? Math.min(4, navigator.hardwareConcurrency || 1));
const wire = (params.get("wire") ?? "f32") as WireDtype;
if (params.has("prompt")) ($("prompt") as HTMLInputElement).value = params.get("prompt")!;

const kb = (n: number): string => n < 10240 ? `${n} B` : `${(n / 1024).toFixed(0)} KB`;
const result: PageResult = {
  text: "",
  engine: "",
  reason: "",
  threads: 0,
  isolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
  tokens: 0,
};

function showIsolation(): void {
  const n = $("notice");
  const bar = $("bar");
  if (result.isolated) {
    n.className = "panel threaded";
    n.textContent =
      "Cross-origin isolated: SharedArrayBuffer is available, the wasm kernels run on threads.";
  } else {
    n.className = "panel fallback";
    n.textContent =
      "Not cross-origin isolated (the server sent no COOP/COEP headers): no SharedArrayBuffer, so the device layers run on 1 thread.";
  }
  n.appendChild(bar);
}

function start(): void {
  const prompt = ($("prompt") as HTMLInputElement).value;
  ($("go") as HTMLButtonElement).disabled = true;
  document.body.dataset.state = "running";
  result.text = "";
  const story = $("story");
  story.innerHTML = "";
  const p = document.createElement("span");
  p.className = "prompt";
  p.textContent = prompt;
  story.appendChild(p);
  const out = document.createTextNode("");
  story.appendChild(out);

  const worker = new Worker("device_worker.js", { type: "module" });
  $("bar").style.visibility = "visible";
  worker.onmessage = (e: MessageEvent<WorkerMessage>) => {
    const m = e.data;
    const fill = $("bar").firstElementChild as HTMLElement;
    if (m.type === "progress") {
      fill.style.width = m.total ? `${(100 * m.done / m.total).toFixed(0)}%` : "100%";
    } else if (m.type === "ready") {
      $("bar").style.visibility = "hidden";
      Object.assign(result, { engine: m.engine, reason: m.reason, threads: m.threads });
      $("s-split").textContent = `${m.split} of ${m.nLayers}`;
      $("engine").textContent = `engine ${m.engine} · ${m.threads} thread${
        m.threads === 1 ? "" : "s"
      } · ${m.reason} · downloaded the device shard: ${kb(m.deviceBytes)} of ${kb(m.wholeBytes)} (${
        (100 * m.deviceBytes / m.wholeBytes).toFixed(0)
      }%) · wire ${wire}`;
    } else if (m.type === "token" || m.type === "done") {
      if (m.type === "token") {
        result.text += m.piece;
        out.textContent = result.text;
      }
      const s = m.stats;
      result.tokens = s.tokens;
      $("s-tokens").textContent = String(s.tokens);
      $("s-speed").textContent = m.ms > 0 ? (s.tokens / (m.ms / 1000)).toFixed(1) : "–";
      $("s-bytes").textContent = s.tokens
        ? `${(s.bytesSent / s.tokens).toFixed(0)} · ${(s.bytesReceived / s.tokens).toFixed(0)}`
        : "–";
      const flops = s.deviceFlops + s.edgeFlops;
      $("s-saved").textContent = flops ? `${(100 * s.deviceFlops / flops).toFixed(0)}%` : "–";
      if (m.type === "done") finish(worker);
    } else if (m.type === "error") {
      result.error = m.message;
      out.textContent = `\n\nerror: ${m.message}`;
      finish(worker);
    }
  };
  const msg: StartMessage = { type: "start", prompt, maxTokens, threads, wire };
  worker.postMessage(msg);
}

function finish(worker: Worker): void {
  worker.terminate();
  (globalThis as { tandemResult?: PageResult }).tandemResult = { ...result };
  document.body.dataset.state = result.error ? "error" : "done";
  ($("go") as HTMLButtonElement).disabled = false;
}

showIsolation();
$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  start();
});
($("go") as HTMLButtonElement).disabled = false;
document.body.dataset.state = "idle";
if (params.get("auto") === "1") start();
