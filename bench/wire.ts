/**
 * `deno task bench wire [--quick]`: what the split costs on the wire and at the edge, on
 * stories260K split at layer 2, with real boundary activations of a greedy run.
 *
 * | part       | what                                                                     | baseline      |
 * | ---------- | ------------------------------------------------------------------------ | ------------- |
 * | bytes      | bytes per decoded token each way, per wire dtype, from real sessions; int8/f16 reconstruction error | f32 |
 * | throughput | edge decode frames/s: the engine alone; the app in process; over HTTP on loopback with 1 and N concurrent sessions | the engine alone |
 *
 * Writes bench/results/wire.json (wire-quick.json with `--quick`). `--quick` uses fewer tokens and sessions (well under a minute).
 *
 * @module
 */

import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { RefEngine } from "../runtime/forward.ts";
import { generate } from "../runtime/generate.ts";
import { digestModel, hexToBytes } from "../runtime/digest.ts";
import { createSession } from "../runtime/session.ts";
import { decodeFrame, encodeFrame, WIRE_DTYPES, type WireDtype } from "../runtime/wire.ts";
import { readReply } from "../runtime/wire_reply.ts";
import { rowBytes } from "../runtime/wire_payload.ts";
import { createEdgeApp, type EdgeApp } from "../edge/app.ts";
import { serveEdge } from "../edge/hosts/deno.ts";
import { uuidBytes } from "../edge/split_forward.ts";
import { printTable, writeResults } from "./_results.ts";

const DIR = new URL("../../shared/models/stories260K/", import.meta.url);
const ID = "stories260K";
const K = 2;
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", DIR)));
const digest = (await digestModel(model)).modelDigest!;
const { dim, nLayers } = model.config;

function boundaryRows(tokens: number[]): Float32Array {
  const e = new RefEngine(model);
  return e.forward(e.createCache([0, K]), e.embed(tokens), 0, 0, K);
}

async function bytesPerToken(
  url: string,
  wire: WireDtype,
  n: number,
): Promise<Record<string, number>> {
  const s = await createSession({ model, modelId: ID, split: K, edge: url, wire });
  let count = 0;
  for await (const _ of s.generate([1], { maxTokens: n, stopAtEos: false })) count++;
  await s.close();
  const rows = boundaryRows([
    1,
    ...generate(new RefEngine(model), [1], { maxTokens: n, stopAtEos: false }),
  ]);
  let maxRel = 0;
  let sq = 0;
  let ref = 0;
  const back = decodeFrame(encodeFrame({
    dtype: wire,
    split: K,
    dim,
    pos: 0,
    seq: 0,
    modelId: ID,
    session: new Uint8Array(16),
    digest: hexToBytes(digest),
    rows,
  })).rows;
  for (let t = 0; t < rows.length / dim; t++) {
    let max = 0;
    for (let i = 0; i < dim; i++) max = Math.max(max, Math.abs(rows[t * dim + i]));
    for (let i = 0; i < dim; i++) {
      const err = back[t * dim + i] - rows[t * dim + i];
      maxRel = Math.max(maxRel, Math.abs(err) / max);
      sq += err * err;
      ref += rows[t * dim + i] ** 2;
    }
  }
  return {
    sentPerToken: s.stats.bytesSent / count,
    receivedPerToken: s.stats.bytesReceived / count,
    maxErrorOfRowMax: maxRel,
    relativeRms: Math.sqrt(sq / ref),
  };
}

/** Frames/s of `sessions` concurrent decode loops of `steps` frames each, through `send`. */
async function decodeRate(
  edge: EdgeApp,
  send: (path: string, body: Uint8Array<ArrayBuffer>) => Promise<Response>,
  sessions: number,
  steps: number,
  rows: Float32Array,
): Promise<number> {
  const one = async () => {
    const opened = await send(
      "/v1/sessions",
      new TextEncoder().encode(JSON.stringify({ model: ID, split: K, digest })),
    );
    const { id } = await opened.json();
    for (let pos = 0; pos < steps; pos++) {
      const frame = encodeFrame({
        dtype: "f32",
        split: K,
        dim,
        pos,
        seq: pos,
        modelId: ID,
        session: uuidBytes(id),
        digest: hexToBytes(digest),
        rows: rows.subarray(pos * dim, (pos + 1) * dim),
      });
      const res = await send(`/v1/sessions/${id}/forward`, frame);
      if (!res.ok) throw new Error(`edge answered ${res.status}: ${await res.text()}`);
      await readReply(res.body!, () => {});
    }
    edge.sessions.delete(id);
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: sessions }, one));
  return (sessions * steps) / ((performance.now() - t0) / 1000);
}

