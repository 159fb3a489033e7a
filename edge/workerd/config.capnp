# workerd config for the tandem edge. Build dist/ first:
#   deno run -A edge/workerd/build.ts [--model FILE] [--tokenizer FILE] [--id ID]
# then serve (the socket address can be overridden with -s http=127.0.0.1:PORT):
#   npx workerd serve edge/workerd/config.capnp
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "edge", worker = .edgeWorker)],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "edge")],
);

const edgeWorker :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "dist/worker.js")],
  bindings = [
    (name = "MODEL", data = embed "dist/model.bin"),
    (name = "TOKENIZER", data = embed "dist/tokenizer.bin"),
    (name = "MODEL_ID", text = embed "dist/model_id.txt"),
  ],
  compatibilityDate = "2025-01-01",
);
