// Kernel version profiles (principle 7). Behaviour that differs between versions is data,
// consulted at named points; the code never compares version strings.

export type KernelVersion = "4.19" | "4.20" | "5.0";
export const KERNEL_VERSIONS: readonly KernelVersion[] = ["4.19", "4.20", "5.0"];

/** How devm_memremap_pages() and its release behave (spec mm-hmm R1.8, R2.5-R2.8). */
export interface MemremapBehaviour {
  /** 5.0 (patch 3/7): the first check is `!pgmap->ref || !pgmap->kill` -> -EINVAL.
   *  4.20 checks only `!pgmap->ref`, and only after the System RAM check. */
  readonly requireKill: boolean;
  /** What a System RAM overlap of the section-aligned span does.
   *  "linear-map": 4.20, REGION_INTERSECTS silently returns __va(res->start), MIXED -> -ENXIO.
   *  "reject": 5.0 (patch 2/7), anything not DISJOINT -> -ENXIO. */
  readonly systemRam: "linear-map" | "reject";
  /** The WARN_ONCE text of the System RAM check. */
  readonly systemRamWarn: "mixed-only" | "mixed-or-ram";
  /** 5.0: every error after the first checks ends in pgmap->kill(pgmap->ref). */
  readonly killOnError: boolean;
  /** 4.20 registers the release with an unchecked devm_add_action(); 5.0 uses
   *  devm_add_action_or_reset() and fails the call if that fails. */
  readonly releaseRegistration: "devm_add_action" | "devm_add_action_or_reset";
  /** 4.20 release: put_page loop, then WARN "page mapping is still live!" if the ref is live.
   *  5.0 release: pgmap->kill(ref) first, then the put_page loop, no liveness WARN. */
  readonly releaseKillsRef: boolean;
  /** 5.0 (patch 4/7): MEMORY_DEVICE_PRIVATE gets struct pages via add_pages(), no linear map. */
  readonly privateWithoutLinearMap: boolean;
  /** 4.20 (Duyck) initialises device pages in memmap_init_zone_device(), which prints
   *  "%s initialised, %lu pages in %ums"; 4.19 set page->pgmap in a loop of its own. */
  readonly memmapInitMessage: boolean;
}

/** How hmm_devmem_* work (spec mm-hmm R4.3, R4.6). */
export interface HmmBehaviour {
  /** 5.0 (patches 5-6/7): hmm_devmem is devm_kzalloc()ed and mapped with devm_memremap_pages();
   *  4.19/4.20 map it with hmm_devmem_pages_create() and free it through its own devres. */
  readonly devmemOnMemremap: boolean;
}

export interface VersionProfile {
  readonly version: KernelVersion;
  /** init_utsname()->release */
  readonly release: string;
  /** The date in `uname -v` / the "Linux version" banner: the release date of that kernel. */
  readonly buildDate: string;
  /** TAINT_FLAGS_COUNT */
  readonly taintFlagCount: number;
  /** x86-64 __PAGE_OFFSET_BASE with 4-level paging: only used to print linear-map addresses. */
  readonly pageOffset: bigint;
  readonly memremap: MemremapBehaviour;
  readonly hmm: HmmBehaviour;
}

const V4_20: VersionProfile = Object.freeze({
  version: "4.20",
  release: "4.20.0",
  buildDate: "Sun Dec 23 22:00:00 UTC 2018",
  taintFlagCount: 18,
  pageOffset: 0xffff888000000000n,
  memremap: Object.freeze({
    requireKill: false,
    systemRam: "linear-map",
    systemRamWarn: "mixed-only",
    killOnError: false,
    releaseRegistration: "devm_add_action",
    releaseKillsRef: false,
    privateWithoutLinearMap: false,
    memmapInitMessage: true,
  }),
  hmm: Object.freeze({ devmemOnMemremap: false }),
});

// 4.19 differs from 4.20 only in its release, its page offset and memmap_init_zone_device()
// (which came in 4.20, with its pr_info line).
const V4_19: VersionProfile = Object.freeze({
  ...V4_20,
  version: "4.19",
  release: "4.19.0",
  buildDate: "Mon Oct 22 06:40:00 UTC 2018",
  pageOffset: 0xffff880000000000n,
  memremap: Object.freeze({ ...V4_20.memremap, memmapInitMessage: false }),
});

const V5_0: VersionProfile = Object.freeze({
  version: "5.0",
  release: "5.0.0",
  buildDate: "Sun Mar 3 23:00:00 UTC 2019",
  taintFlagCount: 18,
  pageOffset: 0xffff888000000000n,
  memremap: Object.freeze({
    requireKill: true,
    systemRam: "reject",
    systemRamWarn: "mixed-or-ram",
    killOnError: true,
    releaseRegistration: "devm_add_action_or_reset",
    releaseKillsRef: true,
    privateWithoutLinearMap: true,
    memmapInitMessage: true,
  }),
  hmm: Object.freeze({ devmemOnMemremap: true }),
});

const PROFILES: Record<KernelVersion, VersionProfile> = { "4.19": V4_19, "4.20": V4_20, "5.0": V5_0 };

export function isKernelVersion(v: unknown): v is KernelVersion {
  return typeof v === "string" && Object.hasOwn(PROFILES, v);
}

export function profileFor(version: KernelVersion): VersionProfile {
  return PROFILES[version];
}
