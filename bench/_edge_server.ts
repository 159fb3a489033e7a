/**
 * The edge in its own process for the load bench: `deno run -A bench/_edge_server.ts
 * --limits '{"ratePerSecond":100}'`, API keys from `TANDEM_API_KEYS`, stories260K from
 * ../shared, a free loopback port; prints `serving <url>` once it listens.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseLlama2c } from "../runtime/formats/llama2c.ts";
import { createEdgeApp } from "../edge/app.ts";
import { parseApiKeys } from "../edge/auth.ts";
import { serveEdge } from "../edge/hosts/deno.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { limits: { type: "string", default: "{}" }, port: { type: "string", default: "0" } },
});
const dir = new URL("../../shared/models/stories260K/", import.meta.url);
const model = parseLlama2c(await Deno.readFile(new URL("stories260K.bin", dir)));
const edge = await createEdgeApp({
  models: [{ id: "stories260K", model }],
  apiKeys: parseApiKeys(Deno.env.get("TANDEM_API_KEYS")),
  limits: JSON.parse(values.limits!),
});
const served = serveEdge(edge.fetch, { port: Number(values.port) });
console.log(`serving ${served.url}`);
