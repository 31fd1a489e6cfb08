// Module references and symbol_get() as modules use them.

import { defineApis, type CallCtx } from "../api.ts";
import type { Module } from "../module.ts";

export const MODULE_APIS = defineApis([
  { name: "try_module_get", symbols: ["try_module_get"], params: ["o?:module"], ret: "bool", proto: "bool try_module_get(struct module *module)", impl: (c: CallCtx, m: Module | null) => c.k.modules.try_module_get(m) },
  { name: "module_put", symbols: ["module_put"], params: ["o?:module"], ret: "void", proto: "void module_put(struct module *module)", impl: (c: CallCtx, m: Module | null) => c.k.modules.module_put(m) },
  { name: "__module_get", symbols: ["__module_get"], params: ["o?:module"], ret: "void", proto: "void __module_get(struct module *module)", impl: (c: CallCtx, m: Module | null) => c.k.modules.__module_get(m) },
  { name: "module_refcount", symbols: ["module_refcount"], params: ["o:module"], ret: "int", proto: "int module_refcount(struct module *mod)", impl: (_c: CallCtx, m: Module) => m.refcount },
  { name: "symbol_get", symbols: ["__symbol_get"], params: ["str"], ret: "symbol", proto: "#define symbol_get(x) ((typeof(&x))(__symbol_get(VMLINUX_SYMBOL_STR(x))))", impl: (c: CallCtx, name: string) => c.k.modules.symbol_get(c.mod, name) },
  { name: "symbol_put", symbols: ["__symbol_put"], params: ["str"], ret: "void", proto: "#define symbol_put(x) __symbol_put(VMLINUX_SYMBOL_STR(x))", impl: (c: CallCtx, name: string) => c.k.modules.symbol_put(name) },
]);
