// The user interface of /dev/dri/renderD128 and its siblings: include/uapi/drm/nouveau_drm.h's
// SVM ioctls (as merged in 5.3), and kemu's vector-add command, which real nouveau does not
// have (it runs user-space shaders through channels instead). Plain arithmetic, shared by the
// driver and by user space (tests).

/** DRM_IOCTL_BASE 'd', DRM_COMMAND_BASE 0x40: the driver's ioctls are 0x40-0x9f. */
export const DRM_IOCTL_BASE = 0x64;
export const DRM_COMMAND_BASE = 0x40;
export const DRM_COMMAND_END = 0xa0;

export const DRM_NOUVEAU_SVM_INIT = 0x08;
export const DRM_NOUVEAU_SVM_BIND = 0x09;
/** kemu's: in the driver range, at a number nouveau leaves unused. */
export const DRM_NOUVEAU_KEMU_VADD = 0x30;

/** struct drm_nouveau_svm_init { __u64 unmanaged_addr; __u64 unmanaged_size; } */
export const DRM_NOUVEAU_SVM_INIT_SIZE = 16;
/** struct drm_nouveau_svm_bind { __u64 header, va_start, va_end, npages, stride, result, reserved0, reserved1; } */
export const DRM_NOUVEAU_SVM_BIND_SIZE = 64;
/**
 * struct drm_nouveau_kemu_vadd { __u64 a, b, c; __u64 count; __u64 vram_pages, host_pages,
 * faults; __u64 reserved; }: c[i] = a[i] + b[i] for count int32 elements at the user addresses
 * a, b, c (4-byte aligned), run by the GPU in the client's SVM address space; the pages it used
 * from VRAM and from system memory, and the GPU faults serviced, come back.
 */
export const DRM_NOUVEAU_KEMU_VADD_SIZE = 64;

/** _IOWR('d', nr, size): dir 3 << 30 | size << 16 | type << 8 | nr. */
export function DRM_IOWR(nr: number, size: number): number {
  return 3 * 2 ** 30 + size * 2 ** 16 + DRM_IOCTL_BASE * 2 ** 8 + nr;
}

export const DRM_IOCTL_NOUVEAU_SVM_INIT = DRM_IOWR(DRM_COMMAND_BASE + DRM_NOUVEAU_SVM_INIT, DRM_NOUVEAU_SVM_INIT_SIZE);
export const DRM_IOCTL_NOUVEAU_SVM_BIND = DRM_IOWR(DRM_COMMAND_BASE + DRM_NOUVEAU_SVM_BIND, DRM_NOUVEAU_SVM_BIND_SIZE);
export const DRM_IOCTL_NOUVEAU_KEMU_VADD = DRM_IOWR(DRM_COMMAND_BASE + DRM_NOUVEAU_KEMU_VADD, DRM_NOUVEAU_KEMU_VADD_SIZE);

export const NOUVEAU_SVM_BIND_COMMAND_SHIFT = 0;
export const NOUVEAU_SVM_BIND_COMMAND_BITS = 8;
export const NOUVEAU_SVM_BIND_COMMAND_MASK = (1 << 8) - 1;
export const NOUVEAU_SVM_BIND_PRIORITY_SHIFT = 8;
export const NOUVEAU_SVM_BIND_PRIORITY_BITS = 8;
export const NOUVEAU_SVM_BIND_PRIORITY_MASK = (1 << 8) - 1;
export const NOUVEAU_SVM_BIND_TARGET_SHIFT = 16;
export const NOUVEAU_SVM_BIND_TARGET_BITS = 32;
export const NOUVEAU_SVM_BIND_TARGET_MASK = 0xffffffff;
export const NOUVEAU_SVM_BIND_VALID_BITS = 48;
export const NOUVEAU_SVM_BIND_COMMAND__MIGRATE = 0;
export const NOUVEAU_SVM_BIND_TARGET__GPU_VRAM = 2 ** 31;

/** header = command | priority << 8 | target << 16 */
export function nouveau_svm_bind_header(command: number, target: number, priority = 0): number {
  return command + priority * 2 ** NOUVEAU_SVM_BIND_PRIORITY_SHIFT + target * 2 ** NOUVEAU_SVM_BIND_TARGET_SHIFT;
}

/** A __u64 field (little-endian) as a number; exact below 2^53. */
export function u64_get(b: Uint8Array, off: number): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return v.getUint32(off + 4, true) * 2 ** 32 + v.getUint32(off, true);
}

export function u64_set(b: Uint8Array, off: number, x: number): void {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  v.setUint32(off, x % 2 ** 32, true);
  v.setUint32(off + 4, Math.floor(x / 2 ** 32) % 2 ** 32, true);
}

/** A struct of __u64 fields in declaration order, as bytes. */
export function u64_struct(fields: readonly string[], values: Partial<Record<string, number>>): Uint8Array {
  const b = new Uint8Array(fields.length * 8);
  fields.forEach((f, i) => u64_set(b, i * 8, values[f] ?? 0));
  return b;
}

/** The fields back from the bytes. */
export function u64_fields(fields: readonly string[], b: Uint8Array): Record<string, number> {
  return Object.fromEntries(fields.map((f, i) => [f, u64_get(b, i * 8)]));
}

export const SVM_INIT_FIELDS = ["unmanaged_addr", "unmanaged_size"] as const;
export const SVM_BIND_FIELDS = ["header", "va_start", "va_end", "npages", "stride", "result", "reserved0", "reserved1"] as const;
export const KEMU_VADD_FIELDS = ["a", "b", "c", "count", "vram_pages", "host_pages", "faults", "reserved"] as const;
