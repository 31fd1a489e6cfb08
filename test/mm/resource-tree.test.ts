// The iomem resource tree on its own (kernel/resource.c, Linux 4.20; spec mm-hmm §1, R1.1-R1.7):
// request/insert/release/remove, __request_region/__release_region, region_intersects, r_show
// (/proc/iomem) and %pr/%pR. Each tree here is private to its test, with a recording printk and
// WARN_ON, so the exact link structure can be checked after every operation.

import { describe, expect, it } from "vitest";
import {
  formatResource, IORES_DESC_DEVICE_PRIVATE_MEMORY, IORES_DESC_NONE, IORES_DESC_PERSISTENT_MEMORY, IORES_DESC_PERSISTENT_MEMORY_LEGACY,
  IORESOURCE_BUS, IORESOURCE_BUSY, IORESOURCE_DISABLED, IORESOURCE_DMA, IORESOURCE_EXCLUSIVE, IORESOURCE_IO, IORESOURCE_IRQ,
  IORESOURCE_MEM, IORESOURCE_MEM_64, IORESOURCE_MUXED, IORESOURCE_PREFETCH, IORESOURCE_READONLY, IORESOURCE_SYSRAM,
  IORESOURCE_SYSTEM_RAM, IORESOURCE_UNSET, IORESOURCE_WINDOW, REGION_DISJOINT, REGION_INTERSECTS, REGION_MIXED, Resource,
  resource_size, ResourceTree,
} from "../../core/mm/resource.ts";

const EBUSY = -16;
const EINVAL = -22;

interface TestTree {
  t: ResourceTree;
  root: Resource;
  /** Every printk() text, verbatim (with any KERN_ prefix). */
  log: string[];
  /** The function named by each WARN_ON(). */
  warns: string[];
}

/** A private iomem-like tree: root "PCI mem" [0, 2^46-1], IORESOURCE_MEM. */
function tree(root = new Resource(0, 2 ** 46 - 1, "PCI mem", IORESOURCE_MEM)): TestTree {
  const log: string[] = [];
  const warns: string[] = [];
  const t = new ResourceTree(root, { printk: (s) => log.push(s), warnOn: (f) => void warns.push(f) });
  return { t, root, log, warns };
}

/** The names of `r`'s children in link order, checking each child's parent link on the way. */
function kids(r: Resource): (string | null)[] {
  const out: (string | null)[] = [];
  for (let c = r.child; c; c = c.sibling) {
    expect(c.parent, `parent link of ${c.name}`).toBe(r);
    out.push(c.name);
  }
  return out;
}

function mem(start: number, end: number, name: string | null, flags = IORESOURCE_MEM, desc = IORES_DESC_NONE): Resource {
  return new Resource(start, end, name, flags, desc);
}

// ---- request_resource (R1.2) ----------------------------------------------------------------

describe("request_resource", () => {
  it("links each new resource under root in address order, whatever the request order", () => {
    const { t, root } = tree();
    const c = mem(0x3000, 0x3fff, "C");
    const a = mem(0x1000, 0x1fff, "A");
    const b = mem(0x2000, 0x2fff, "B");
    expect(t.request_resource(root, c)).toBe(0);
    expect(t.request_resource(root, a)).toBe(0);
    expect(t.request_resource(root, b)).toBe(0);
    expect(kids(root)).toEqual(["A", "B", "C"]);
    expect(root.child).toBe(a);
    expect(a.sibling).toBe(b);
    expect(b.sibling).toBe(c);
    expect(c.sibling).toBeNull();
    expect(t.check()).toEqual([]);
    expect(t.show()).toBe("00001000-00001fff : A\n00002000-00002fff : B\n00003000-00003fff : C\n");
  });

  it("accepts a resource that touches its neighbours without overlapping them", () => {
    const { t, root } = tree();
    t.request_resource(root, mem(0x1000, 0x1fff, "A"));
    t.request_resource(root, mem(0x3000, 0x3fff, "C"));
    expect(t.request_resource(root, mem(0x2000, 0x2fff, "B"))).toBe(0);
    expect(kids(root)).toEqual(["A", "B", "C"]);
  });

  it.each([
    ["the same range", 0x2000, 0x2fff],
    ["a range starting inside it", 0x2800, 0x37ff],
    ["a range ending inside it", 0x1800, 0x27ff],
    ["a range inside it", 0x2400, 0x24ff],
    ["a range covering it", 0x1800, 0x37ff],
    ["its last byte only", 0x2fff, 0x2fff],
    ["its first byte only", 0x2000, 0x2000],
  ])("-EBUSY for %s, and request_resource_conflict returns the child in the way", (_what, start, end) => {
    const { t, root } = tree();
    const held = mem(0x2000, 0x2fff, "held");
    t.request_resource(root, held);
    const before = t.show();
    const r = mem(start, end, "new");
    expect(t.request_resource(root, r)).toBe(EBUSY);
    expect(r.parent).toBeNull();
    expect(t.request_resource_conflict(root, mem(start, end, "new2"))).toBe(held);
    expect(t.show()).toBe(before);
    expect(kids(root)).toEqual(["held"]);
  });

  it("reports the first overlapping sibling when the new range spans several", () => {
    const { t, root } = tree();
    const a = mem(0x1000, 0x1fff, "A");
    t.request_resource(root, a);
    t.request_resource(root, mem(0x3000, 0x3fff, "B"));
    expect(t.request_resource_conflict(root, mem(0x0, 0x3fff, "wide"))).toBe(a);
  });

  it("does not descend: free space inside a child of root still conflicts with that child", () => {
    const { t, root } = tree();
    const p = mem(0x10000, 0x1ffff, "P");
    t.request_resource(root, p);
    const r = mem(0x12000, 0x12fff, "inside");
    expect(t.request_resource_conflict(root, r)).toBe(p);
    expect(t.request_resource(root, r)).toBe(EBUSY);
    expect(r.parent).toBeNull();
    expect(p.child).toBeNull();
    // Asked of P itself, the same range is free.
    expect(t.request_resource(p, r)).toBe(0);
    expect(r.parent).toBe(p);
    expect(kids(root)).toEqual(["P"]);
    expect(kids(p)).toEqual(["inside"]);
  });

  it("returns the parent itself as the conflict for a range outside it, and -EBUSY", () => {
    const { t, root } = tree();
    const p = mem(0x10000, 0x1ffff, "P");
    t.request_resource(root, p);
    for (const [s, e] of [[0xf000, 0x10fff], [0x1f000, 0x20fff], [0x30000, 0x30fff], [0xffff, 0xffff]] as const) {
      const r = mem(s, e, "out");
      expect(t.request_resource_conflict(p, r)).toBe(p);
      expect(t.request_resource(p, r)).toBe(EBUSY);
      expect(r.parent).toBeNull();
    }
    expect(p.child).toBeNull();
    // Past the end of the root itself.
    const small = tree(new Resource(0, 0xffff, "PCI IO", IORESOURCE_IO));
    const r = new Resource(0xfff0, 0x1000f, "past", IORESOURCE_IO);
    expect(small.t.request_resource_conflict(small.root, r)).toBe(small.root);
    expect(small.root.child).toBeNull();
  });

  it("returns the root as the conflict when end < start, even in free space", () => {
    const { t, root } = tree();
    const r = mem(0x2000, 0x1fff, "backwards");
    expect(t.request_resource_conflict(root, r)).toBe(root);
    expect(t.request_resource(root, r)).toBe(EBUSY);
    expect(root.child).toBeNull();
  });
});

