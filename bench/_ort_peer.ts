/**
 * The peer of the kernel bench: onnxruntime-web's wasm backend (npm `onnxruntime-web`, its
 * wasm files loaded from node_modules, no network) running one ONNX `MatMul` x: [1, din] ·
 * W: [din, dout] with W as an f32 initializer — the same decode matvec our kernels run.
 *
 * @module
 */

const DIST = new URL("../node_modules/onnxruntime-web/dist/", import.meta.url);

// --- a minimal protobuf writer, enough for an ONNX ModelProto with one node ---
type Field = [number, number | string | Uint8Array | Field[]];
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
function encode(fields: Field[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const [num, v] of fields) {
    if (typeof v === "number") {
      chunks.push(new Uint8Array([...varint(num << 3), ...varint(v)]));
      continue;
    }
    const body = typeof v === "string"
      ? new TextEncoder().encode(v)
      : v instanceof Uint8Array
      ? v
      : encode(v);
    chunks.push(new Uint8Array([...varint((num << 3) | 2), ...varint(body.length)]), body);
  }
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
function valueInfo(name: string, dims: number[]): Field[] {
  const shape: Field[] = dims.map((d) => [1, [[1, d]]] as Field);
  return [[1, name], [2, [[1, [[1, 1], [2, shape]]]]]];
}

/** ONNX bytes of y = x · W for x: [1, din], W: [din, dout] (f32, row-major). */
export function matmulModel(w: Float32Array, din: number, dout: number): Uint8Array {
  const tensor: Field[] = [[1, din], [1, dout], [2, 1], [8, "w"], [
    9,
    new Uint8Array(w.buffer, w.byteOffset, w.byteLength),
  ]];
  const graph: Field[] = [
    [1, [[1, "x"], [1, "w"], [2, "y"], [4, "MatMul"]]],
    [2, "matvec"],
    [5, tensor],
    [11, valueInfo("x", [1, din])],
    [12, valueInfo("y", [1, dout])],
  ];
  return encode([[1, 8], [8, [[1, ""], [2, 17]]], [7, graph]]);
}

/** A loaded peer matmul: run() does one inference. */
export interface PeerMatmul {
  run(): Promise<void>;
  release(): Promise<void>;
}

/** Loads onnxruntime-web (wasm backend, `threads` threads) and a MatMul session. */
export async function ortMatmul(
  w: Float32Array,
  din: number,
  dout: number,
  threads: number,
): Promise<PeerMatmul> {
  const ort = await import(new URL("ort.wasm.min.mjs", DIST).href);
  ort.env.wasm.wasmPaths = DIST.href;
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = "error";
  const session = await ort.InferenceSession.create(matmulModel(w, din, dout), {
    executionProviders: ["wasm"],
  });
  const x = new ort.Tensor("float32", new Float32Array(din).fill(0.5), [1, din]);
  return {
    run: async () => {
      await session.run({ x });
    },
    release: () => session.release(),
  };
}
