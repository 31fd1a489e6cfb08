// Seeded randomness (principle 9): prandom_u32() and get_random_*() draw from here, so a
// boot with the same seed prints the same oops ids and takes the same fault-injection paths.

/** SplitMix64 over BigInt-free 32-bit halves: small, fast, and good enough for a kernel model. */
export class Prandom {
  #a: number;
  #b: number;

  constructor(seed: number) {
    this.#a = (seed ^ 0x9e3779b9) >>> 0;
    this.#b = (Math.imul(seed, 0x85ebca6b) ^ 0xc2b2ae35) >>> 0;
    for (let i = 0; i < 8; i++) this.u32();
  }

  /** prandom_u32() */
  u32(): number {
    // xorshift64 on two 32-bit words
    let a = this.#a;
    let b = this.#b;
    const t = a ^ (a << 11);
    a = b;
    b = (b ^ (b >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    this.#a = a >>> 0;
    this.#b = b;
    return (a + b) >>> 0;
  }

  /** 64 random bits as 16 hex digits (get_random_bytes() into a u64). */
  hex64(): string {
    return this.u32().toString(16).padStart(8, "0") + this.u32().toString(16).padStart(8, "0");
  }
}
