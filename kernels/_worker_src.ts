/**
 * The source of a pool worker, as text: started from a Blob URL (web Workers) or with
 * `eval: true` (Node's worker_threads), so the pool needs no separate file on any host or
 * bundler. It instantiates the kernels on the shared memory with its own stack, then serves
 * jobs announced through the control block (layout in pool.ts) until told to quit.
 *
 * @module
 */

/** Control block slots (Int32 indices), shared by pool.ts and the worker source. */
export const CTRL = {
  GEN: 0, //    job generation: bumped by the caller to announce a job
  DONE: 1, //   workers that finished the current job
  FN: 2, //     index of the export to run
  ROWS: 3, //   rows to split
  NARGS: 4, //  arguments before (r0, r1)
  QUIT: 5, //   1: leave the loop
  NT: 6, //     threads taking part (caller = index 0)
  GRAIN: 7, //  rows per chunk are a multiple of this
  SLEEP: 8, //  workers blocked in Atomics.wait
  ERROR: 9, //  1: a worker's call threw
  SPIN: 10, //  microseconds a worker polls before it sleeps
  ARGS_BYTE: 64, // byte offset of the Float64 arguments
  BYTES: 64 + 8 * 16,
} as const;

/** JavaScript run by each worker. */
export const WORKER_SOURCE = `
const C = ${JSON.stringify(CTRL)};
function serve(init, post) {
  const { module, memory, stackTop, ctrlPtr, index, names } = init;
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  inst.exports.__stack_pointer.value = stackTop;
  const fns = names.map((n) => inst.exports[n]);
  const ctrl = new Int32Array(memory.buffer, ctrlPtr, 16);
  const a = new Float64Array(memory.buffer, ctrlPtr + C.ARGS_BYTE, 16);
  let gen = Atomics.load(ctrl, C.GEN);
  post("ready");
  for (;;) {
    let polls = 0, since = performance.now();
    while (Atomics.load(ctrl, C.GEN) === gen) {
      if ((++polls & 1023) !== 0 || performance.now() - since < ctrl[C.SPIN] / 1000) continue;
      Atomics.add(ctrl, C.SLEEP, 1);
      Atomics.wait(ctrl, C.GEN, gen);
      Atomics.sub(ctrl, C.SLEEP, 1);
      since = performance.now();
    }
    gen = Atomics.load(ctrl, C.GEN);
    if (Atomics.load(ctrl, C.QUIT)) return;
    const rows = ctrl[C.ROWS], nt = ctrl[C.NT], grain = ctrl[C.GRAIN];
    const chunk = Math.ceil(rows / nt / grain) * grain;
    const r0 = Math.min(index * chunk, rows), r1 = Math.min(r0 + chunk, rows);
    if (r0 < r1) {
      const f = fns[ctrl[C.FN]];
      try {
        switch (ctrl[C.NARGS]) {
          case 7: f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], r0, r1); break;
          case 8: f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], r0, r1); break;
          case 10: f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], r0, r1); break;
          default: f(...a.subarray(0, ctrl[C.NARGS]), r0, r1);
        }
      } catch {
        Atomics.store(ctrl, C.ERROR, 1);
      }
    }
    Atomics.add(ctrl, C.DONE, 1);
  }
}
if (typeof self !== "undefined" && typeof self.postMessage === "function") {
  self.onmessage = (e) => { serve(e.data, (m) => self.postMessage(m)); self.close(); };
} else {
  const { parentPort } = require("node:worker_threads");
  parentPort.once("message", (d) => { serve(d, (m) => parentPort.postMessage(m)); parentPort.close(); });
}
`;
