// Lookup in a sorted list of disjoint ranges.

/**
 * The element of `sorted` whose [start(e), end(e)) holds `x`, by binary search; the list must
 * be sorted by start and its ranges must not overlap.
 */
export function findRange<T>(sorted: readonly T[], x: number, start: (e: T) => number, end: (e: T) => number): T | undefined {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const e = sorted[mid]!;
    if (x < start(e)) hi = mid - 1;
    else if (x >= end(e)) lo = mid + 1;
    else return e;
  }
  return undefined;
}
