// When kernel objects die. Code that frees an object calls object_gone(); every handle a
// module was given for it then goes stale (principle 3), without the freeing code knowing
// about modules. An object that comes back (a device added again) starts a new life.

const generation = new WeakMap<object, number>();
/** Objects that live in another's memory (a struct in a kzalloc()ed buffer). */
const tenants = new WeakMap<object, object[]>();

/** The object was freed or unregistered: handles to its current life go stale. */
export function object_gone(obj: object): void {
  generation.set(obj, (generation.get(obj) ?? 0) + 1);
  const t = tenants.get(obj);
  if (t) {
    tenants.delete(obj);
    for (const o of t) object_gone(o);
  }
}

/** `obj` lives in `memory`: it goes when that memory is freed. */
export function object_lives_in(obj: object, memory: object): void {
  const t = tenants.get(memory);
  if (t) t.push(obj);
  else tenants.set(memory, [obj]);
}

/** Which life of the object this is (0 until it first goes). */
export function object_generation(obj: object): number {
  return generation.get(obj) ?? 0;
}
