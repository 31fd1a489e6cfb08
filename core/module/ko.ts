// The module file (NAME.ko): one self-describing file, laid out like the parts of an ELF
// module the loader reads. A header names the module (.gnu.linkonce.this_module), carries
// .modinfo as NUL-separated "tag=value" strings, the undefined symbols, __versions and the
// module's own exports (__ksymtab*), then the code. A signature may be appended exactly as
// scripts/sign-file appends one: signature, struct module_signature, "~Module signature appended~\n".

import { createHash, createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from "node:crypto";
import { EBADMSG, EKEYREJECTED, ENOEXEC, ENOKEY, ENOPKG } from "../errno.ts";
import type { ExportClass } from "./ksymtab.ts";

const MAGIC = [0x7f, 0x4b, 0x4d, 0x4f]; // "\x7fKMO"
const FORMAT = 1;
export const MODULE_SIG_STRING = "~Module signature appended~\n";
/** struct module_signature id_type for a PKCS#7 message, the only one 4.19-5.0 accept. */
export const PKEY_ID_PKCS7 = 2;
const SIG_HEADER = 12;
/** kemu's stand-in for the PKCS#7 blob: a tag, the signer's key id, an Ed25519 signature. */
const PKCS7_TAG = "KEMU-PKCS7";

export interface KoExport {
  name: string;
  class: ExportClass;
  /** The CRC from __kcrctab, or null when built without MODVERSIONS. */
  crc: number | null;
}

export interface KoImage {
  /** mod->name: KBUILD_MODNAME, compiled into .gnu.linkonce.this_module. */
  thisModule: string;
  /** .modinfo: "tag=value" entries separated by NUL bytes. */
  modinfo: string;
  /** Undefined symbols, in symbol-table order. */
  undefinedSymbols: { name: string; weak: boolean }[];
  /** __versions: the CRC of each symbol it was built against, or null without MODVERSIONS. */
  versions: { name: string; crc: number }[] | null;
  /** __ksymtab / __ksymtab_gpl / __ksymtab_gpl_future */
  exports: KoExport[];
  /** The kemu/kernel names the code imports (functions, inlines, constants). */
  imports: string[];
  /** ES module text; it imports only from "kemu/kernel". */
  code: string;
}

/** get_modinfo(): the value of the first entry "tag=...", or undefined. */
export function get_modinfo(modinfo: string, tag: string): string | undefined {
  for (const entry of modinfo.split("\0")) {
    if (entry.startsWith(tag + "=")) return entry.slice(tag.length + 1);
  }
  return undefined;
}

/** The kemu/kernel names module code imports: `import { a, b as c } from "kemu/kernel"`. */
export function codeImports(code: string): string[] {
  const names = new Set<string>();
  for (const m of code.matchAll(/import\s*\{([^}]*)\}\s*from\s*"kemu\/kernel"/g)) {
    for (const part of m[1]!.split(",")) {
      const n = part.trim().split(/\s+as\s+/)[0]!.trim();
      if (n) names.add(n);
    }
  }
  return [...names];
}

/** Every "tag=value" entry, in order (what modinfo(8) lists). */
export function modinfoEntries(modinfo: string): [string, string][] {
  const out: [string, string][] = [];
  for (const entry of modinfo.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) out.push([entry.slice(0, eq), entry.slice(eq + 1)]);
  }
  return out;
}

export function serializeKo(img: KoImage): Uint8Array {
  const enc = new TextEncoder();
  const header = enc.encode(JSON.stringify({ ...img, code: undefined }));
  const code = enc.encode(img.code);
  const out = new Uint8Array(8 + 4 + header.length + 4 + code.length);
  out.set(MAGIC, 0);
  out[4] = FORMAT;
  const dv = new DataView(out.buffer);
  dv.setUint32(8, header.length, true);
  out.set(header, 12);
  dv.setUint32(12 + header.length, code.length, true);
  out.set(code, 16 + header.length);
  return out;
}