// ---- insert_resource (R1.3) -----------------------------------------------------------------

describe("insert_resource", () => {
  it("behaves as request_resource when nothing is in the way", () => {
    const { t, root } = tree();
    expect(t.insert_resource(root, mem(0x3000, 0x3fff, "C"))).toBe(0);
    expect(t.insert_resource(root, mem(0x1000, 0x1fff, "A"))).toBe(0);
    expect(kids(root)).toEqual(["A", "C"]);
  });

  it("swallows the resources that lie entirely inside it: they become its children", () => {
    const { t, root } = tree();
    const a = mem(0x1000, 0x1fff, "A");
    const b = mem(0x3000, 0x3fff, "B");
    const c = mem(0x8000, 0x8fff, "C");
    for (const r of [a, b, c]) t.request_resource(root, r);
    const n = mem(0x1000, 0x4fff, "N");
    expect(t.insert_resource(root, n)).toBe(0);
    expect(root.child).toBe(n); // took the first slot (parent->child == first)
    expect(kids(root)).toEqual(["N", "C"]);
    expect(kids(n)).toEqual(["A", "B"]);
    expect(n.parent).toBe(root);
    expect(a.parent).toBe(n);
    expect(b.parent).toBe(n);
    expect(b.sibling).toBeNull(); // the swallowed run is cut off from C
    expect(n.sibling).toBe(c);
    expect(c.parent).toBe(root);
    expect(t.check()).toEqual([]);
    expect(t.show()).toBe("00001000-00004fff : N\n  00001000-00001fff : A\n  00003000-00003fff : B\n00008000-00008fff : C\n");
  });

  it("swallows a run in the middle of the sibling list and links the previous sibling to it", () => {
    const { t, root } = tree();
    const z = mem(0x0, 0xfff, "Z");
    const a = mem(0x2000, 0x2fff, "A");
    const b = mem(0x3000, 0x3fff, "B");
    const y = mem(0x9000, 0x9fff, "Y");
    for (const r of [z, a, b, y]) t.request_resource(root, r);
    const n = mem(0x1800, 0x8fff, "N");
    expect(t.insert_resource(root, n)).toBe(0);
    expect(z.sibling).toBe(n);
    expect(kids(root)).toEqual(["Z", "N", "Y"]);
    expect(kids(n)).toEqual(["A", "B"]);
    expect(t.check()).toEqual([]);
  });

  it("keeps the children of the swallowed resources where they were", () => {
    const { t, root } = tree();
    const a = mem(0x1000, 0x1fff, "A");
    t.request_resource(root, a);
    const g = mem(0x1100, 0x11ff, "grandchild");
    t.request_resource(a, g);
    const n = mem(0x0, 0xffff, "N");
    expect(t.insert_resource(root, n)).toBe(0);
    expect(g.parent).toBe(a);
    expect(a.parent).toBe(n);
    expect(t.show()).toBe("00000000-0000ffff : N\n  00001000-00001fff : A\n    00001100-000011ff : grandchild\n");
  });

  it("descends into a resource that strictly contains it, level after level", () => {
    const { t, root } = tree();
    const p = mem(0x10000, 0x1ffff, "P");
    const q = mem(0x12000, 0x13fff, "Q"); // same start as N, larger end: still "contains"
    t.request_resource(root, p);
    t.request_resource(p, q);
    const n = mem(0x12000, 0x12fff, "N");
    expect(t.insert_resource(root, n)).toBe(0);
    expect(n.parent).toBe(q);
    expect(kids(root)).toEqual(["P"]);
    expect(kids(p)).toEqual(["Q"]);
    expect(kids(q)).toEqual(["N"]);
  });

  it("descends and then swallows inside the containing resource", () => {
    const { t, root } = tree();
    const p = mem(0x10000, 0x1ffff, "P");
    t.request_resource(root, p);
    const q1 = mem(0x11000, 0x11fff, "q1");
    const q2 = mem(0x12000, 0x12fff, "q2");
    const q3 = mem(0x18000, 0x18fff, "q3");
    for (const r of [q1, q2, q3]) t.request_resource(p, r);
    const n = mem(0x12000, 0x14fff, "N");
    expect(t.insert_resource(root, n)).toBe(0);
    expect(n.parent).toBe(p);
    expect(kids(p)).toEqual(["q1", "N", "q3"]);
    expect(kids(n)).toEqual(["q2"]);
    expect(q1.sibling).toBe(n);
    expect(t.check()).toEqual([]);
  });

  it("with an identical range, the existing resource ends up as the new one's child", () => {
    const { t, root } = tree();
    const before = mem(0x0, 0xfff, "before");
    const e = mem(0x1000, 0x1fff, "existing");
    const after = mem(0x2000, 0x2fff, "after");
    for (const r of [before, e, after]) t.request_resource(root, r);
    const n = mem(0x1000, 0x1fff, "new");
    expect(t.insert_resource(root, n)).toBe(0);
    expect(kids(root)).toEqual(["before", "new", "after"]);
    expect(n.child).toBe(e);
    expect(e.parent).toBe(n);
    expect(e.sibling).toBeNull();
    expect(n.sibling).toBe(after);
    expect(t.show()).toBe("00000000-00000fff : before\n00001000-00001fff : new\n  00001000-00001fff : existing\n00002000-00002fff : after\n");
  });

  it("a second identical insert nests again (the older one goes deeper)", () => {
    const { t, root } = tree();
    const first = mem(0x1000, 0x1fff, "first");
    const second = mem(0x1000, 0x1fff, "second");
    t.insert_resource(root, first);
    expect(t.insert_resource(root, second)).toBe(0);
    expect(kids(root)).toEqual(["second"]);
    expect(kids(second)).toEqual(["first"]);
  });

  it.each([
    ["sticks out below", 0x1800, 0x27ff],
    ["sticks out above", 0x2800, 0x37ff],
  ])("a partial overlap (new %s an existing one) is -EBUSY and changes nothing", (_what, start, end) => {
    const { t, root, warns } = tree();
    const held = mem(0x2000, 0x2fff, "held");
    t.request_resource(root, held);
    const before = t.show();
    const n = mem(start, end, "N");
    expect(t.insert_resource_conflict(root, n)).toBe(held);
    expect(t.insert_resource(root, n)).toBe(EBUSY);
    expect(n.parent).toBeNull();
    expect(n.child).toBeNull();
    expect(held.parent).toBe(root);
    expect(t.show()).toBe(before);
    expect(warns).toEqual([]);
  });

  it("checks the whole run before moving anything: a later partial overlap leaves the fitting ones alone", () => {
    const { t, root } = tree();
    const a = mem(0x1000, 0x1fff, "A"); // fits inside N
    const b = mem(0x3000, 0x4fff, "B"); // sticks out of N
    t.request_resource(root, a);
    t.request_resource(root, b);
    const before = t.show();
    const n = mem(0x1000, 0x3fff, "N");
    expect(t.insert_resource_conflict(root, n)).toBe(b);
    expect(a.parent).toBe(root);
    expect(a.sibling).toBe(b);
    expect(n.parent).toBeNull();
    expect(t.show()).toBe(before);
  });

  it("a partial overlap found after descending is -EBUSY with the nested conflict", () => {
    const { t, root } = tree();
    const p = mem(0x10000, 0x1ffff, "P");
    const q = mem(0x12000, 0x12fff, "Q");
    t.request_resource(root, p);
    t.request_resource(p, q);
    const n = mem(0x11000, 0x127ff, "N");
    expect(t.insert_resource_conflict(root, n)).toBe(q);
    expect(n.parent).toBeNull();
    expect(kids(p)).toEqual(["Q"]);
  });

  it("returns the parent as the conflict for a range outside it", () => {
    const { t, root } = tree();
    const p = mem(0x10000, 0x1ffff, "P");
    t.request_resource(root, p);
    const n = mem(0x1f000, 0x20fff, "N");
    expect(t.insert_resource_conflict(p, n)).toBe(p);
    expect(t.insert_resource(p, n)).toBe(EBUSY);
    expect(t.insert_resource_conflict(root, mem(0x2000, 0x1fff, "backwards"))).toBe(root);
  });

  it("inserting the very same object twice is WARN_ON in __insert_resource and -EBUSY, tree unchanged", () => {
    const { t, root, warns } = tree();
    const n = mem(0x1000, 0x1fff, "N");
    expect(t.insert_resource(root, n)).toBe(0);
    const before = t.show();
    expect(t.insert_resource_conflict(root, n)).toBe(n);
    expect(warns).toEqual(["__insert_resource"]);
    expect(t.insert_resource(root, n)).toBe(EBUSY);
    expect(warns).toEqual(["__insert_resource", "__insert_resource"]);
    expect(t.show()).toBe(before);
    expect(kids(root)).toEqual(["N"]);
  });

  it("the duplicate insertion is caught after descending too", () => {
    const { t, root, warns } = tree();
    const p = mem(0x10000, 0x1ffff, "P");
    t.request_resource(root, p);
    const n = mem(0x12000, 0x12fff, "N");
    expect(t.insert_resource(root, n)).toBe(0);
    expect(n.parent).toBe(p);
    expect(t.insert_resource(root, n)).toBe(EBUSY);
    expect(warns).toEqual(["__insert_resource"]);
    expect(kids(p)).toEqual(["N"]);
  });
});

