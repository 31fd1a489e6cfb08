// Reading MODULE_*() and EXPORT_SYMBOL*() out of driver sources without running them, as
// modpost reads .modinfo and __ksymtab from the object file.

export interface SourceInfo {
  /** [tag, value] in source order (MODULE_LICENSE -> license, MODULE_INFO(tag, v) -> tag). */
  modinfo: [string, string][];
  exports: { name: string; class: "EXPORT_SYMBOL" | "EXPORT_SYMBOL_GPL" | "EXPORT_SYMBOL_GPL_FUTURE" }[];
  errors: string[];
}

const TAGS: Record<string, string> = {
  MODULE_LICENSE: "license",
  MODULE_AUTHOR: "author",
  MODULE_DESCRIPTION: "description",
  MODULE_VERSION: "version",
  MODULE_ALIAS: "alias",
  MODULE_FIRMWARE: "firmware",
  MODULE_SOFTDEP: "softdep",
};

const STRING = String.raw`(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|\x60(?:[^\x60\\$]|\\.)*\x60)`;

/** A JavaScript string literal's value (quotes included in `lit`), with escapes decoded. */
export function decodeStringLiteral(lit: string): string {
  const body = lit.slice(1, -1);
  return body.replace(/\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|0(?![0-9])|[\s\S])/g, (_m, e: string) => {
    if (e[0] === "x") return String.fromCharCode(parseInt(e.slice(1), 16));
    if (e[0] === "u") return String.fromCodePoint(parseInt(e.replace(/[u{}]/g, ""), 16));
    switch (e) {
      case "0":
        return "\0";
      case "n":
        return "\n";
      case "t":
        return "\t";
      case "r":
        return "\r";
      case "b":
        return "\b";
      case "f":
        return "\f";
      case "v":
        return "\v";
      case "\n":
        return "";
      default:
        return e;
    }
  });
}

/** Strip comments so commented-out MODULE_LICENSE lines do not count. */
function stripComments(src: string): string {
  let out = "";
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === "\\" ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else if (src.startsWith("//", i)) {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (src.startsWith("/*", i)) {
      const end = src.indexOf("*/", i + 2);
      out += " ";
      i = end < 0 ? src.length : end + 2;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** The MODULE_*() entries and EXPORT_SYMBOL*() names of one source file. */
export function scanSource(src: string, file: string): SourceInfo {
  const text = stripComments(src);
  const info: SourceInfo = { modinfo: [], exports: [], errors: [] };
  const call = /\b(MODULE_[A-Z_]+|EXPORT_SYMBOL(?:_GPL_FUTURE|_GPL)?)\s*\(/g;
  for (let m = call.exec(text); m; m = call.exec(text)) {
    const macro = m[1]!;
    const rest = text.slice(call.lastIndex);
    if (macro.startsWith("EXPORT_SYMBOL")) {
      const id = /^\s*([A-Za-z_$][\w$]*)\s*[,)]/.exec(rest);
      if (!id) info.errors.push(`${file}: ${macro}() takes the name of a function defined in the module`);
      else info.exports.push({ name: id[1]!, class: macro as SourceInfo["exports"][number]["class"] });
      continue;
    }
    if (macro === "MODULE_INFO") {
      const mm = new RegExp(String.raw`^\s*([A-Za-z_]\w*|${STRING})\s*,\s*(${STRING})\s*\)`).exec(rest);
      if (!mm) {
        info.errors.push(`${file}: MODULE_INFO() takes a tag and a string literal`);
        continue;
      }
      const tag = /^["'`]/.test(mm[1]!) ? decodeStringLiteral(mm[1]!) : mm[1]!;
      info.modinfo.push([tag, decodeStringLiteral(mm[2]!)]);
      continue;
    }
    const tag = TAGS[macro];
    if (!tag) continue; // MODULE_PARM_DESC and friends carry no .modinfo entry of their own here
    const lit = new RegExp(String.raw`^\s*(${STRING})\s*\)`).exec(rest);
    if (!lit) {
      info.errors.push(`${file}: ${macro}() takes a string literal (modinfo is read from the source, not run)`);
      continue;
    }
    if (lit[1]!.startsWith("`") && lit[1]!.includes("${")) {
      info.errors.push(`${file}: ${macro}() takes a string literal without substitutions`);
      continue;
    }
    info.modinfo.push([tag, decodeStringLiteral(lit[1]!)]);
  }
  return info;
}

/** Give EXPORT_SYMBOL*(fn) its name as a second argument, so bundling may rename fn freely. */
export function nameExports(src: string): string {
  return src.replace(/\b(EXPORT_SYMBOL(?:_GPL_FUTURE|_GPL)?)\s*\(\s*([A-Za-z_$][\w$]*)\s*\)/g, (_m, macro: string, id: string) => `${macro}(${id}, ${JSON.stringify(id)})`);
}
