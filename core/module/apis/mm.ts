// Small memory-management helpers from the mm headers, as modules use them: is_zero_pfn()
// (include/asm-generic/pgtable.h, on the exported zero_pfn of mm/memory.c), which tells the
// shared zero page apart in a snapshot of a process's page tables, and mmget_not_zero()
// (include/linux/sched/mm.h), which a driver that kept an mm (mmgrab) uses to pin its
// address space before working on it.

import { mmget_not_zero } from "../../kernel/fork.ts";
import type { MmStruct } from "../../mm/mm_types.ts";
import { defineApis, type CallCtx } from "../api.ts";

export const MM_APIS = defineApis([
  {
    name: "is_zero_pfn", symbols: ["zero_pfn"], params: ["num"], ret: "bool", proto: "static inline int is_zero_pfn(unsigned long pfn)",
    impl: (c: CallCtx, pfn: number) => pfn === c.k.mm.zeroPfn,
  },
  {
    name: "mmget_not_zero", symbols: [], params: ["o:mm_struct"], ret: "bool", proto: "static inline bool mmget_not_zero(struct mm_struct *mm)",
    impl: (c: CallCtx, mm: MmStruct) => {
      if (!mmget_not_zero(mm)) return false;
      // Counted like get_task_mm()'s reference, so mmput() accepts it and a module that dies
      // has it dropped.
      const h = c.mod.holdings.mms;
      let r = h.get(mm);
      if (!r) h.set(mm, (r = { users: 0, count: 0 }));
      r.users++;
      return true;
    },
  },
]);