describe("insert_resource_expand_to_fit", () => {
  it("grows the new resource over what it partially overlaps and says so with a plain printk", () => {
    const { t, root, log } = tree();
    t.request_resource(root, mem(0x1000, 0x2fff, "A"));
    t.request_resource(root, mem(0x4000, 0x5fff, "B"));
    const n = mem(0x2000, 0x4fff, "N");
    t.insert_resource_expand_to_fit(root, n);
    expect([n.start, n.end]).toEqual([0x1000, 0x5fff]);
    expect(kids(root)).toEqual(["N"]);
    expect(kids(n)).toEqual(["A", "B"]);
    // printk("Expanded resource %s due to conflict with %s\n"): no KERN_ level, default loglevel.
    expect(log).toEqual(["Expanded resource N due to conflict with A\n", "Expanded resource N due to conflict with B\n"]);
  });

  it("does nothing to a resource that already has a parent, and stops silently outside the root", () => {
    const { t, root, log } = tree(new Resource(0, 0xffff, "root", IORESOURCE_MEM));
    const n = mem(0x1000, 0x1fff, "N");
    t.request_resource(root, n);
    t.insert_resource_expand_to_fit(root, n);
    expect(kids(root)).toEqual(["N"]);
    const out = mem(0xf000, 0x10fff, "out");
    t.insert_resource_expand_to_fit(root, out);
    expect(out.parent).toBeNull();
    expect([out.start, out.end]).toEqual([0xf000, 0x10fff]);
    expect(log).toEqual([]);
  });
});

