/**
 * Keeps bench/README.md's tables current: each bench replaces only its own section, between
 * `<!-- <name>:begin -->` and `<!-- <name>:end -->`, appending it the first time.
 *
 * @module
 */

/** Renders rows (first = header) as a Markdown table. */
export function markdownTable(rows: (string | number)[][]): string {
  const line = (r: (string | number)[]) => `| ${r.join(" | ")} |`;
  return [line(rows[0]), line(rows[0].map(() => "---")), ...rows.slice(1).map(line)].join("\n");
}

/** Replaces (or appends) the section of bench `name` in bench/README.md. */
export async function updateReadme(name: string, body: string): Promise<void> {
  const path = new URL("./README.md", import.meta.url);
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    text =
      "# Benchmarks\n\nRun `deno task bench <name> [--quick]`; each bench rewrites its section below.\n";
  }
  const begin = `<!-- ${name}:begin -->`, end = `<!-- ${name}:end -->`;
  const section = `${begin}\n${body.trim()}\n${end}`;
  const i = text.indexOf(begin), j = text.indexOf(end);
  text = i >= 0 && j > i
    ? text.slice(0, i) + section + text.slice(j + end.length)
    : `${text.trimEnd()}\n\n${section}\n`;
  await Deno.writeTextFile(path, text);
}
