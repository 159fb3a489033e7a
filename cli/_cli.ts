/**
 * Shared command-line plumbing: strict flag parsing with clear errors, `--help`, and a
 * top-level runner that prints a {@linkcode TandemError} as one line (no stack) and exits
 * with 1 (2 for bad flags).
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import process from "node:process";
import { TandemError } from "../runtime/errors.ts";

/** A flag: its type, default, and one-line help. */
export interface FlagSpec {
  /** "string" or "boolean". */
  type: "string" | "boolean";
  /** Help text. */
  help: string;
  /** Default shown in help (not applied automatically to strings). */
  default?: string | boolean;
  /** One-letter alias. */
  short?: string;
}

/**
 * Parses `args` against `flags`; prints usage on `--help` and exits 0; throws a
 * `bad_argument` TandemError for unknown flags or missing values.
 */
export function parseFlags(
  command: string,
  summary: string,
  flags: Record<string, FlagSpec>,
  args: string[],
): Record<string, string | boolean | undefined> {
  const options: ParseArgsConfig["options"] = { help: { type: "boolean", short: "h" } };
  for (const [name, f] of Object.entries(flags)) {
    options[name] = { type: f.type, ...(f.short ? { short: f.short } : {}) };
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args, options, strict: true, allowPositionals: false }) as {
      values: Record<string, string | boolean | undefined>;
    });
  } catch (e) {
    throw new TandemError("bad_argument", `${(e as Error).message} (see ${command} --help)`);
  }
  if (values.help) {
    const rows = Object.entries(flags).map(([name, f]) => {
      const left = `  --${name}${f.type === "string" ? " <value>" : ""}`;
      const def = f.default !== undefined ? ` (default: ${f.default})` : "";
      return `${left.padEnd(28)} ${f.help}${def}`;
    });
    console.log(`usage: ${command} [flags]\n\n${summary}\n\nflags:\n${rows.join("\n")}`);
    process.exit(0);
  }
  return values;
}

/** Reads a numeric flag: undefined stays undefined; anything not a number is a clear error. */
export function numberFlag(
  values: Record<string, string | boolean | undefined>,
  name: string,
  check: (x: number) => boolean = Number.isFinite,
  what = "a number",
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const x = Number(raw);
  if (typeof raw !== "string" || raw.trim() === "" || !check(x)) {
    throw new TandemError("bad_argument", `--${name} must be ${what}, got "${raw}"`);
  }
  return x;
}

/** Runs `main`, printing errors as one line on stderr and exiting 1 (2 for bad flags). */
export async function runCli(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (e instanceof TandemError) {
      console.error(`error: ${e.message}`);
      process.exit(e.code === "bad_argument" ? 2 : 1);
    }
    console.error(`internal error: ${(e as Error)?.stack ?? e}`);
    process.exit(70);
  }
}