// ---- release_resource vs remove_resource ----------------------------------------------------

describe("release_resource and remove_resource", () => {
  function family() {
    const tt = tree();
    const { t, root } = tt;
    const x = mem(0x0, 0xfff, "X");
    const p = mem(0x1000, 0x4fff, "P");
    const y = mem(0x8000, 0x8fff, "Y");
    for (const r of [x, p, y]) t.request_resource(root, r);
    const c1 = mem(0x1000, 0x1fff, "c1");
    const c2 = mem(0x3000, 0x3fff, "c2");
    t.request_resource(p, c1);
    t.request_resource(p, c2);
    return { ...tt, x, p, y, c1, c2 };
  }

  it("release_resource unlinks the resource together with its children", () => {
    const { t, root, x, p, y, c1, c2 } = family();
    expect(t.release_resource(p)).toBe(0);
    expect(kids(root)).toEqual(["X", "Y"]);
    expect(x.sibling).toBe(y);
    expect(p.parent).toBeNull();
    // The children went with it: still P's, and nowhere in the tree.
    expect(c1.parent).toBe(p);
    expect(c2.parent).toBe(p);
    expect(p.child).toBe(c1);
    expect(t.show()).toBe("00000000-00000fff : X\n00008000-00008fff : Y\n");
    expect(t.check()).toEqual([]);
    // The range is free again.
    expect(t.request_resource(root, mem(0x1000, 0x4fff, "again"))).toBe(0);
  });

  it("remove_resource unlinks the resource and moves its children up into its place", () => {
    const { t, root, x, p, c1, c2, y } = family();
    expect(t.remove_resource(p)).toBe(0);
    expect(kids(root)).toEqual(["X", "c1", "c2", "Y"]);
    expect(x.sibling).toBe(c1);
    expect(c2.sibling).toBe(y);
    expect(c1.parent).toBe(root);
    expect(c2.parent).toBe(root);
    expect(p.parent).toBeNull();
    expect(t.show()).toBe("00000000-00000fff : X\n00001000-00001fff : c1\n00003000-00003fff : c2\n00008000-00008fff : Y\n");
    expect(t.check()).toEqual([]);
  });

  it("remove_resource of the first child puts its children at the head of the list", () => {
    const { t, root } = tree();
    const p = mem(0x1000, 0x4fff, "P");
    const y = mem(0x8000, 0x8fff, "Y");
    t.request_resource(root, p);
    t.request_resource(root, y);
    const c = mem(0x2000, 0x2fff, "c");
    t.request_resource(p, c);
    expect(t.remove_resource(p)).toBe(0);
    expect(root.child).toBe(c);
    expect(kids(root)).toEqual(["c", "Y"]);
  });

  it("remove_resource undoes insert_resource", () => {
    const { t, root } = tree();
    for (const r of [mem(0x0, 0xfff, "X"), mem(0x1000, 0x1fff, "A"), mem(0x3000, 0x3fff, "B"), mem(0x9000, 0x9fff, "Y")]) t.request_resource(root, r);
    const before = t.show();
    const n = mem(0x1000, 0x8fff, "N");
    t.insert_resource(root, n);
    expect(t.show()).not.toBe(before);
    expect(t.remove_resource(n)).toBe(0);
    expect(t.show()).toBe(before);
    expect(kids(root)).toEqual(["X", "A", "B", "Y"]);
  });

  it("both unlink a childless resource from the middle and from the head of the list", () => {
    for (const op of ["release_resource", "remove_resource"] as const) {
      const { t, root } = tree();
      const a = mem(0x1000, 0x1fff, "A");
      const b = mem(0x2000, 0x2fff, "B");
      const c = mem(0x3000, 0x3fff, "C");
      for (const r of [a, b, c]) t.request_resource(root, r);
      expect(t[op](b)).toBe(0);
      expect(a.sibling).toBe(c);
      expect(t[op](a)).toBe(0);
      expect(root.child).toBe(c);
      expect(kids(root)).toEqual(["C"]);
    }
  });

  it("-EINVAL when the resource is not on its parent's child list", () => {
    const { t, root } = tree();
    t.request_resource(root, mem(0x1000, 0x1fff, "A"));
    const stray = mem(0x2000, 0x2fff, "stray");
    stray.parent = root;
    expect(t.release_resource(stray)).toBe(EINVAL);
    expect(t.remove_resource(stray)).toBe(EINVAL);
    expect(kids(root)).toEqual(["A"]);
  });
});

// ---- __request_region / __release_region (R1.4) ----------------------------------------------

