// percpu_ref and completions as modules use them: the module owns the struct, the kernel
// keeps its twin.

import { ENOMEM } from "../../errno.ts";
import { complete, complete_all, completion_done, init_completion, reinit_completion, try_wait_for_completion, wait_for_completion, type Completion } from "../../kernel/sched.ts";
import type { PercpuRef, PercpuRefFunc } from "../../mm/percpu-refcount.ts";
import { defineApis, type CallCtx } from "../api.ts";

/** A percpu_ref used before percpu_ref_init(): its counter pointer is NULL in the kernel. */
function live(c: CallCtx, ref: PercpuRef, func: string): PercpuRef {
  if (!ref.release && !ref.exited) {
    c.k.bugs.oops(["BUG: unable to handle kernel NULL pointer dereference at 0000000000000000", "#PF error: [normal kernel read fault]"], "Oops: 0000", { file: "include/linux/percpu-refcount.h", func });
  }
  return ref;
}

export const SYNC_APIS = defineApis([
  {
    name: "percpu_ref_init", symbols: ["percpu_ref_init"], params: ["s:percpu_ref", "fn(s:percpu_ref)", "int", "num"], ret: "int", proto: "int percpu_ref_init(struct percpu_ref *ref, percpu_ref_func_t *release, unsigned int flags, gfp_t gfp)",
    impl: (c: CallCtx, ref: PercpuRef, release: PercpuRefFunc, flags: number, gfp: number) => {
      // __alloc_percpu_gfp() for the per-CPU counter: failslab applies to the chunk allocation.
      if (c.k.mm.slab.should_failslab(8, gfp)) return -ENOMEM;
      return ref.init(c.k.percpuRefEnv, release, flags);
    },
  },
  { name: "percpu_ref_exit", symbols: ["percpu_ref_exit"], params: ["s:percpu_ref"], ret: "void", proto: "void percpu_ref_exit(struct percpu_ref *ref)", impl: (c: CallCtx, ref: PercpuRef) => live(c, ref, "percpu_ref_exit").exit() },
  { name: "percpu_ref_kill", symbols: ["percpu_ref_kill_and_confirm"], params: ["s:percpu_ref"], ret: "void", proto: "static inline void percpu_ref_kill(struct percpu_ref *ref)", impl: (c: CallCtx, ref: PercpuRef) => live(c, ref, "percpu_ref_kill").kill() },
  { name: "percpu_ref_kill_and_confirm", symbols: ["percpu_ref_kill_and_confirm"], params: ["s:percpu_ref", "fn(s:percpu_ref)"], ret: "void", proto: "void percpu_ref_kill_and_confirm(struct percpu_ref *ref, percpu_ref_func_t *confirm_kill)", impl: (c: CallCtx, ref: PercpuRef, confirm: PercpuRefFunc | null) => live(c, ref, "percpu_ref_kill_and_confirm").kill_and_confirm(confirm) },
  { name: "percpu_ref_reinit", symbols: ["percpu_ref_reinit"], params: ["s:percpu_ref"], ret: "void", proto: "void percpu_ref_reinit(struct percpu_ref *ref)", impl: (c: CallCtx, ref: PercpuRef) => live(c, ref, "percpu_ref_reinit").reinit() },
  { name: "percpu_ref_get", symbols: [], params: ["s:percpu_ref"], ret: "void", proto: "static inline void percpu_ref_get(struct percpu_ref *ref)", impl: (c: CallCtx, ref: PercpuRef) => live(c, ref, "percpu_ref_get").get() },
  { name: "percpu_ref_get_many", symbols: [], params: ["s:percpu_ref", "num"], ret: "void", proto: "static inline void percpu_ref_get_many(struct percpu_ref *ref, unsigned long nr)", impl: (c: CallCtx, ref: PercpuRef, nr: number) => live(c, ref, "percpu_ref_get_many").get_many(nr) },
  { name: "percpu_ref_put", symbols: [], params: ["s:percpu_ref"], ret: "void", proto: "static inline void percpu_ref_put(struct percpu_ref *ref)", impl: (c: CallCtx, ref: PercpuRef) => live(c, ref, "percpu_ref_put").put() },
  { name: "percpu_ref_put_many", symbols: [], params: ["s:percpu_ref", "num"], ret: "void", proto: "static inline void percpu_ref_put_many(struct percpu_ref *ref, unsigned long nr)", impl: (c: CallCtx, ref: PercpuRef, nr: number) => live(c, ref, "percpu_ref_put_many").put_many(nr) },
  { name: "percpu_ref_tryget", symbols: [], params: ["s:percpu_ref"], ret: "bool", proto: "static inline bool percpu_ref_tryget(struct percpu_ref *ref)", impl: (c: CallCtx, ref: PercpuRef) => live(c, ref, "percpu_ref_tryget").tryget() },
  { name: "percpu_ref_tryget_live", symbols: [], params: ["s:percpu_ref"], ret: "bool", proto: "static inline bool percpu_ref_tryget_live(struct percpu_ref *ref)", impl: (c: CallCtx, ref: PercpuRef) => live(c, ref, "percpu_ref_tryget_live").tryget_live() },
  { name: "percpu_ref_is_zero", symbols: [], params: ["s:percpu_ref"], ret: "bool", proto: "static inline bool percpu_ref_is_zero(struct percpu_ref *ref)", impl: (c: CallCtx, ref: PercpuRef) => live(c, ref, "percpu_ref_is_zero").is_zero() },
  { name: "init_completion", symbols: ["__init_waitqueue_head"], params: ["s:completion"], ret: "void", proto: "static inline void init_completion(struct completion *x)", impl: (_c: CallCtx, x: Completion) => init_completion(x) },
  { name: "reinit_completion", symbols: [], params: ["s:completion"], ret: "void", proto: "static inline void reinit_completion(struct completion *x)", impl: (_c: CallCtx, x: Completion) => reinit_completion(x) },
  { name: "complete", symbols: ["complete"], params: ["s:completion"], ret: "void", proto: "void complete(struct completion *x)", impl: (_c: CallCtx, x: Completion) => complete(x) },
  { name: "complete_all", symbols: ["complete_all"], params: ["s:completion"], ret: "void", proto: "void complete_all(struct completion *x)", impl: (_c: CallCtx, x: Completion) => complete_all(x) },
  { name: "wait_for_completion", symbols: ["wait_for_completion"], params: ["s:completion"], ret: "void", proto: "void wait_for_completion(struct completion *x)", impl: (c: CallCtx, x: Completion) => wait_for_completion(c.k.sched, x) },
  { name: "try_wait_for_completion", symbols: ["try_wait_for_completion"], params: ["s:completion"], ret: "bool", proto: "bool try_wait_for_completion(struct completion *x)", impl: (_c: CallCtx, x: Completion) => try_wait_for_completion(x) },
  { name: "completion_done", symbols: ["completion_done"], params: ["s:completion"], ret: "bool", proto: "bool completion_done(struct completion *x)", impl: (_c: CallCtx, x: Completion) => completion_done(x) },
]);
