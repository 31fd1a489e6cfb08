// The iomem resource tree (kernel/resource.c, 4.20): a tree of [start, end] ranges whose
// siblings are sorted and never overlap. Ported structurally: parent/sibling/child links and
// the same search loops, so the kernel's corner cases (descending into non-busy parents,
// re-parenting on insert, the top-level-only region_intersects) come out the same.

import { object_gone } from "../lib/lifetime.ts";

export const IORESOURCE_BITS = 0x000000ff;
export const IORESOURCE_TYPE_BITS = 0x00001f00;
export const IORESOURCE_IO = 0x00000100;
export const IORESOURCE_MEM = 0x00000200;
export const IORESOURCE_REG = 0x00000300;
export const IORESOURCE_IRQ = 0x00000400;
export const IORESOURCE_DMA = 0x00000800;
export const IORESOURCE_BUS = 0x00001000;
export const IORESOURCE_PREFETCH = 0x00002000;
export const IORESOURCE_READONLY = 0x00004000;
export const IORESOURCE_CACHEABLE = 0x00008000;
export const IORESOURCE_MEM_64 = 0x00100000;
export const IORESOURCE_WINDOW = 0x00200000;
export const IORESOURCE_MUXED = 0x00400000;
export const IORESOURCE_EXT_TYPE_BITS = 0x01000000;
export const IORESOURCE_SYSRAM = 0x01000000;
export const IORESOURCE_EXCLUSIVE = 0x08000000;
export const IORESOURCE_DISABLED = 0x10000000;
export const IORESOURCE_UNSET = 0x20000000;
export const IORESOURCE_AUTO = 0x40000000;
export const IORESOURCE_BUSY = 0x80000000;
export const IORESOURCE_SYSTEM_RAM = IORESOURCE_MEM | IORESOURCE_SYSRAM;

export const IORES_DESC_NONE = 0;
export const IORES_DESC_CRASH_KERNEL = 1;
export const IORES_DESC_ACPI_TABLES = 2;
export const IORES_DESC_ACPI_NV_STORAGE = 3;
export const IORES_DESC_PERSISTENT_MEMORY = 4;
export const IORES_DESC_PERSISTENT_MEMORY_LEGACY = 5;
export const IORES_DESC_DEVICE_PRIVATE_MEMORY = 6;
export const IORES_DESC_DEVICE_PUBLIC_MEMORY = 7;

export const REGION_INTERSECTS = 0;
export const REGION_DISJOINT = 1;
export const REGION_MIXED = 2;

/** include/linux/ioport.h MAX_IORES_LEVEL: /proc/iomem indents at most this deep. */
const MAX_IORES_LEVEL = 5;

export class Resource {
  start: number;
  end: number;
  name: string | null;
  flags: number;
  desc: number;
  parent: Resource | null = null;
  sibling: Resource | null = null;
  child: Resource | null = null;

  constructor(start: number, end: number, name: string | null, flags = IORESOURCE_MEM, desc = IORES_DESC_NONE) {
    this.start = start;
    this.end = end;
    this.name = name;
    this.flags = flags >>> 0;
    this.desc = desc;
  }

  /** DEFINE_RES_MEM-style constructor from a start and a size. */
  static mem(start: number, size: number, name: string | null, flags = IORESOURCE_MEM, desc = IORES_DESC_NONE): Resource {
    return new Resource(start, start + size - 1, name, flags, desc);
  }

  /** The children, in address order. */
  *children(): Generator<Resource> {
    for (let c = this.child; c; c = c.sibling) yield c;
  }
}

export function resource_size(res: Resource): number {
  return res.end - res.start + 1;
}
export function resource_type(res: Resource): number {
  return res.flags & IORESOURCE_TYPE_BITS;
}
function resource_ext_type(res: Resource): number {
  return res.flags & IORESOURCE_EXT_TYPE_BITS;
}

/**
 * %pR (decoded) and %pr (raw) as lib/vsprintf.c resource_string() prints them:
 * "[mem 0x100000000-0x13fffffff flags 0x200]" / "[mem 0xfd000000-0xfdffffff pref]".
 */
