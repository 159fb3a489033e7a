// Installs what `npm run demo` and `npm test` need on a fresh machine with only Node/npm:
// the npm packages (Deno itself among them) and, for the tests, Debian's Chromium for the
// browser suite. Idempotent: does nothing when everything is present.
//
//   node tools/setup.mjs demo|test
import { execSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const what = process.argv[2] ?? "demo";
const run = (cmd) => execSync(cmd, { cwd: root, stdio: ["ignore", "inherit", "inherit"] });

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const missingNpm = Object.keys(pkg.devDependencies ?? {})
  .filter((name) => !existsSync(join(root, "node_modules", name, "package.json")));
if (!existsSync(join(root, "node_modules/.bin/deno")) || missingNpm.length) {
  console.error(
    `setup: installing npm packages (Deno included; missing: ${missingNpm.join(", ") || "deno"}) …`,
  );
  run("npm install --no-audit --no-fund --loglevel=error");
}
// Let Deno lay out node_modules its way now (also after `npm ci`): doing it inside the first
// `deno task` makes Deno 2.9's task runner panic (a node_modules/.bin entry vanishes under it).
if (!existsSync(join(root, "node_modules/.deno"))) {
  run(`"${join(root, "node_modules/.bin/deno")}" install --quiet`);
}

const aptNeeds = what === "test" ? [["chromium", "/usr/bin/chromium"]] : [];
const missing = aptNeeds.filter(([, bin]) => !existsSync(bin)).map(([pkg]) => pkg);
if (missing.length) {
  const isRoot = process.getuid?.() === 0;
  if (isRoot && existsSync("/usr/bin/apt-get")) {
    console.error(`setup: installing ${missing.join(", ")} with apt-get …`);
    run("apt-get update -q");
    run(`DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${missing.join(" ")}`);
  } else {
    console.error(
      `setup: the browser tests need ${missing.join(", ")}; install it (e.g. sudo apt-get install ${
        missing.join(" ")
      })`,
    );
  }
}