/** The baseline: the same decode steps through the engine directly (no wire, no HTTP). */
function engineRate(steps: number, rows: Float32Array, repeats: number): number {
  const e = new RefEngine(model);
  const t0 = performance.now();
  for (let r = 0; r < repeats; r++) {
    const cache = e.createCache([K, nLayers]);
    for (let pos = 0; pos < steps; pos++) {
      e.head(e.forward(cache, rows.subarray(pos * dim, (pos + 1) * dim), pos, K, nLayers));
    }
  }
  return (repeats * steps) / ((performance.now() - t0) / 1000);
}

/** Runs the bench. */
export async function run(args: string[]): Promise<void> {
  const quick = args.includes("--quick");
  const steps = quick ? 64 : 256;
  const many = quick ? 8 : 32;
  const rows = boundaryRows([
    1,
    ...generate(new RefEngine(model), [1], { maxTokens: steps - 1, stopAtEos: false }),
  ]);
  const edge = await createEdgeApp({ models: [{ id: ID, model }], limits: { maxSessions: 1024 } });
  const server = serveEdge(edge.fetch);
  try {
    const bytes: Record<string, Record<string, number>> = {};
    for (const wire of WIRE_DTYPES) bytes[wire] = await bytesPerToken(server.url, wire, steps);
    console.log(
      `\nwire bytes per decoded token (stories260K, dim ${dim}, split ${K}, ${steps} tokens)`,
    );
    printTable([
      [
        "dtype",
        "sent B/token",
        "vs f32",
        "payload B/row",
        "vs f32",
        "received B/token",
        "max err / row max",
        "relative RMS",
      ],
      ...WIRE_DTYPES.map((w) => [
        w,
        bytes[w].sentPerToken,
        `${(bytes[w].sentPerToken / bytes.f32.sentPerToken).toFixed(2)}x`,
        rowBytes(w, dim),
        `${(rowBytes(w, dim) / rowBytes("f32", dim)).toFixed(2)}x`,
        bytes[w].receivedPerToken,
        bytes[w].maxErrorOfRowMax.toExponential(2),
        bytes[w].relativeRms.toExponential(2),
      ]),
    ]);

    engineRate(steps, rows, 2); // warm-up
    const base = engineRate(steps, rows, quick ? 4 : 8);
    const inProcess = (p: string, body: Uint8Array<ArrayBuffer>) =>
      edge.fetch(new Request(`http://edge${p}`, { method: "POST", body }));
    const http = (p: string, body: Uint8Array<ArrayBuffer>) =>
      fetch(`${server.url}${p}`, { method: "POST", body });
    await decodeRate(edge, inProcess, 1, steps, rows); // warm-up
    const rates = {
      engine: base,
      appInProcess: await decodeRate(edge, inProcess, 1, steps, rows),
      http1: await decodeRate(edge, http, 1, steps, rows),
      [`http${many}`]: await decodeRate(edge, http, many, steps, rows),
    };
    console.log(
      `\nedge decode throughput (frames/s, layers [${K}, ${nLayers}) + head, f32 frames, ${steps} steps per session)`,
    );
    printTable([
      ["path", "frames/s", "vs engine alone"],
      ["engine alone (baseline)", base, "1.00x"],
      [
        "edge app, in process, 1 session",
        rates.appInProcess,
        `${(rates.appInProcess / base).toFixed(2)}x`,
      ],
      ["HTTP loopback, 1 session", rates.http1, `${(rates.http1 / base).toFixed(2)}x`],
      [
        `HTTP loopback, ${many} sessions`,
        rates[`http${many}`],
        `${(rates[`http${many}`] / base).toFixed(2)}x`,
      ],
    ]);
    const path = await writeResults(quick ? "wire-quick" : "wire", {
      quick,
      steps,
      split: K,
      dim,
      bytes,
      framesPerSecond: rates,
    });
    console.log(`\nwrote ${path}`);
  } finally {
    await server.close();
    edge.dispose();
  }
}