describe("__request_region", () => {
  function pmemTree() {
    const tt = tree();
    const { t, root } = tt;
    const ram = mem(0x100000, 0x3fffffff, "System RAM", (IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY) >>> 0);
    const pmem = mem(0x100000000, 0x13fffffff, "Persistent Memory", IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY);
    const legacy = mem(0x140000000, 0x14fffffff, "Persistent Memory (legacy)", IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY_LEGACY);
    for (const r of [ram, pmem, legacy]) t.insert_resource(root, r);
    return { ...tt, ram, pmem, legacy };
  }

  it("in free space: a busy child of the parent with the parent's type, flags 0x80000200, desc 0", () => {
    const { t, root } = pmemTree();
    const r = t.__request_region(root, 0x200000000, 0x1000, "free");
    expect(r).not.toBeNull();
    expect(r!.parent).toBe(root);
    expect([r!.start, r!.end]).toEqual([0x200000000, 0x200000fff]);
    expect(r!.flags).toBe(0x80000200);
    expect(r!.flags).toBe((IORESOURCE_MEM | IORESOURCE_BUSY) >>> 0);
    expect(r!.desc).toBe(IORES_DESC_NONE);
    expect(r!.name).toBe("free");
    expect(t.request_mem_region(0x300000000, 0x1000, "via request_mem_region")!.flags).toBe(0x80000200);
  });

  it("ORs in the caller's flags", () => {
    const { t, root } = pmemTree();
    const r = t.__request_region(root, 0x200000000, 0x1000, "excl", IORESOURCE_EXCLUSIVE);
    expect(r!.flags).toBe((IORESOURCE_MEM | IORESOURCE_BUSY | IORESOURCE_EXCLUSIVE) >>> 0);
    expect(r!.flags).toBe(0x88000200);
  });

  it("descends into a non-busy resource and copies its desc: inside Persistent Memory -> desc 4", () => {
    const { t, root, pmem } = pmemTree();
    const ns = t.request_mem_region(0x100000000, 0x10000000, "namespace0.0");
    expect(ns).not.toBeNull();
    expect(ns!.parent).toBe(pmem);
    expect(ns!.desc).toBe(IORES_DESC_PERSISTENT_MEMORY);
    expect(ns!.flags).toBe(0x80000200);
    expect(kids(pmem)).toEqual(["namespace0.0"]);
    expect(kids(root)).toEqual(["System RAM", "Persistent Memory", "Persistent Memory (legacy)"]);
    expect(t.show()).toContain("100000000-13fffffff : Persistent Memory\n  100000000-10fffffff : namespace0.0\n");
  });

  it("inside legacy Persistent Memory the region gets desc 5", () => {
    const { t, legacy } = pmemTree();
    const ns = t.request_mem_region(0x148000000, 0x1000, "pmem-legacy");
    expect(ns!.parent).toBe(legacy);
    expect(ns!.desc).toBe(IORES_DESC_PERSISTENT_MEMORY_LEGACY);
  });

  it("takes type and ext type (IORESOURCE_SYSRAM) from a System RAM parent", () => {
    const { t, root } = tree();
    // A non-busy System RAM range (as a hotplug range before it is claimed) is descended into.
    const ram = mem(0x100000000, 0x1ffffffff, "System RAM", IORESOURCE_SYSTEM_RAM);
    t.request_resource(root, ram);
    const r = t.request_mem_region(0x100001000, 0x1000, "in ram");
    expect(r!.parent).toBe(ram);
    expect(r!.flags).toBe((IORESOURCE_MEM | IORESOURCE_SYSRAM | IORESOURCE_BUSY) >>> 0);
    expect(r!.flags).toBe(0x81000200);
    // Called with the busy System RAM resource itself as the parent, the same flags result.
    const busyRam = mem(0x200000000, 0x2ffffffff, "System RAM", (IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY) >>> 0);
    t.request_resource(root, busyRam);
    const r2 = t.__request_region(busyRam, 0x200000000, 0x1000, "direct");
    expect(r2!.parent).toBe(busyRam);
    expect(r2!.flags).toBe(0x81000200);
  });

  it("the type comes from the parent, not from any caller flag: an I/O port tree gives 0x80000100", () => {
    const { t, root } = tree(new Resource(0, 0xffff, "PCI IO", IORESOURCE_IO));
    const r = t.__request_region(root, 0xcf8, 8, "PCI conf1");
    expect(r!.flags).toBe((IORESOURCE_IO | IORESOURCE_BUSY) >>> 0);
    expect(r!.flags).toBe(0x80000100);
  });

  it("descends through several non-busy levels and takes the innermost desc", () => {
    const { t, root } = tree();
    const outer = mem(0x100000000, 0x1ffffffff, "outer", IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY);
    const inner = mem(0x100000000, 0x10fffffff, "inner", IORESOURCE_MEM, IORES_DESC_DEVICE_PRIVATE_MEMORY);
    t.request_resource(root, outer);
    t.request_resource(outer, inner);
    const r = t.request_mem_region(0x100010000, 0x1000, "deep");
    expect(r!.parent).toBe(inner);
    expect(r!.desc).toBe(IORES_DESC_DEVICE_PRIVATE_MEMORY);
    const r2 = t.request_mem_region(0x110000000, 0x1000, "beside inner");
    expect(r2!.parent).toBe(outer);
    expect(r2!.desc).toBe(IORES_DESC_PERSISTENT_MEMORY);
  });

  it("returns null on a busy conflict and leaves the tree as it was", () => {
    const { t, ram } = pmemTree();
    const before = t.show();
    expect(t.request_mem_region(0x200000, 0x1000, "in busy RAM")).toBeNull();
    const ns = t.request_mem_region(0x100000000, 0x2000, "ns");
    expect(ns).not.toBeNull();
    expect(t.request_mem_region(0x100001000, 0x1000, "over ns")).toBeNull();
    expect(t.request_mem_region(0x100000000, 0x2000, "same as ns")).toBeNull();
    expect(ram.child).toBeNull();
    t.release_mem_region(0x100000000, 0x2000);
    expect(t.show()).toBe(before);
  });

  it("returns null when the range straddles the end of the non-busy resource it descended into", () => {
    const { t, pmem } = pmemTree();
    // Starts in pmem, ends in legacy pmem: descends into pmem, then does not fit in it.
    expect(t.request_mem_region(0x13ffff000, 0x2000, "straddle")).toBeNull();
    expect(pmem.child).toBeNull();
  });

  it("a MUXED request on a MUXED busy holder waits and retries; without MUXED it fails at once", () => {
    const { t, root } = tree(new Resource(0, 0xffff, "PCI IO", IORESOURCE_IO));
    const holder = t.__request_region(root, 0x2e, 2, "superio-a", IORESOURCE_MUXED);
    expect(holder!.flags).toBe((IORESOURCE_IO | IORESOURCE_BUSY | IORESOURCE_MUXED) >>> 0);
    let waits = 0;
    expect(t.__request_region(root, 0x2e, 2, "superio-b", 0, () => waits++)).toBeNull();
    expect(waits).toBe(0);
    const r = t.__request_region(root, 0x2e, 2, "superio-b", IORESOURCE_MUXED, () => {
      waits++;
      t.__release_region(root, 0x2e, 2); // the holder lets go while we sleep
    });
    expect(waits).toBe(1);
    expect(r!.name).toBe("superio-b");
    expect(kids(root)).toEqual(["superio-b"]);
  });
});