export function formatResource(res: Resource, raw: boolean): string {
  let decode = !raw;
  let type: string;
  let width = 10; // MEM_RSRC_PRINTK_SIZE, counting the 0x
  let decimal = false;
  if (res.flags & IORESOURCE_IO) {
    type = "io  ";
    width = 6;
  } else if (res.flags & IORESOURCE_MEM) {
    type = "mem ";
  } else if (res.flags & IORESOURCE_IRQ) {
    type = "irq ";
    decimal = true;
  } else if (res.flags & IORESOURCE_DMA) {
    type = "dma ";
    decimal = true;
  } else if (res.flags & IORESOURCE_BUS) {
    type = "bus ";
    width = 2;
  } else {
    type = "??? ";
    decode = false;
  }
  const num = (n: number) =>
    decimal ? String(n) : type === "bus " ? n.toString(16).padStart(width, "0") : "0x" + n.toString(16).padStart(width - 2, "0");
  let s = "[" + type;
  if (decode && res.flags & IORESOURCE_UNSET) s += "size " + num(resource_size(res));
  else {
    s += num(res.start);
    if (res.start !== res.end) s += "-" + num(res.end);
  }
  if (decode) {
    if (res.flags & IORESOURCE_MEM_64) s += " 64bit";
    if (res.flags & IORESOURCE_PREFETCH) s += " pref";
    if (res.flags & IORESOURCE_WINDOW) s += " window";
    if (res.flags & IORESOURCE_DISABLED) s += " disabled";
  } else {
    s += " flags 0x" + (res.flags >>> 0).toString(16);
  }
  return s + "]";
}

/** Hooks the tree needs from the kernel: printk and WARN_ON. */
export interface ResourceEnv {
  printk(text: string): void;
  /** WARN_ON() in `func`. */
  warnOn(func: string): void;
}

export class ResourceTree {
  readonly root: Resource;
  readonly #env: ResourceEnv;

  constructor(root: Resource, env: ResourceEnv) {
    this.root = root;
    this.#env = env;
  }

  /** __request_resource(): link `res` under `root` unless it overlaps a child; the conflict otherwise. */
  static __request_resource(root: Resource, res: Resource): Resource | null {
    const { start, end } = res;
    if (end < start) return root;
    if (start < root.start) return root;
    if (end > root.end) return root;
    let prev: Resource | null = null;
    for (let tmp = root.child; ; tmp = tmp.sibling) {
      if (!tmp || tmp.start > end) {
        res.sibling = tmp;
        if (prev) prev.sibling = res;
        else root.child = res;
        res.parent = root;
        return null;
      }
      prev = tmp;
      if (tmp.end < start) continue;
      return tmp;
    }
  }

  /** __release_resource(): unlink; without release_child the children move up a level. */
  static __release_resource(old: Resource, releaseChild: boolean): number {
    const parent = old.parent;
    if (!parent) return -22;
    let prev: Resource | null = null;
    for (let tmp = parent.child; tmp; prev = tmp, tmp = tmp.sibling) {
      if (tmp !== old) continue;
      let next: Resource | null;
      if (releaseChild || !tmp.child) {
        next = tmp.sibling;
      } else {
        let chd = tmp.child;
        for (;; chd = chd.sibling!) {
          chd.parent = parent;
          if (!chd.sibling) break;
        }
        chd.sibling = tmp.sibling;
        next = tmp.child;
      }
      if (prev) prev.sibling = next;
      else parent.child = next;
      old.parent = null;
      old.sibling = null;
      return 0;
    }
    return -22;
  }

  request_resource_conflict(root: Resource, res: Resource): Resource | null {
    return ResourceTree.__request_resource(root, res);
  }

  /** request_resource(): 0, or -EBUSY on any overlap with a child of `root`. */
  request_resource(root: Resource, res: Resource): number {
    return this.request_resource_conflict(root, res) ? -16 : 0;
  }

  /** release_resource(): unlink `old` together with its children. */
  release_resource(old: Resource): number {
    return ResourceTree.__release_resource(old, true);
  }

  /** remove_resource(): unlink `old`, moving its children up to its parent. */
  remove_resource(old: Resource): number {
    return ResourceTree.__release_resource(old, false);
  }

