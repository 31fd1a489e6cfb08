// A benchmark figure: how to measure one number, and what DESIGN.md asks of it.

export interface Target {
  op: "<=" | ">=";
  value: number;
}

export interface Figure<Ctx = unknown> {
  /** The JSON name in DESIGN.md's performance table. */
  readonly name: string;
  readonly unit: string;
  /** DESIGN.md's target, or undefined for figures that are only reported. */
  readonly target?: Target;
  readonly repeats: number;
  /** One-line description for the table. */
  readonly what: string;
  setup(): Promise<Ctx>;
  /** One measurement. */
  sample(ctx: Ctx): Promise<number> | number;
  teardown(ctx: Ctx): Promise<void> | void;
}

export interface Result {
  name: string;
  unit: string;
  what: string;
  min: number;
  median: number;
  max: number;
  samples: number[];
  target?: Target;
  /** Whether the median meets the target (undefined when there is none). */
  ok?: boolean;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function meets(value: number, t: Target): boolean {
  return t.op === "<=" ? value <= t.value : value >= t.value;
}

/**
 * Run figures one after another, reporting progress through `progress(done, total, name)`;
 * `repeats` replaces each figure's own count of samples.
 */
export async function runFigures(figures: readonly Figure<any>[], progress: (done: number, total: number, name: string) => void, repeats?: number): Promise<Result[]> {
  const count = (f: Figure<any>) => repeats ?? f.repeats;
  const total = figures.reduce((n, f) => n + count(f) + 1, 0);
  let done = 0;
  const results: Result[] = [];
  for (const f of figures) {
    const ctx = await f.setup();
    try {
      progress(done, total, f.name);
      await f.sample(ctx); // warm-up, not counted
      progress(++done, total, f.name);
      const samples: number[] = [];
      for (let i = 0; i < count(f); i++) {
        samples.push(await f.sample(ctx));
        progress(++done, total, f.name);
      }
      const med = median(samples);
      const r: Result = { name: f.name, unit: f.unit, what: f.what, min: Math.min(...samples), median: med, max: Math.max(...samples), samples };
      if (f.target) {
        r.target = f.target;
        r.ok = meets(med, f.target);
      }
      results.push(r);
    } finally {
      await f.teardown(ctx);
    }
  }
  return results;
}

/** A full collection, so heap and RSS figures are settled; bench runs with --expose-gc. */
export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error("kemu bench needs --expose-gc (run it as `npx kemu bench` or `npm run bench`)");
  g();
}
