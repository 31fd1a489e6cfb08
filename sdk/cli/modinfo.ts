// kemu modinfo: show a module file's .modinfo as modinfo(8) (kmod) does, without running it.

import { readFileSync, statSync } from "node:fs";
import { basename, resolve } from "node:path";
import { modinfoEntries, parseKo, signatureInfo } from "../../core/module/ko.ts";
import { parse, UsageError, type Command } from "./command.ts";

const HELP = `Usage: kemu modinfo [options] FILE.ko...

Show the information in a module file, as modinfo(8) does: its filename, then every .modinfo
entry in the order the file has them (license, description, author, srcversion, depends,
retpoline, intree, name, vermagic), then the signature when one is appended.
Nothing in the module runs.

Options:
  -F, --field FIELD    print only FIELD's values, one per line (filename included)
  -a, --author         print only 'author'
  -d, --description    print only 'description'
  -l, --license        print only 'license'
  -n, --filename       print only 'filename'
  -0, --null           end each entry with \\0 instead of a newline
  -h, --help           this help

Exit status: 0 when every file was read, 1 otherwise (kmod's messages on stderr).
`;

/** "a1:b2:..." as kmod prints key ids and signatures. */
function hexColons(b: Buffer): string {
  return [...b].map((x) => x.toString(16).toUpperCase().padStart(2, "0")).join(":");
}

/** kmod_module_get_info(): the .modinfo entries, then the signature's. */
function moduleInfo(bytes: Uint8Array): [string, string][] {
  const info = modinfoEntries(parseKo(bytes).modinfo);
  const sig = signatureInfo(bytes);
  if (sig) {
    info.push(["sig_id", "PKCS#7"], ["signer", ""], ["sig_key", hexColons(sig.keyId)], ["sig_hashalgo", "none"]);
    // kmod wraps the signature at 20 bytes a line, continuation lines indented with two tabs.
    const lines: string[] = [];
    for (let i = 0; i < sig.signature.length; i += 20) lines.push(hexColons(sig.signature.subarray(i, i + 20)));
    info.push(["signature", lines.join(":\n\t\t")]);
  }
  return info;
}

/** modinfo(8)'s "key:" column: printf("%s:%-*s", key, 15 - keylen, ""), where a negative
 *  width is a left-justified positive one. */
function keyColumn(key: string): string {
  return `${key}:${" ".repeat(Math.abs(15 - key.length))}`;
}

/** modinfo_do() for one file: what it prints, or kmod's error. */
export function modinfo(path: string, field: string | null, sep: string): { out: string; err: string | null } {
  const abs = resolve(path);
  // is_module_filename(): a regular file named *.ko (compressed too); anything else is looked
  // up as a module name, and kemu has no modules.dep to find one in.
  let isFile = false;
  try {
    isFile = statSync(abs).isFile();
  } catch {
    // not there
  }
  if (!isFile || !/\.ko(\.(gz|xz|zst))?$/.test(abs)) return { out: "", err: `modinfo: ERROR: Module ${path} not found.` };
  if (field === "filename") return { out: abs + sep, err: null };
  let out = field === null ? keyColumn("filename") + abs + sep : "";
  let info: [string, string][];
  try {
    info = moduleInfo(new Uint8Array(readFileSync(abs)));
  } catch {
    // kmod's path_to_modname(): the file name up to its first '.', '-' read as '_'.
    const name = basename(abs).split(".")[0]!.replaceAll("-", "_");
    return { out, err: `modinfo: ERROR: could not get modinfo from '${name}': Exec format error` };
  }
  for (const [key, value] of info) {
    if (field !== null) {
      if (key === field) out += value + sep;
    } else if (sep === "\0") {
      out += `${key}=${value}${sep}`;
    } else {
      out += keyColumn(key) + value + sep;
    }
  }
  return { out, err: null };
}

export const modinfoCommand: Command = {
  name: "modinfo",
  summary: "show a module file's modinfo, as modinfo(8)",
  help: HELP,
  async run(argv) {
    const { values, positionals } = parse("modinfo", argv, {
      field: { type: "string", short: "F" },
      author: { type: "boolean", short: "a" },
      description: { type: "boolean", short: "d" },
      license: { type: "boolean", short: "l" },
      filename: { type: "boolean", short: "n" },
      null: { type: "boolean", short: "0" },
    }, true);
    if (positionals.length === 0) throw new UsageError("modinfo: missing module file (kemu modinfo FILE.ko)");
    const field = values.field ?? (values.author ? "author" : values.description ? "description" : values.license ? "license" : values.filename ? "filename" : null);
    let status = 0;
    for (const p of positionals) {
      const r = modinfo(p, field, values.null ? "\0" : "\n");
      process.stdout.write(r.out);
      if (r.err) {
        process.stderr.write(r.err + "\n");
        status = 1;
      }
    }
    return status;
  },
};