  /** __insert_resource(): like request, but swallows resources that fit inside `res`. */
  #insert(parent: Resource, res: Resource): Resource | null {
    let first: Resource | null;
    for (;; parent = first) {
      first = ResourceTree.__request_resource(parent, res);
      if (!first) return null;
      if (first === parent) return first;
      if (first === res) {
        this.#env.warnOn("__insert_resource"); // WARN_ON(first == new): duplicated insertion
        return first;
      }
      if (first.start > res.start || first.end < res.end) break;
      if (first.start === res.start && first.end === res.end) break;
    }
    let next: Resource = first;
    for (;; next = next.sibling!) {
      // Partial overlap? Bad, and unfixable
      if (next.start < res.start || next.end > res.end) return next;
      if (!next.sibling) break;
      if (next.sibling.start > res.end) break;
    }
    res.parent = parent;
    res.sibling = next.sibling;
    res.child = first;
    next.sibling = null;
    for (let n: Resource | null = first; n; n = n.sibling) n.parent = res;
    if (parent.child === first) {
      parent.child = res;
    } else {
      let n = parent.child!;
      while (n.sibling !== first) n = n.sibling!;
      n.sibling = res;
    }
    return null;
  }

  insert_resource_conflict(parent: Resource, res: Resource): Resource | null {
    return this.#insert(parent, res);
  }

  /** insert_resource(): 0, or -EBUSY on a partial overlap. */
  insert_resource(parent: Resource, res: Resource): number {
    return this.#insert(parent, res) ? -16 : 0;
  }

  /** insert_resource_expand_to_fit(): grow `res` over whatever it partially overlaps. */
  insert_resource_expand_to_fit(root: Resource, res: Resource): void {
    if (res.parent) return;
    for (;;) {
      const conflict = this.#insert(root, res);
      if (!conflict) break;
      if (conflict === root) break;
      if (conflict.start < res.start) res.start = conflict.start;
      if (conflict.end > res.end) res.end = conflict.end;
      // A plain printk() (default loglevel); %s of a NULL name prints "(null)".
      this.#env.printk(`Expanded resource ${res.name ?? "(null)"} due to conflict with ${conflict.name ?? "(null)"}\n`);
    }
  }

  /**
   * reserve_region_with_split(): claim whatever of [start, end] nobody holds, as busy
   * resources named `name`, splitting around the resources in the way.
   */
  reserve_region_with_split(root: Resource, start: number, end: number, name: string): void {
    if (root.start > start || root.end < end) {
      this.#env.printk(`\x013requested range [0x${start.toString(16)}-0x${end.toString(16)}] not in root ${formatResource(root, true)}\n`);
      if (start > root.end || end < root.start) return;
      end = Math.min(end, root.end);
      start = Math.max(start, root.start);
      this.#env.printk(`\x013fixing request to [0x${start.toString(16)}-0x${end.toString(16)}]\n`);
    }
    const flags = (resource_type(root) | IORESOURCE_BUSY) >>> 0;
    let res: Resource | null = new Resource(start, end, name, flags);
    let next: Resource | null = null;
    while (res) {
      const conflict: Resource | null = ResourceTree.__request_resource(root, res);
      if (!conflict) {
        res = next;
        next = null;
        continue;
      }
      // conflict covered whole area
      if (conflict.start <= res.start && conflict.end >= res.end) {
        if (next) this.#env.warnOn("__reserve_region_with_split");
        break;
      }
      // failed, split and try again
      if (conflict.start > res.start) {
        const e = res.end;
        res.end = conflict.start - 1;
        if (conflict.end < e) next = new Resource(conflict.end + 1, e, name, flags);
      } else {
        res.start = conflict.end + 1;
      }
    }
  }

  /**
   * __request_region(): a new busy resource for [start, start+n), descending into any
   * non-busy resource it lands in. Returns null when a busy resource is in the way.
   * `onMuxedWait` is called when the kernel would sleep on a MUXED conflict.
   */
  __request_region(parent: Resource, start: number, n: number, name: string | null, flags = 0, onMuxedWait?: () => void): Resource | null {
    const res = new Resource(start, start + n - 1, name);
    for (;;) {
      res.flags = (resource_type(parent) | resource_ext_type(parent) | IORESOURCE_BUSY | flags) >>> 0;
      res.desc = parent.desc;
      const conflict = ResourceTree.__request_resource(parent, res);
      if (!conflict) return res;
      if (conflict !== parent && !(conflict.flags & IORESOURCE_BUSY)) {
        parent = conflict;
        continue;
      }
      if (conflict.flags & flags & IORESOURCE_MUXED && onMuxedWait) {
        onMuxedWait();
        continue;
      }
      return null;
    }
  }

  /** request_mem_region() */
  request_mem_region(start: number, n: number, name: string | null): Resource | null {
    return this.__request_region(this.root, start, n, name, 0);
  }

  /**
   * __release_region(): free the busy region exactly matching [start, start+n), looking
   * through non-busy parents. Warns "Trying to free nonexistent resource" otherwise.
   */
  __release_region(parent: Resource, start: number, n: number): void {
    const end = start + n - 1;
    let owner = parent;
    let prev: Resource | null = null;
    let res = parent.child;
    while (res) {
      if (res.start <= start && res.end >= end) {
        if (!(res.flags & IORESOURCE_BUSY)) {
          owner = res;
          prev = null;
          res = res.child;
          continue;
        }
        if (res.start !== start || res.end !== end) break;
        if (prev) prev.sibling = res.sibling;
        else owner.child = res.sibling;
        res.parent = null;
        res.sibling = null;
        object_gone(res); // free_resource()
        return;
      }
      prev = res;
      res = res.sibling;
    }
    this.#env.printk(`\x014Trying to free nonexistent resource <${hex16(start)}-${hex16(end)}>\n`);
  }

  release_mem_region(start: number, n: number): void {
    this.__release_region(this.root, start, n);
  }

  /**
   * region_intersects(): looks only at the top-level children of iomem_resource (R1.7).
   * REGION_INTERSECTS, REGION_DISJOINT or REGION_MIXED.
   */
  region_intersects(start: number, size: number, flags: number, desc: number): number {
    const end = start + size - 1;
    let type = 0;
    let other = 0;
    for (let p = this.root.child; p; p = p.sibling) {
      const isType = (p.flags & flags) >>> 0 === flags >>> 0 && (desc === IORES_DESC_NONE || desc === p.desc);
      if (start >= p.start && start <= p.end) isType ? type++ : other++;
      if (end >= p.start && end <= p.end) isType ? type++ : other++;
      if (p.start >= start && p.end <= end) isType ? type++ : other++;
    }
    if (other === 0) return type ? REGION_INTERSECTS : REGION_DISJOINT;
    if (type) return REGION_MIXED;
    return REGION_DISJOINT;
  }

  /** Depth-first walk: each resource with its depth below the root (0 = top level). */
  *walk(from: Resource = this.root): Generator<[Resource, number]> {
    const visit = function* (r: Resource, depth: number): Generator<[Resource, number]> {
      for (let c = r.child; c; c = c.sibling) {
        yield [c, depth];
        yield* visit(c, depth + 1);
      }
    };
    yield* visit(from, 0);
  }

  /** /proc/iomem as r_show() prints it (as root: real addresses). */
  show(): string {
    const width = this.root.end < 0x10000 ? 4 : 8;
    let out = "";
    for (const [r, depth] of this.walk()) {
      // r_show(): the parent walk stops after MAX_IORES_LEVEL steps, so indentation caps at depth 5.
      const d = Math.min(depth, MAX_IORES_LEVEL);
      out += " ".repeat(d * 2) + r.start.toString(16).padStart(width, "0") + "-" + r.end.toString(16).padStart(width, "0") + " : " + (r.name ?? "<BAD>") + "\n";
    }
    return out;
  }

  /** Structural check: every level sorted, no overlaps, children inside parents, links consistent. */
  check(): string[] {
    const problems: string[] = [];
    const visit = (r: Resource) => {
      let prevEnd = -1;
      let first = true;
      for (let c = r.child; c; c = c.sibling) {
        const where = `${c.name ?? "<BAD>"} ${formatResource(c, true)}`;
        if (c.parent !== r) problems.push(`${where}: parent link does not point at ${r.name ?? "<root>"}`);
        if (c.end < c.start) problems.push(`${where}: end before start`);
        if (c.start < r.start || c.end > r.end) problems.push(`${where}: outside its parent ${r.name ?? "<root>"}`);
        if (!first && c.start <= prevEnd) problems.push(`${where}: overlaps or is out of order with its previous sibling`);
        prevEnd = c.end;
        first = false;
        visit(c);
      }
    };
    visit(this.root);
    return problems;
  }
}

function hex16(n: number): string {
  return n.toString(16).padStart(16, "0");
}
