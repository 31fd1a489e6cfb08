// Number and boolean parsing as lib/kstrtox.c and lib/vsprintf.c (4.20) do it: one base-0
// integer parser (simple_strtoull()) and kstrtobool().

const U64 = 0xffffffffffffffffn;

function digitValue(c: string): number {
  const code = c.charCodeAt(0);
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return 16;
}

/**
 * simple_strtoull(s + start, &end, 0): _parse_integer_fixup_radix() picks the base ("0x" and a
 * hex digit: 16, a leading "0": 8, else 10) and _parse_integer() takes digits while they fit
 * it. The value wraps at 64 bits as the kernel's does. `end` is the index after the last
 * character taken; `end === start` means no digit at all (the value is then 0).
 */
export function simple_strtoull(s: string, start = 0): { value: bigint; end: number } {
  let i = start;
  let base = 10;
  if (s[i] === "0") {
    if ((s[i + 1] === "x" || s[i + 1] === "X") && i + 2 < s.length && digitValue(s[i + 2]!) < 16) {
      base = 16;
      i += 2;
    } else {
      base = 8;
    }
  }
  let value = 0n;
  const b = BigInt(base);
  for (; i < s.length; i++) {
    const d = digitValue(s[i]!);
    if (d >= base) break;
    value = (value * b + BigInt(d)) & U64;
  }
  return { value, end: i };
}

/**
 * simple_strtoll(s, NULL, 0) as simple_attr_write() uses it: junk reads as 0, never an error.
 * Unlike lib/vsprintf.c, leading whitespace and a '+' are skipped (kemu has always done so).
 */
export function simple_strtoll(s: string): number {
  const m = /^\s*([+-]?)/.exec(s)!;
  const { value } = simple_strtoull(s, m[0].length);
  return Number(BigInt.asIntN(64, m[1] === "-" ? -value : value));
}

/** kstrtobool() (4.20): the first character decides; "on"/"off" look at the second. */
export function kstrtobool(s: string): boolean | null {
  switch (s[0]) {
    case "y": case "Y": case "1":
      return true;
    case "n": case "N": case "0":
      return false;
    case "o": case "O":
      if (s[1] === "n" || s[1] === "N") return true;
      if (s[1] === "f" || s[1] === "F") return false;
      return null;
    default:
      return null;
  }
}
