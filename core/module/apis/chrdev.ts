// Character devices, user memory and address spaces as modules use them: misc_register()
// and the file operations behind /dev/NAME, copy_from_user()/copy_to_user() of the calling
// process's memory, `current`, and references on an mm (as a driver keeps the mm of the
// process that opened it).

import type { MiscDevice } from "../../fs/chrdev.ts";
import { mmdrop, mmget_not_zero, mmgrab, mmput } from "../../kernel/fork.ts";
import type { Task } from "../../kernel/sched.ts";
import type { MmStruct, VmArea } from "../../mm/mm_types.ts";
import { defineApis, type CallCtx } from "../api.ts";
import { ArgError } from "../marshal.ts";

/** What `current` is when a process runs: its user-memory accessors (kernel/process.ts). */
interface UserTask extends Task {
  readonly mm: MmStruct | null;
  copy_from_user(from: number, n: number): { data: Uint8Array; left: number };
  copy_to_user(to: number, data: Uint8Array): number;
}

function userTask(c: CallCtx): UserTask | null {
  const t = c.k.sched.current as Partial<UserTask>;
  return typeof t.copy_from_user === "function" && t.mm ? (t as UserTask) : null;
}

function count(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new ArgError(`${what} ${n} is not a byte count`);
  return n;
}

/** The module's references on `mm`, counted so a module that dies can have them dropped. */
function refs(c: CallCtx, mm: MmStruct): { users: number; count: number } {
  const h = c.mod.holdings.mms;
  let r = h.get(mm);
  if (!r) h.set(mm, (r = { users: 0, count: 0 }));
  return r;
}

function dropRef(c: CallCtx, mm: MmStruct, which: "users" | "count", func: string): void {
  const r = c.mod.holdings.mms.get(mm);
  // More puts than gets would free an address space someone else still uses.
  if (!r || r[which] === 0) throw new ArgError(`${func}() of an mm the module holds no ${which === "users" ? "mmget" : "mmgrab"} reference on`);
  r[which]--;
  if (!r.users && !r.count) c.mod.holdings.mms.delete(mm);
}

export const CHRDEV_APIS = defineApis([
  {
    name: "misc_register", symbols: ["misc_register"], params: ["s:miscdevice"], ret: "int", proto: "int misc_register(struct miscdevice *misc)",
    impl: (c: CallCtx, misc: MiscDevice) => {
      if (misc.listed) throw new ArgError(`miscdevice '${misc.name}' is registered already`);
      const rc = c.k.misc.misc_register(misc, c.mod);
      if (!rc) c.mod.holdings.miscdevs.add(misc);
      return rc;
    },
  },
  {
    name: "misc_deregister", symbols: ["misc_deregister"], params: ["s:miscdevice"], ret: "void", proto: "void misc_deregister(struct miscdevice *misc)",
    impl: (c: CallCtx, misc: MiscDevice) => {
      c.mod.holdings.miscdevs.delete(misc);
      c.k.misc.misc_deregister(misc);
    },
  },
  {
    name: "copy_from_user", symbols: ["_copy_from_user"], params: ["io:bytes", "num", "num"], ret: "num", proto: "static inline unsigned long copy_from_user(void *to, const void __user *from, unsigned long n)",
    impl: (c: CallCtx, to: Uint8Array | null, from: number, n: number) => {
      count("n", n);
      if (!to || n > to.length) throw new ArgError(`copy of ${n} bytes into a buffer of ${to?.length ?? 0}`);
      const t = userTask(c);
      // A task without user memory (a kernel thread): nothing is readable, the buffer is zeroed.
      const { data, left } = t ? t.copy_from_user(from, n) : { data: new Uint8Array(n), left: n };
      to.set(data);
      return left;
    },
  },
  {
    name: "copy_to_user", symbols: ["_copy_to_user"], params: ["num", "bytes", "num"], ret: "num", proto: "static inline unsigned long copy_to_user(void __user *to, const void *from, unsigned long n)",
    impl: (c: CallCtx, to: number, from: Uint8Array | null, n: number) => {
      count("n", n);
      if (!from || n > from.length) throw new ArgError(`copy of ${n} bytes from a buffer of ${from?.length ?? 0}`);
      const t = userTask(c);
      return t ? t.copy_to_user(to, from.subarray(0, n)) : n;
    },
  },
  {
    name: "get_current", symbols: ["current_task"], params: [], ret: "o!:task_struct", proto: "static __always_inline struct task_struct *get_current(void)",
    impl: (c: CallCtx) => c.k.sched.current,
  },
  {
    name: "get_task_mm", symbols: ["get_task_mm"], params: ["o:task_struct"], ret: "o?:mm_struct", proto: "struct mm_struct *get_task_mm(struct task_struct *task)",
    impl: (c: CallCtx, task: Task) => {
      const mm = (task as Partial<UserTask>).mm ?? null;
      if (!mm || !mmget_not_zero(mm)) return null;
      refs(c, mm).users++;
      return mm;
    },
  },
  {
    name: "mmput", callsBack: true, symbols: ["mmput"], params: ["o:mm_struct"], ret: "void", proto: "void mmput(struct mm_struct *mm)",
    impl: (c: CallCtx, mm: MmStruct) => {
      dropRef(c, mm, "users", "mmput");
      mmput(mm);
    },
  },
  {
    name: "mmgrab", symbols: [], params: ["o:mm_struct"], ret: "void", proto: "static inline void mmgrab(struct mm_struct *mm)",
    impl: (c: CallCtx, mm: MmStruct) => {
      mmgrab(mm);
      refs(c, mm).count++;
    },
  },
  {
    name: "mmdrop", symbols: ["__mmdrop"], params: ["o:mm_struct"], ret: "void", proto: "static inline void mmdrop(struct mm_struct *mm)",
    impl: (c: CallCtx, mm: MmStruct) => {
      dropRef(c, mm, "count", "mmdrop");
      mmdrop(mm);
    },
  },
  {
    name: "find_vma", symbols: ["find_vma"], params: ["o:mm_struct", "num"], ret: "o?:vm_area_struct", proto: "struct vm_area_struct *find_vma(struct mm_struct *mm, unsigned long addr)",
    impl: (_c: CallCtx, mm: MmStruct, addr: number): VmArea | null => mm.find_vma(addr),
  },
]);
