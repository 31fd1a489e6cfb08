// Kernel objects handed to modules as integer handles, like file descriptors (principle 3).
// One handle space for the whole kernel: every entry records its owning module, its type and
// whether the object is still alive, and every use checks all three, so a forged, foreign,
// mistyped or stale handle is refused without touching anything.

import { object_generation } from "../lib/lifetime.ts";

export interface HandleEntry {
  readonly obj: object;
  readonly type: string;
  /** The module the handle was given to. */
  readonly owner: string;
  /** The object's life (lifetime.ts) the handle was given out in. */
  readonly generation: number;
}

/** Sweep stale entries after this many new handles, so freed objects are not kept alive. */
const SWEEP_EVERY = 4096;

/** Why a handle was refused; the caller turns it into an error line and an errno. */
export class HandleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HandleError";
  }
}

export class HandleTable {
  readonly #entries = new Map<number, HandleEntry>();
  /** (owner, object) -> handle, so the same object keeps its handle in one module. */
  readonly #byObject = new Map<string, WeakMap<object, number>>();
  #next = 1;
  #sinceSweep = 0;

  /** The handle `owner` uses for `obj` (created on first use). */
  handleFor(owner: string, obj: object, type: string): number {
    let byObj = this.#byObject.get(owner);
    if (!byObj) this.#byObject.set(owner, (byObj = new WeakMap()));
    const h = byObj.get(obj);
    if (h !== undefined) {
      const e = this.#entries.get(h);
      if (e && !stale(e)) return h;
    }
    if (++this.#sinceSweep >= SWEEP_EVERY) this.#sweep();
    const id = this.#next++;
    this.#entries.set(id, { obj, type, owner, generation: object_generation(obj) });
    byObj.set(obj, id);
    return id;
  }

  /** Forget handles to dead objects; using one afterwards reads as a handle never given. */
  #sweep(): void {
    this.#sinceSweep = 0;
    for (const [h, e] of this.#entries) if (stale(e)) this.#entries.delete(h);
  }

  /** The object behind `h`, checked: it exists, belongs to `owner`, has `type`, is alive. */
  get<T extends object>(owner: string, h: unknown, type: string): T {
    if (typeof h !== "number" || !Number.isInteger(h) || h <= 0) throw new HandleError(`${describe(h)} is not a ${type} handle`);
    const e = this.#entries.get(h);
    if (!e) throw new HandleError(`handle ${h} does not exist (expected ${type})`);
    if (e.owner !== owner) throw new HandleError(`handle ${h} belongs to ${e.owner}, not to ${owner}`);
    if (e.type !== type) throw new HandleError(`handle ${h} is a ${e.type}, not a ${type}`);
    if (stale(e)) throw new HandleError(`handle ${h} (${type}) refers to an object that is gone`);
    return e.obj as T;
  }


  /** The entry behind `owner`'s handle `h` when it is alive, else null (no checks reported). */
  lookup(owner: string, h: number): HandleEntry | null {
    const e = this.#entries.get(h);
    return e && e.owner === owner && !stale(e) ? e : null;
  }

  /** The module is gone: drop all its handles. */
  dropOwner(owner: string): void {
    for (const [h, e] of this.#entries) if (e.owner === owner) this.#entries.delete(h);
    this.#byObject.delete(owner);
  }

}

function stale(e: HandleEntry): boolean {
  return e.generation !== object_generation(e.obj);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}
