// kemu bench: measure DESIGN.md's performance figures, each repeated, with min/median/max.

import { writeFileSync } from "node:fs";
import { FIGURES } from "../../bench/index.ts";
import { runFigures, type Result } from "../../bench/figure.ts";
import { parse, UsageError, type Command } from "./command.ts";

const HELP = `Usage: kemu bench [--json FILE] [--filter A,B] [--repeats N]

Measure kemu's performance figures (DESIGN.md "Performance targets"). Each figure is run
once to warm up and then repeatedly; the table shows min, median and max, and whether the
median meets its target.

Options:
  --json FILE     also write {"figures": {NAME: {"value", "unit", "min", "max", "target"}}}
  --filter LIST   only figures whose names start with one of the comma-separated prefixes
  --repeats N     N samples of each figure instead of its own count (a quick check: 1)
  -h, --help      this help

Figures:
${FIGURES.map((f) => `  ${f.name.padEnd(26)} ${f.what}${f.target ? ` (target ${f.target.op} ${f.target.value} ${f.unit})` : ""}`).join("\n")}
`;

function fmt(n: number): string {
  if (n === 0) return "0";
  const a = Math.abs(n);
  return a >= 100 ? n.toFixed(1) : a >= 1 ? n.toFixed(2) : n.toFixed(4);
}

function table(results: Result[]): string {
  const rows = [["figure", "min", "median", "max", "unit", "target", ""]];
  for (const r of results) {
    rows.push([
      r.name, fmt(r.min), fmt(r.median), fmt(r.max), r.unit,
      r.target ? `${r.target.op} ${r.target.value}` : "reported",
      r.ok === undefined ? "" : r.ok ? "ok" : "MISSED",
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => (c === 0 || c >= 4 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd()).join("\n") + "\n";
}

function progressBar(done: number, total: number, name: string): void {
  if (!process.stderr.isTTY) return;
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(done).padStart(3)}/${total} ${name.padEnd(28)}`);
  if (done === total) process.stderr.write("\r" + " ".repeat(width + 40) + "\r");
}

export const bench: Command = {
  name: "bench",
  summary: "measure the performance figures of DESIGN.md",
  help: HELP,
  async run(argv) {
    const { values } = parse("bench", argv, { json: { type: "string" }, filter: { type: "string" }, repeats: { type: "string" } });
    let repeats: number | undefined;
    if (values.repeats !== undefined) {
      repeats = Number(values.repeats);
      if (!/^\d+$/.test(values.repeats) || repeats < 1 || repeats > 1000) throw new UsageError(`bench: --repeats '${values.repeats}' is not a count from 1 to 1000`);
    }
    const prefixes = values.filter?.split(",").map((s) => s.trim()).filter(Boolean);
    const figures = prefixes ? FIGURES.filter((f) => prefixes.some((p) => f.name.startsWith(p))) : FIGURES;
    if (figures.length === 0) throw new UsageError(`bench: --filter '${values.filter}' matches no figure (see kemu bench --help)`);
    if (!process.stderr.isTTY) process.stderr.write(`kemu bench: ${figures.length} figures on Node ${process.version}\n`);
    const results = await runFigures(figures, progressBar, repeats);
    process.stdout.write(table(results));
    if (values.json) {
      const figuresJson: Record<string, unknown> = {};
      for (const r of results) {
        figuresJson[r.name] = { value: r.median, unit: r.unit, min: r.min, max: r.max, ...(r.target ? { target: `${r.target.op} ${r.target.value}` } : {}) };
      }
      writeFileSync(values.json, JSON.stringify({ node: process.version, figures: figuresJson }, null, 2) + "\n");
    }
    return 0;
  },
};