describe("__release_region", () => {
  function layout() {
    const tt = tree();
    const { t, root } = tt;
    const ram = mem(0x100000, 0x3fffffff, "System RAM", (IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY) >>> 0);
    const pmem = mem(0x100000000, 0x13fffffff, "Persistent Memory", IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY);
    t.insert_resource(root, ram);
    t.insert_resource(root, pmem);
    return { ...tt, ram, pmem };
  }

  it("frees the exactly matching busy region at top level", () => {
    const { t, root, log } = layout();
    const before = t.show();
    const r = t.request_mem_region(0x200000000, 0x1000, "r")!;
    t.release_mem_region(0x200000000, 0x1000);
    expect(r.parent).toBeNull();
    expect(t.show()).toBe(before);
    expect(kids(root)).toEqual(["System RAM", "Persistent Memory"]);
    expect(log).toEqual([]);
  });

  it("descends through non-busy parents to find the region", () => {
    const { t, pmem, log } = layout();
    t.request_mem_region(0x100000000, 0x1000, "a");
    t.request_mem_region(0x100001000, 0x1000, "b");
    t.request_mem_region(0x100002000, 0x1000, "c");
    t.__release_region(t.root, 0x100001000, 0x1000); // from the middle
    expect(kids(pmem)).toEqual(["a", "c"]);
    t.release_mem_region(0x100000000, 0x1000); // from the head
    expect(kids(pmem)).toEqual(["c"]);
    expect(pmem.child!.name).toBe("c");
    expect(log).toEqual([]);
  });

  it("warns 'Trying to free nonexistent resource' for a range nobody holds", () => {
    const { t, log } = layout();
    t.release_mem_region(0x100000000, 0x1000);
    expect(log).toEqual(["\x014Trying to free nonexistent resource <0000000100000000-0000000100000fff>\n"]);
  });

  it("does not free a busy region that only contains the range, nor one that is only inside it", () => {
    const { t, ram, log } = layout();
    const ns = t.request_mem_region(0x100000000, 0x2000, "ns")!;
    t.release_mem_region(0x100000000, 0x1000); // part of ns
    t.release_mem_region(0xfffff000, 0x3000); // covers ns and more
    t.release_mem_region(0x100000, 0x1000); // part of busy System RAM: does not descend into it
    expect(ns.parent).not.toBeNull();
    expect(ram.parent).toBe(t.root);
    expect(log).toEqual([
      "\x014Trying to free nonexistent resource <0000000100000000-0000000100000fff>\n",
      "\x014Trying to free nonexistent resource <00000000fffff000-0000000100001fff>\n",
      "\x014Trying to free nonexistent resource <0000000000100000-0000000000100fff>\n",
    ]);
  });

  it("cannot free a non-busy resource: it descends into it and finds nothing", () => {
    const { t, root, pmem, log } = layout();
    t.release_mem_region(0x100000000, 0x40000000); // exactly "Persistent Memory"
    expect(pmem.parent).toBe(root);
    expect(log).toEqual(["\x014Trying to free nonexistent resource <0000000100000000-000000013fffffff>\n"]);
  });

  it("frees any busy resource with exactly that range, even one it did not allocate (System RAM)", () => {
    const { t, root, log } = layout();
    t.release_mem_region(0x100000, 0x3ff00000);
    expect(kids(root)).toEqual(["Persistent Memory"]);
    expect(log).toEqual([]);
  });
});

// ---- region_intersects (R1.7) ---------------------------------------------------------------

