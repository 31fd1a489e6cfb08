// The printk ring buffer (kernel/printk/printk.c): records with a level, a sequence number and
// a virtual-clock timestamp; continuation lines; a size limit that drops the oldest records.

import type { Clock } from "./clock.ts";

export const KERN_SOH = "\x01";
export const KERN_EMERG = KERN_SOH + "0";
export const KERN_ALERT = KERN_SOH + "1";
export const KERN_CRIT = KERN_SOH + "2";
export const KERN_ERR = KERN_SOH + "3";
export const KERN_WARNING = KERN_SOH + "4";
export const KERN_NOTICE = KERN_SOH + "5";
export const KERN_INFO = KERN_SOH + "6";
export const KERN_DEBUG = KERN_SOH + "7";
export const KERN_DEFAULT = KERN_SOH + "d";
export const KERN_CONT = KERN_SOH + "c";

export const LOGLEVEL_EMERG = 0;
export const LOGLEVEL_ALERT = 1;
export const LOGLEVEL_CRIT = 2;
export const LOGLEVEL_ERR = 3;
export const LOGLEVEL_WARNING = 4;
export const LOGLEVEL_NOTICE = 5;
export const LOGLEVEL_INFO = 6;
export const LOGLEVEL_DEBUG = 7;
/** CONFIG_MESSAGE_LOGLEVEL_DEFAULT: the level of a printk without a KERN_ prefix. */
export const MESSAGE_LOGLEVEL_DEFAULT = LOGLEVEL_WARNING;
/** CONFIG_CONSOLE_LOGLEVEL_DEFAULT: messages below this level reach the console. */
export const CONSOLE_LOGLEVEL_DEFAULT = 7;
/** CONFIG_LOG_BUF_SHIFT=17 */
export const LOG_BUF_LEN_DEFAULT = 1 << 17;

export interface PrintkRecord {
  readonly seq: number;
  /** local_clock() at the time the record was stored, in ns. */
  readonly tsNs: number;
  readonly level: number;
  text: string;
}

/** "[    0.000000] " as print_time() makes it. */
export function formatTimestamp(tsNs: number): string {
  const secs = Math.floor(tsNs / 1e9);
  const usecs = Math.floor((tsNs % 1e9) / 1e3);
  return `[${String(secs).padStart(5, " ")}.${String(usecs).padStart(6, "0")}] `;
}

export interface DmesgOptions {
  /** Prefix each line with "<level>" as `dmesg -r` does. */
  raw?: boolean;
  /** Only records at this level or more severe (lower number). */
  level?: number;
  /** Only records with seq >= since (see PrintkLog.nextSeq). */
  since?: number;
}

export class PrintkLog {
  readonly #clock: Clock;
  readonly #capacity: number;
  #records: PrintkRecord[] = [];
  #first = 0; // index of the oldest live record in #records
  #bytes = 0;
  #nextSeq = 0;
  /** The record still open for KERN_CONT, if the last printk had no trailing newline. */
  #cont: PrintkRecord | null = null;
  /** cont.owner: only the task that opened a line may continue it. */
  #contOwner: unknown = null;
  /** Who is printing (the current task); set by the kernel once it has tasks. */
  owner: () => unknown = () => null;
  #listeners: ((rec: PrintkRecord, line: string) => void)[] = [];
  consoleLoglevel = CONSOLE_LOGLEVEL_DEFAULT;

  constructor(clock: Clock, capacity = LOG_BUF_LEN_DEFAULT) {
    this.#clock = clock;
    this.#capacity = capacity;
  }

  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Called with every completed line (for consoles and tracers). */
  onLine(fn: (rec: PrintkRecord, line: string) => void): void {
    this.#listeners.push(fn);
  }

  /** printk(): the text may start with a KERN_ level and may hold several lines. */
  printk(text: string): void {
    let level = -1;
    let cont = false;
    // vprintk_emit(): the first KERN_<LEVEL> wins; KERN_DEFAULT leaves the level alone.
    while (text.length >= 2 && text[0] === KERN_SOH) {
      const c = text[1]!;
      if (c >= "0" && c <= "7") {
        if (level === -1) level = c.charCodeAt(0) - 48;
      } else if (c === "c") cont = true;
      else if (c !== "d") break;
      text = text.slice(2);
    }
    // log_output(): a KERN_CONT fragment joins the open record whatever level it names.
    if (cont && this.#cont && this.#contOwner === this.owner()) {
      this.#bytes -= recordSize(this.#cont);
      this.#cont.text += text;
      this.#bytes += recordSize(this.#cont);
      if (text.endsWith("\n")) this.#closeCont();
      return;
    }
    this.#closeCont();
    // "Skip empty continuation lines that couldn't be added - they just flush".
    if (cont && (text === "" || text === "\n")) return;
    const rec: PrintkRecord = {
      seq: this.#nextSeq++,
      tsNs: this.#clock.now(),
      level: level === -1 ? MESSAGE_LOGLEVEL_DEFAULT : level,
      text,
    };
    this.#store(rec);
    if (text.endsWith("\n")) this.#emit(rec);
    else {
      this.#cont = rec;
      this.#contOwner = this.owner();
    }
  }

  #closeCont(): void {
    const rec = this.#cont;
    if (!rec) return;
    this.#cont = null;
    this.#emit(rec);
  }

  #emit(rec: PrintkRecord): void {
    if (this.#listeners.length === 0) return;
    for (const line of splitLines(rec.text)) {
      for (const fn of this.#listeners) fn(rec, formatTimestamp(rec.tsNs) + line);
    }
  }

  #store(rec: PrintkRecord): void {
    this.#records.push(rec);
    this.#bytes += recordSize(rec);
    // Drop the oldest records once the buffer is over its size, as the ring buffer does.
    while (this.#bytes > this.#capacity && this.#first < this.#records.length - 1) {
      this.#bytes -= recordSize(this.#records[this.#first]!);
      this.#first++;
    }
    if (this.#first > 4096 && this.#first * 2 > this.#records.length) {
      this.#records = this.#records.slice(this.#first);
      this.#first = 0;
    }
  }

  records(since = 0): PrintkRecord[] {
    const out: PrintkRecord[] = [];
    for (let i = this.#first; i < this.#records.length; i++) {
      const r = this.#records[i]!;
      if (r.seq >= since) out.push(r);
    }
    return out;
  }

  /** The lines `dmesg` prints, each "[    1.234567] text". */
  lines(opts: DmesgOptions = {}): string[] {
    const out: string[] = [];
    for (const r of this.records(opts.since ?? 0)) {
      if (opts.level !== undefined && r.level > opts.level) continue;
      const prefix = (opts.raw ? `<${r.level}>` : "") + formatTimestamp(r.tsNs);
      for (const line of splitLines(r.text)) out.push(prefix + line);
    }
    return out;
  }

  /** The text of every record, without timestamps (what tests usually compare). */
  messages(since = 0): string[] {
    const out: string[] = [];
    for (const r of this.records(since)) for (const line of splitLines(r.text)) out.push(line);
    return out;
  }
}

function splitLines(text: string): string[] {
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  return body.split("\n");
}

// struct printk_log is 16 bytes and holds the text without its trailing newline; x86 has
// CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS, so LOG_ALIGN is 4.
function recordSize(rec: PrintkRecord): number {
  const textLen = rec.text.endsWith("\n") ? rec.text.length - 1 : rec.text.length;
  return (16 + textLen + 3) & ~3;
}