export class KoFormatError extends Error {
  readonly errno = ENOEXEC;
}

/** elf_header_check() and section parsing: the image, or KoFormatError. */
export function parseKo(bytes: Uint8Array): KoImage {
  const bad = (why: string) => new KoFormatError(`invalid module format: ${why}`);
  if (bytes.length < 16 || MAGIC.some((b, i) => bytes[i] !== b)) throw bad("bad magic");
  if (bytes[4] !== FORMAT) throw bad(`unknown format version ${bytes[4]}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = dv.getUint32(8, true);
  if (12 + hlen + 4 > bytes.length) throw bad("truncated header");
  const clen = dv.getUint32(12 + hlen, true);
  // What follows the code (an appended signature) is not a section: the parser ignores it.
  if (16 + hlen + clen > bytes.length) throw bad("section sizes do not add up");
  const dec = new TextDecoder("utf-8", { fatal: true });
  let h: Record<string, unknown>;
  try {
    h = JSON.parse(dec.decode(bytes.subarray(12, 12 + hlen))) as Record<string, unknown>;
  } catch {
    throw bad("unreadable header");
  }
  const code = dec.decode(bytes.subarray(16 + hlen, 16 + hlen + clen));
  const str = (v: unknown) => typeof v === "string";
  const arr = (v: unknown) => Array.isArray(v);
  if (!str(h["thisModule"]) || !str(h["modinfo"]) || !arr(h["undefinedSymbols"]) || !arr(h["exports"]) || !arr(h["imports"])) {
    throw bad("missing sections");
  }
  const name = h["thisModule"] as string;
  if (!/^[A-Za-z0-9_-]{1,55}$/.test(name)) throw bad(`bad module name ${JSON.stringify(name)}`);
  const und = h["undefinedSymbols"] as unknown[];
  if (!und.every((u) => typeof u === "object" && u !== null && str((u as { name: unknown }).name))) throw bad("bad symbol table");
  const versions = h["versions"];
  if (versions !== null && !(arr(versions) && (versions as unknown[]).every((v) => typeof v === "object" && v !== null && str((v as { name: unknown }).name) && typeof (v as { crc: unknown }).crc === "number"))) {
    throw bad("bad __versions");
  }
  const exps = h["exports"] as unknown[];
  if (!exps.every((e) => typeof e === "object" && e !== null && str((e as KoExport).name) && ["EXPORT_SYMBOL", "EXPORT_SYMBOL_GPL", "EXPORT_SYMBOL_GPL_FUTURE"].includes((e as KoExport).class))) {
    throw bad("bad __ksymtab");
  }
  if (!(h["imports"] as unknown[]).every(str)) throw bad("bad import list");
  return {
    thisModule: name,
    modinfo: h["modinfo"] as string,
    undefinedSymbols: und.map((u) => ({ name: (u as { name: string }).name, weak: (u as { weak?: unknown }).weak === true })),
    versions: versions === null ? null : (versions as { name: string; crc: number }[]).map((v) => ({ name: v.name, crc: v.crc >>> 0 })),
    exports: exps.map((e) => ({ name: (e as KoExport).name, class: (e as KoExport).class, crc: typeof (e as KoExport).crc === "number" ? (e as KoExport).crc : null })),
    imports: h["imports"] as string[],
    code,
  };
}

/** The 8-byte key identifier kemu puts in its PKCS#7 stand-in: a hash of the public key. */
export function keyId(pub: KeyObject): Buffer {
  return createHash("sha256").update(pub.export({ type: "spki", format: "der" })).digest().subarray(0, 8);
}

/** scripts/sign-file: append a signature made with an Ed25519 private key (PEM). */
export function signKo(payload: Uint8Array, privateKeyPem: string): Uint8Array {
  const priv = createPrivateKey(privateKeyPem);
  const pub = createPublicKey(priv);
  const sig = edSign(null, payload, priv);
  const blob = Buffer.concat([Buffer.from(PKCS7_TAG + "\0"), keyId(pub), sig]);
  const header = Buffer.alloc(SIG_HEADER);
  header[2] = PKEY_ID_PKCS7;
  header.writeUInt32BE(blob.length, 8);
  return Buffer.concat([payload, blob, header, Buffer.from(MODULE_SIG_STRING)]);
}

export interface SigCheck {
  /** The module without its signature (what the rest of the loader reads). */
  payload: Uint8Array;
  /** 0 when verified; -ENOKEY unsigned or unknown key; other errors are fatal. */
  err: number;
  /** What mod_verify_sig() would have printed (pr_err), if anything. */
  message?: string;
}

/** An appended signature split off its module: the parts mod_verify_sig() reads. */
interface AppendedSig {
  payload: Uint8Array;
  info: Buffer;
  blob: Buffer;
}

/** The signature's parts, null when none is appended, or an errno when it is malformed. */
function splitSignature(bytes: Uint8Array): AppendedSig | null | number {
  const marker = Buffer.from(MODULE_SIG_STRING);
  const len = bytes.length;
  if (len <= marker.length || !Buffer.from(bytes.subarray(len - marker.length)).equals(marker)) return null;
  let modlen = len - marker.length;
  if (modlen <= SIG_HEADER) return -EBADMSG;
  const info = Buffer.from(bytes.subarray(modlen - SIG_HEADER, modlen));
  modlen -= SIG_HEADER;
  const sigLen = info.readUInt32BE(8);
  if (sigLen >= modlen) return -EBADMSG;
  modlen -= sigLen;
  return { payload: bytes.subarray(0, modlen), info, blob: Buffer.from(bytes.subarray(modlen, modlen + sigLen)) };
}

/** The signer's key id and the signature of kemu's PKCS#7 stand-in, or null. */
function pkcs7Parts(blob: Buffer): { keyId: Buffer; signature: Buffer } | null {
  const tag = Buffer.from(PKCS7_TAG + "\0");
  if (blob.length !== tag.length + 8 + 64 || !blob.subarray(0, tag.length).equals(tag)) return null;
  return { keyId: blob.subarray(tag.length, tag.length + 8), signature: blob.subarray(tag.length + 8) };
}

/** What modinfo(8) shows of an appended signature, or null when the module is unsigned. */
export function signatureInfo(bytes: Uint8Array): { keyId: Buffer; signature: Buffer } | null {
  const sig = splitSignature(bytes);
  return sig && typeof sig === "object" && sig.info[2] === PKEY_ID_PKCS7 ? pkcs7Parts(sig.blob) : null;
}

/**
 * module_sig_check()'s first half: strip and verify an appended signature (mod_verify_sig()).
 * Unsigned modules come back with -ENOKEY, as 4.19-5.0 report them.
 */
export function checkSignature(bytes: Uint8Array, trusted: readonly KeyObject[]): SigCheck {
  const sig = splitSignature(bytes);
  if (sig === null) return { payload: bytes, err: -ENOKEY };
  if (typeof sig === "number") return { payload: bytes, err: sig };
  const { payload, info: ms } = sig;
  if (ms[2] !== PKEY_ID_PKCS7) return { payload, err: -ENOPKG, message: "Module is not signed with expected PKCS#7 message" };
  if (ms[0] || ms[1] || ms[3] || ms[4] || ms[5] || ms[6] || ms[7]) {
    return { payload, err: -EBADMSG, message: "PKCS#7 signature info has unexpected non-zero params" };
  }
  const parts = pkcs7Parts(sig.blob);
  if (!parts) return { payload, err: -EBADMSG };
  const key = trusted.find((k) => keyId(k).equals(parts.keyId));
  if (!key) return { payload, err: -ENOKEY };
  const ok = edVerify(null, payload, key, parts.signature);
  return { payload, err: ok ? 0 : -EKEYREJECTED };
}
