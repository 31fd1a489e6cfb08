// vsnprintf() for printk from modules (lib/vsprintf.c): %d %i %u %x %X %o %c %s %p %% with
// flags, width, precision and length modifiers, plus the %p extensions modules use here:
// %px (raw), %pK and %p (hashed), %pR / %pr (a resource), %pf / %ps / %pS (a function name).

export interface VsprintfEnv {
  /** %p: a hashed pointer, 16 hex digits. */
  hashPointer(v: bigint): string;
  /** %pR / %pr of a resource-like value; null if it is not one. */
  resource(v: unknown, raw: boolean): string | null;
  /** %pf / %ps of a function: "name", or "name [module]" for module code; null if it is none. */
  symbol(v: unknown): string | null;
}

/** 2 * sizeof(void *): the width pointer() gives "(null)" when the format gives none. */
const POINTER_WIDTH = 16;

function toBig(v: unknown): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "number" && Number.isFinite(v)) return BigInt(Math.trunc(v));
  if (typeof v === "boolean") return v ? 1n : 0n;
  if (v && typeof v === "object" && typeof (v as { handle?: unknown }).handle === "number") return BigInt((v as { handle: number }).handle);
  return 0n;
}

function pad(s: string, width: number, left: boolean, zero: boolean): string {
  if (s.length >= width) return s;
  if (left) return s.padEnd(width, " ");
  if (zero) {
    const sign = /^[-+ ]/.test(s) ? s[0] : "";
    const prefix = /^[-+ ]?0[xX]/.test(s) ? s.slice(sign!.length, sign!.length + 2) : "";
    const body = s.slice(sign!.length + prefix.length);
    return sign + prefix + body.padStart(width - sign!.length - prefix.length, "0");
  }
  return s.padStart(width, " ");
}

export function vsprintf(fmt: string, args: readonly unknown[], env: VsprintfEnv): string {
  let out = "";
  let ai = 0;
  const next = () => args[ai++];
  const re = /%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d+))?(hh|h|ll|l|z|t|j|L)?([diouxXcspn%])/g;
  let last = 0;
  for (let m = re.exec(fmt); m; m = re.exec(fmt)) {
    out += fmt.slice(last, m.index);
    last = re.lastIndex;
    const flags = m[1]!;
    let width = m[2] === "*" ? Number(next()) : m[2] ? Number(m[2]) : 0;
    const prec = m[3] === "*" ? Number(next()) : m[3] !== undefined ? Number(m[3]) : -1;
    const len = m[4] ?? "";
    const conv = m[5]!;
    let left = flags.includes("-");
    if (width < 0) {
      left = true;
      width = -width;
    }
    const zero = flags.includes("0") && !left && prec < 0;
    const bits = len === "ll" || len === "l" || len === "z" || len === "t" || len === "j" ? 64n : len === "hh" ? 8n : len === "h" ? 16n : 32n;
    switch (conv) {
      case "%":
        out += "%";
        break;
      case "d":
      case "i": {
        const v = BigInt.asIntN(Number(bits), toBig(next()));
        let s = (v < 0n ? -v : v).toString();
        if (prec >= 0) s = s.padStart(prec, "0");
        s = (v < 0n ? "-" : flags.includes("+") ? "+" : flags.includes(" ") ? " " : "") + s;
        out += pad(s, width, left, zero);
        break;
      }
      case "u":
      case "x":
      case "X":
      case "o": {
        const v = BigInt.asUintN(Number(bits), toBig(next()));
        let s = v.toString(conv === "u" ? 10 : conv === "o" ? 8 : 16);
        if (conv === "X") s = s.toUpperCase();
        if (prec >= 0) s = s.padStart(prec, "0");
        if (flags.includes("#") && v !== 0n) s = (conv === "o" ? "0" : conv === "x" ? "0x" : conv === "X" ? "0X" : "") + s;
        out += pad(s, width, left, zero);
        break;
      }
      case "c":
        out += pad(String.fromCharCode(Number(toBig(next())) & 0xff), width, left, false);
        break;
      case "s": {
        const v = next();
        let s = v === null || v === undefined ? "(null)" : String(v);
        if (prec >= 0) s = s.slice(0, prec);
        out += pad(s, width, left, false);
        break;
      }
      case "p": {
        const v = next();
        const ext = /^[xKRrfsS]/.exec(fmt.slice(last))?.[0];
        if (ext) last++;
        if ((v === null || v === undefined || v === 0 || v === 0n) && ext !== "K" && ext !== "x") {
          // 4.15-5.1 pointer(): "if (!ptr && *fmt != 'K' && *fmt != 'x')" prints "(null)" through
          // string(), as wide as a pointer unless the format says otherwise (check_pointer()
          // replaced this in 5.2). %pK and %px print the NULL like any other pointer.
          out += pad(prec >= 0 ? "(null)".slice(0, prec) : "(null)", m[2] !== undefined ? width : POINTER_WIDTH, left, false);
        } else if (ext === "R" || ext === "r") {
          out += env.resource(v, ext === "r") ?? "[??? invalid]";
        } else if (ext === "f" || ext === "s" || ext === "S") {
          // symbol_string() -> sprint_symbol(): "name [module]", or "0x%lx" of an address that
          // is no symbol; string() pads it.
          let s = env.symbol(v) ?? `0x${BigInt.asUintN(64, toBig(v)).toString(16)}`;
          if (prec >= 0) s = s.slice(0, prec);
          out += pad(s, width, left, false);
        } else {
          const big = BigInt.asUintN(64, toBig(v));
          out += pad(ext === "x" ? big.toString(16).padStart(16, "0") : env.hashPointer(big), width, left, false);
        }
        break;
      }
      case "n":
        break;
    }
  }
  return out + fmt.slice(last);
}