describe("region_intersects", () => {
  // 00000000-000fffff System RAM (busy)          00100000-001fffff Persistent Memory (desc 4)
  //   (hole 00200000-002fffff)                   00300000-0037ffff Persistent Memory (legacy) (desc 5)
  //   (hole 00380000-003fffff)                   00400000-004fffff System RAM (busy)
  //   (hole 00500000-005fffff)
  // 00600000-006fffff Reserved: holds a nested "System RAM"-flagged child
  function layout() {
    const tt = tree();
    const { t, root } = tt;
    const sysram = (IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY) >>> 0;
    t.insert_resource(root, mem(0x000000, 0x0fffff, "System RAM", sysram));
    const pmem = mem(0x100000, 0x1fffff, "Persistent Memory", IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY);
    t.insert_resource(root, pmem);
    t.insert_resource(root, mem(0x300000, 0x37ffff, "Persistent Memory (legacy)", IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY_LEGACY));
    t.insert_resource(root, mem(0x400000, 0x4fffff, "System RAM", sysram));
    const reserved = mem(0x600000, 0x6fffff, "Reserved", IORESOURCE_MEM);
    t.insert_resource(root, reserved);
    t.request_resource(reserved, mem(0x600000, 0x60ffff, "nested ram", sysram));
    t.request_mem_region(0x100000, 0x10000, "namespace0.0"); // busy, nested in pmem
    return { ...tt, pmem };
  }
  const RAM = IORESOURCE_SYSTEM_RAM;

  it("RAM only: INTERSECTS (region inside, equal to, or covering the resource)", () => {
    const { t } = layout();
    expect(t.region_intersects(0x1000, 0x1000, RAM, IORES_DESC_NONE)).toBe(REGION_INTERSECTS);
    expect(t.region_intersects(0x0, 0x100000, RAM, IORES_DESC_NONE)).toBe(REGION_INTERSECTS);
    expect(t.region_intersects(0x400000, 0x100000, RAM, IORES_DESC_NONE)).toBe(REGION_INTERSECTS);
  });

  it("a region over nothing at all is DISJOINT", () => {
    const { t } = layout();
    expect(t.region_intersects(0x200000, 0x100000, RAM, IORES_DESC_NONE)).toBe(REGION_DISJOINT);
    expect(t.region_intersects(0x200000, 0x1000, 0, IORES_DESC_NONE)).toBe(REGION_DISJOINT);
  });

  it("quirk: a region over only non-matching resources is DISJOINT, not MIXED", () => {
    const { t } = layout();
    expect(t.region_intersects(0x100000, 0x1000, RAM, IORES_DESC_NONE)).toBe(REGION_DISJOINT);
    expect(t.region_intersects(0x1ff000, 0x102000, RAM, IORES_DESC_NONE)).toBe(REGION_DISJOINT); // pmem + hole + legacy
  });

  it("quirk: RAM plus a hole (no resource) is INTERSECTS", () => {
    const { t } = layout();
    expect(t.region_intersects(0x4ff000, 0x2000, RAM, IORES_DESC_NONE)).toBe(REGION_INTERSECTS);
    expect(t.region_intersects(0x400000, 0x180000, RAM, IORES_DESC_NONE)).toBe(REGION_INTERSECTS);
  });

  it("RAM plus Persistent Memory is MIXED", () => {
    const { t } = layout();
    expect(t.region_intersects(0xff000, 0x2000, RAM, IORES_DESC_NONE)).toBe(REGION_MIXED);
    expect(t.region_intersects(0x0, 0x500000, RAM, IORES_DESC_NONE)).toBe(REGION_MIXED);
  });

  it("counts a resource lying wholly inside the region, not only the ones holding its ends", () => {
    const { t } = layout();
    // Starts in the hole, ends in RAM; legacy pmem is only "inside": without that count this is INTERSECTS.
    expect(t.region_intersects(0x200000, 0x201000, RAM, IORES_DESC_NONE)).toBe(REGION_MIXED);
    // Starts and ends in holes with a matching resource strictly inside.
    expect(t.region_intersects(0x200000, 0x200000, IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY_LEGACY)).toBe(REGION_INTERSECTS);
  });

  it("only top-level resources count: nested ones are invisible", () => {
    const { t } = layout();
    // A busy namespace sits inside pmem, but pmem (top level) is not busy.
    expect(t.region_intersects(0x100000, 0x10000, (IORESOURCE_MEM | IORESOURCE_BUSY) >>> 0, IORES_DESC_NONE)).toBe(REGION_DISJOINT);
    // A "System RAM"-flagged child of Reserved does not make the range RAM.
    expect(t.region_intersects(0x600000, 0x10000, RAM, IORES_DESC_NONE)).toBe(REGION_DISJOINT);
    expect(t.region_intersects(0x600000, 0x10000, IORESOURCE_MEM, IORES_DESC_NONE)).toBe(REGION_INTERSECTS);
  });

  it("flags = 0 matches every resource: 'overlaps anything' is INTERSECTS, never MIXED", () => {
    const { t } = layout();
    expect(t.region_intersects(0xff000, 0x2000, 0, IORES_DESC_NONE)).toBe(REGION_INTERSECTS); // RAM + pmem
    expect(t.region_intersects(0x1ff000, 0x2000, 0, IORES_DESC_NONE)).toBe(REGION_INTERSECTS); // pmem + hole
    expect(t.region_intersects(0x0, 0x800000, 0, IORES_DESC_NONE)).toBe(REGION_INTERSECTS); // everything
    expect(t.region_intersects(0x700000, 0x100000, 0, IORES_DESC_NONE)).toBe(REGION_DISJOINT);
  });

  it("a desc other than NONE must match too", () => {
    const { t } = layout();
    const M = IORESOURCE_MEM;
    expect(t.region_intersects(0x180000, 0x1000, M, IORES_DESC_PERSISTENT_MEMORY)).toBe(REGION_INTERSECTS);
    expect(t.region_intersects(0x180000, 0x1000, M, IORES_DESC_PERSISTENT_MEMORY_LEGACY)).toBe(REGION_DISJOINT);
    expect(t.region_intersects(0x340000, 0x1000, M, IORES_DESC_PERSISTENT_MEMORY_LEGACY)).toBe(REGION_INTERSECTS);
    expect(t.region_intersects(0x180000, 0x201000, M, IORES_DESC_PERSISTENT_MEMORY)).toBe(REGION_MIXED); // pmem + hole + legacy
    expect(t.region_intersects(0x180000, 0x201000, M, IORES_DESC_NONE)).toBe(REGION_INTERSECTS); // both are MEM
    expect(t.region_intersects(0xff000, 0x2000, 0, IORES_DESC_PERSISTENT_MEMORY)).toBe(REGION_MIXED); // RAM has desc 0
  });
});

// ---- /proc/iomem (r_show) -------------------------------------------------------------------

