// include/linux/license.h: the license strings the kernel treats as GPL-compatible.

export const GPL_COMPATIBLE_LICENSES: readonly string[] = [
  "GPL",
  "GPL v2",
  "GPL and additional rights",
  "Dual BSD/GPL",
  "Dual MIT/GPL",
  "Dual MPL/GPL",
];

/** license_is_gpl_compatible(): an exact, case-sensitive match of the whole string. */
export function license_is_gpl_compatible(license: string): boolean {
  return GPL_COMPATIBLE_LICENSES.includes(license);
}
