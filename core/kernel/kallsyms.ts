// Which module a function belongs to, as kallsyms knows which module's text an address is in:
// %pS prints "name [module]", a WARN names the module, a device-memory tap is named after it.

/** Every module function the kernel was handed, with the name of its module. */
export const moduleOfFunction = new WeakMap<Function, string>();