describe("r_show (/proc/iomem)", () => {
  it("prints addresses as %08llx: zero-padded to 8, wider ones in full", () => {
    const { t, root } = tree();
    t.request_resource(root, mem(0x0, 0xfff, "low"));
    t.request_resource(root, mem(0x9fc00, 0x9ffff, "odd"));
    t.request_resource(root, mem(0xfffff000, 0xffffffff, "top of 4G"));
    t.request_resource(root, mem(0x100000000, 0x13fffffff, "above 4G"));
    t.request_resource(root, mem(0x3fff00000000, 0x3fffffffffff, "top of 2^46"));
    expect(t.show()).toBe(
      "00000000-00000fff : low\n" +
        "0009fc00-0009ffff : odd\n" +
        "fffff000-ffffffff : top of 4G\n" +
        "100000000-13fffffff : above 4G\n" +
        "3fff00000000-3fffffffffff : top of 2^46\n",
    );
  });

  it("uses width 4 when the root ends below 0x10000 (/proc/ioports)", () => {
    const { t, root } = tree(new Resource(0, 0xffff, "PCI IO", IORESOURCE_IO));
    t.request_resource(root, new Resource(0x0, 0x1f, "dma1", IORESOURCE_IO));
    t.__request_region(root, 0xcf8, 8, "PCI conf1");
    expect(t.show()).toBe("0000-001f : dma1\n0cf8-0cff : PCI conf1\n");
    const wide = tree(new Resource(0, 0x10000, "root", IORESOURCE_IO));
    wide.t.request_resource(wide.root, new Resource(0x20, 0x21, "pic1", IORESOURCE_IO));
    expect(wide.t.show()).toBe("00000020-00000021 : pic1\n");
  });

  it("prints <BAD> for a resource without a name", () => {
    const { t, root } = tree();
    t.request_resource(root, mem(0x1000, 0x1fff, null));
    expect(t.show()).toBe("00001000-00001fff : <BAD>\n");
  });

  it("indents two spaces per level, depth-first, up to MAX_IORES_LEVEL (5) levels", () => {
    const { t, root } = tree();
    let parent = root;
    for (let level = 0; level < 8; level++) {
      const r = mem(0x10000 + level * 0x100, 0x1ffff - level * 0x100, `L${level}`);
      expect(t.request_resource(parent, r)).toBe(0);
      parent = r;
    }
    t.request_resource(root, mem(0x20000, 0x20fff, "next"));
    expect(t.show()).toBe(
      "00010000-0001ffff : L0\n" +
        "  00010100-0001feff : L1\n" +
        "    00010200-0001fdff : L2\n" +
        "      00010300-0001fcff : L3\n" +
        "        00010400-0001fbff : L4\n" +
        "          00010500-0001faff : L5\n" +
        "          00010600-0001f9ff : L6\n" +
        "          00010700-0001f8ff : L7\n" +
        "00020000-00020fff : next\n",
    );
  });

  it("walks siblings after finishing a subtree, at every level", () => {
    const { t, root } = tree();
    const a = mem(0x0, 0xffff, "A");
    t.request_resource(root, a);
    const a1 = mem(0x0, 0xfff, "A1");
    t.request_resource(a, a1);
    t.request_resource(a1, mem(0x0, 0xff, "A1a"));
    t.request_resource(a, mem(0x1000, 0x1fff, "A2"));
    t.request_resource(root, mem(0x10000, 0x1ffff, "B"));
    expect(t.show()).toBe(
      "00000000-0000ffff : A\n  00000000-00000fff : A1\n    00000000-000000ff : A1a\n  00001000-00001fff : A2\n00010000-0001ffff : B\n",
    );
  });
});

// ---- %pr / %pR ------------------------------------------------------------------------------

describe("formatResource (%pr, %pR)", () => {
  it("%pr prints the raw flags", () => {
    expect(formatResource(mem(0x100000000, 0x13fffffff, "pmem"), true)).toBe("[mem 0x100000000-0x13fffffff flags 0x200]");
    expect(formatResource(mem(0x100000, 0x3ffdffff, "System RAM", (IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY) >>> 0), true)).toBe(
      "[mem 0x00100000-0x3ffdffff flags 0x81000200]",
    );
  });

  it("%pR decodes 64bit, pref, window and disabled instead of the flags", () => {
    const pref = mem(0xfd000000, 0xfdffffff, "bar", IORESOURCE_MEM | IORESOURCE_PREFETCH);
    expect(formatResource(pref, false)).toBe("[mem 0xfd000000-0xfdffffff pref]");
    expect(formatResource(pref, true)).toBe("[mem 0xfd000000-0xfdffffff flags 0x2200]");
    const all = mem(0x800000000, 0xfffffffff, "all", IORESOURCE_MEM | IORESOURCE_MEM_64 | IORESOURCE_PREFETCH | IORESOURCE_WINDOW | IORESOURCE_DISABLED);
    expect(formatResource(all, false)).toBe("[mem 0x800000000-0xfffffffff 64bit pref window disabled]");
    expect(formatResource(mem(0x0, 0xfff, "plain"), false)).toBe("[mem 0x00000000-0x00000fff]");
  });

  it("prints a single address when start == end", () => {
    expect(formatResource(mem(0xf0000, 0xf0000, "one"), true)).toBe("[mem 0x000f0000 flags 0x200]");
    expect(formatResource(mem(0xf0000, 0xf0000, "one"), false)).toBe("[mem 0x000f0000]");
  });

  it("io resources use width 6 (0x + 4 digits)", () => {
    const io = new Resource(0xcf8, 0xcff, "PCI conf1", IORESOURCE_IO);
    expect(formatResource(io, false)).toBe("[io  0x0cf8-0x0cff]");
    expect(formatResource(io, true)).toBe("[io  0x0cf8-0x0cff flags 0x100]");
    expect(formatResource(new Resource(0x10000, 0x1ffff, "big io", IORESOURCE_IO), false)).toBe("[io  0x10000-0x1ffff]");
  });

  it("irq and dma in decimal, bus numbers as two hex digits", () => {
    expect(formatResource(new Resource(9, 9, "irq", IORESOURCE_IRQ), false)).toBe("[irq 9]");
    expect(formatResource(new Resource(16, 23, "irqs", IORESOURCE_IRQ), false)).toBe("[irq 16-23]");
    expect(formatResource(new Resource(4, 4, "dma", IORESOURCE_DMA), false)).toBe("[dma 4]");
    expect(formatResource(new Resource(0, 0xff, "bus", IORESOURCE_BUS), false)).toBe("[bus 00-ff]");
  });

  it("an unset resource decodes as its size", () => {
    const r = mem(0x0, 0xfffff, "unassigned", IORESOURCE_MEM | IORESOURCE_UNSET);
    expect(formatResource(r, false)).toBe("[mem size 0x00100000]");
    expect(formatResource(r, true)).toBe("[mem 0x00000000-0x000fffff flags 0x20000200]");
    expect(resource_size(r)).toBe(0x100000);
  });

  it("an unknown type is '???' and never decoded", () => {
    const r = new Resource(0x0, 0xfff, "typeless", IORESOURCE_READONLY);
    expect(formatResource(r, false)).toBe("[??? 0x00000000-0x00000fff flags 0x4000]");
    expect(formatResource(new Resource(0x1000, 0x1fff, "zero", 0), false)).toBe("[??? 0x00001000-0x00001fff flags 0x0]");
  });
});
