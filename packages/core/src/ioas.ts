/**
 * IOAS objects and their ioctls (ioas.c): ALLOC, IOVA_RANGES, ALLOW_IOVAS, MAP, MAP_FILE,
 * COPY, UNMAP, CHANGE_PROCESS, OPTION (HUGE_PAGES) and VFIO_IOAS. Each handler checks in
 * the kernel's order; the order decides which errno wins.
 */
import {
  EFAULT,
  EINVAL,
  EMSGSIZE,
  ENODEV,
  EOPNOTSUPP,
  EOVERFLOW,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
  iommu_iova_range,
  type iommu_ioas_alloc,
  type iommu_ioas_allow_iovas,
  type iommu_ioas_change_process,
  type iommu_ioas_copy,
  type iommu_ioas_iova_ranges,
  type iommu_ioas_map,
  type iommu_ioas_map_file,
  type iommu_ioas_unmap,
  type iommu_option,
  type iommu_vfio_ioas,
} from '@iommufd/uapi';
import type { Errno } from './kernel.js';
import { ACCOUNT_MM, ACCOUNT_NONE, ACCOUNT_USER, type AccountMode, type IommufdCtxImpl, type Ucmd } from './context.js';
import { IommufdObject } from './object.js';
import { iommuProtOf, IoPagetable, PAGE_SIZE, ULONG_MAX, updatePinned, type IoptAccess, type IoptArea, type IoptPages, type IovaRange } from './io-pagetable.js';
import type { HwptPaging } from './hw-pagetable.js';

/** Fields of a decoded uAPI struct. */
type Cmd<L> = L extends { decode(b: Uint8Array): infer V } ? V : never;

/** An IOAS: an IOVA address space user space maps into. */
export class Ioas extends IommufdObject {
  /** `IOAS` */
  readonly type = 'IOAS' as const;
  /** The IOVA map. */
  readonly iopt: IoPagetable;
  /** HWPT_PAGING objects mirroring this IOAS (`hwpt_list`). */
  readonly hwptList: HwptPaging[] = [];
  /** Accesses attached, with the areas they pinned. */
  readonly accessPins = new Map<IoptAccess, Set<IoptArea>>();

  constructor(ictx: IommufdCtxImpl) {
    super(ictx);
    this.iopt = new IoPagetable(ictx);
  }

  /** `iommufd_ioas_destroy`: unmap everything. */
  destroy(): void {
    this.iopt.destroyAll();
  }

  /** The accesses holding pins inside `area` (for the unmap callback). */
  accessesOf(area: IoptArea): IoptAccess[] {
    return [...this.accessPins].filter(([, areas]) => areas.has(area)).map(([a]) => a);
  }
}

/** `iommufd_ioas_alloc` (also used by the VFIO compat path). */
export function ioasAlloc(ictx: IommufdCtxImpl): Ioas | Errno {
  return ictx.allocObject(new Ioas(ictx));
}

/** IOMMU_IOAS_ALLOC */
export function iommufdIoasAlloc(ucmd: Ucmd<Cmd<typeof iommu_ioas_alloc>>): 0 | Errno {
  const cmd = ucmd.cmd;
  if (cmd.flags) return EOPNOTSUPP;
  const ioas = ioasAlloc(ucmd.ictx);
  if (typeof ioas === 'number') return ioas;
  cmd.out_ioas_id = ioas.id;
  const rc = ucmd.respond();
  if (rc) {
    ucmd.ictx.abortAndDestroy(ioas);
    return rc;
  }
  ucmd.ictx.finalize(ioas);
  return 0;
}

/** IOMMU_IOAS_IOVA_RANGES: EMSGSIZE after a full copy-back when the array was too small. */
export function iommufdIoasIovaRanges(ucmd: Ucmd<Cmd<typeof iommu_ioas_iova_ranges>>): 0 | Errno {
  const cmd = ucmd.cmd;
  if (cmd.__reserved) return EOPNOTSUPP;
  const ioas = ucmd.ictx.getObject<Ioas>(cmd.ioas_id, 'IOAS');
  if (typeof ioas === 'number') return ioas;
  try {
    const ranges = ioas.iopt.usableRanges();
    const cap = cmd.num_iovas;
    for (let i = 0; i < ranges.length && i < cap; i++) {
      const bytes = iommu_iova_range.encode({ start: ranges[i]!.start, last: ranges[i]!.last });
      if (ucmd.ictx.process.copyToUser(cmd.allowed_iovas + BigInt(i * iommu_iova_range.size), bytes)) return EFAULT;
    }
    cmd.num_iovas = ranges.length;
    cmd.out_iova_alignment = ioas.iopt.iovaAlignment;
    const rc = ucmd.respond();
    if (rc) return rc;
    return ranges.length > cap ? EMSGSIZE : 0;
  } finally {
    ucmd.ictx.putObject(ioas);
  }
}

/** IOMMU_IOAS_ALLOW_IOVAS */
export function iommufdIoasAllowIovas(ucmd: Ucmd<Cmd<typeof iommu_ioas_allow_iovas>>): 0 | Errno {
  const cmd = ucmd.cmd;
  if (cmd.__reserved) return EOPNOTSUPP;
  const ioas = ucmd.ictx.getObject<Ioas>(cmd.ioas_id, 'IOAS');
  if (typeof ioas === 'number') return ioas;
  try {
    const ranges: IovaRange[] = [];
    for (let i = 0; i < cmd.num_iovas; i++) {
      const bytes = ucmd.ictx.process.copyFromUser(cmd.allowed_iovas + BigInt(i * iommu_iova_range.size), iommu_iova_range.size);
      if (typeof bytes === 'number') return EFAULT;
      const r = iommu_iova_range.decode(bytes);
      if (r.start >= r.last) return EINVAL;
      if (ranges.some((x) => x.start <= r.last && r.start <= x.last)) return EINVAL;
      ranges.push(r);
    }
    return ioas.iopt.setAllowed(ranges);
  } finally {
    ucmd.ictx.putObject(ioas);
  }
}

const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

/** Chooses or checks the IOVA and inserts the pieces (`iopt_map_pages`). */
export function mapAt(
  ioas: Ioas,
  flags: number,
  iovaIn: bigint,
  length: bigint,
  sourceAddr: bigint,
  makePieces: () => { pages: IoptPages; byteOffset: bigint; length: bigint }[] | Errno,
): bigint | Errno {
  const iopt = ioas.iopt;
  if (length % iopt.iovaAlignment) return EINVAL;
  let iova = iovaIn;
  if (flags & IOMMU_IOAS_MAP_FIXED_IOVA) {
    const rc = iopt.checkFixedIova(iova, length);
    if (rc) return rc;
  } else {
    const got = iopt.allocIova(sourceAddr, length);
    if (typeof got === 'number') return got;
    iova = got;
  }
  const pieces = makePieces();
  if (typeof pieces === 'number') return pieces;
  const rc = iopt.mapPieces(iova, pieces, iommuProtOf(flags, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_MAP_READABLE));
  if (rc) return rc;
  return iova;
}

/** `iopt_map_user_pages`: maps process memory at `va` (used by IOAS_MAP and VFIO MAP_DMA). */
export function mapUserPages(ioas: Ioas, flags: number, iova: bigint, va: bigint, length: bigint): bigint | Errno {
  const writable = (flags & IOMMU_IOAS_MAP_WRITEABLE) !== 0;
  return mapAt(ioas, flags, iova, length, va, () => {
    const p = IoPagetable.userPages(ioas.ictx, va, length, writable);
    return [{ ...p, length }];
  });
}

/** IOMMU_IOAS_MAP */
export function iommufdIoasMap(ucmd: Ucmd<Cmd<typeof iommu_ioas_map>>): 0 | Errno {
  const cmd = ucmd.cmd;
  if (cmd.flags & ~MAP_FLAGS || cmd.__reserved) return EOPNOTSUPP;
  if (cmd.iova >= ULONG_MAX || cmd.length >= ULONG_MAX) return EOVERFLOW;
  if (!(cmd.flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE))) return EINVAL;
  const ioas = ucmd.ictx.getObject<Ioas>(cmd.ioas_id, 'IOAS');
  if (typeof ioas === 'number') return ioas;
  try {
    if (cmd.user_va + cmd.length > ULONG_MAX) return EOVERFLOW;
    if (cmd.length === 0n || cmd.length > ULONG_MAX - PAGE_SIZE) return EINVAL;
    const iova = mapUserPages(ioas, cmd.flags, cmd.iova, cmd.user_va, cmd.length);
    if (typeof iova === 'number') return iova;
    cmd.iova = iova;
    return ucmd.respond();
  } finally {
    ucmd.ictx.putObject(ioas);
  }
}

/** IOMMU_IOAS_MAP_FILE */
export function iommufdIoasMapFile(ucmd: Ucmd<Cmd<typeof iommu_ioas_map_file>>): 0 | Errno {
  const cmd = ucmd.cmd;
  if (cmd.flags & ~MAP_FLAGS) return EOPNOTSUPP;
  if (cmd.iova >= ULONG_MAX || cmd.length >= ULONG_MAX) return EOVERFLOW;
  if (!(cmd.flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE))) return EINVAL;
  const ioas = ucmd.ictx.getObject<Ioas>(cmd.ioas_id, 'IOAS');
  if (typeof ioas === 'number') return ioas;
  try {
    // fget() comes before any length check (iopt_alloc_file_pages runs after it).
    const file = ucmd.ictx.process.fileForFd(cmd.fd);
    if (typeof file === 'number') return file;
    if (cmd.length && cmd.start + cmd.length - 1n > ULONG_MAX) return EOVERFLOW;
    // iopt_alloc_pages: the page count must not overflow size_t.
    if (cmd.length === 0n || cmd.length > ULONG_MAX - PAGE_SIZE) return EINVAL;
    const writable = (cmd.flags & IOMMU_IOAS_MAP_WRITEABLE) !== 0;
    const iova = mapAt(ioas, cmd.flags, cmd.iova, cmd.length, cmd.start, () => {
      const p = IoPagetable.filePages(ucmd.ictx, file, cmd.start, cmd.length, writable);
      return [{ ...p, length: cmd.length }];
    });
    if (typeof iova === 'number') return iova;
    cmd.iova = iova;
    return ucmd.respond();
  } finally {
    ucmd.ictx.putObject(ioas);
  }
}

/** IOMMU_IOAS_COPY: the destination shares the source's pinned pages. */
export function iommufdIoasCopy(ucmd: Ucmd<Cmd<typeof iommu_ioas_copy>>): 0 | Errno {
  const cmd = ucmd.cmd;
  if (cmd.flags & ~MAP_FLAGS) return EOPNOTSUPP;
  if (cmd.length >= ULONG_MAX || cmd.src_iova >= ULONG_MAX || cmd.dst_iova >= ULONG_MAX) return EOVERFLOW;
  if (!(cmd.flags & (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE))) return EINVAL;
  const src = ucmd.ictx.getObject<Ioas>(cmd.src_ioas_id, 'IOAS');
  if (typeof src === 'number') return src;
  let pieces;
  try {
    if (cmd.length === 0n) return EINVAL;
    if (cmd.src_iova + cmd.length - 1n > ULONG_MAX) return EOVERFLOW;
    pieces = src.iopt.getPieces(cmd.src_iova, cmd.length);
    if (typeof pieces === 'number') return pieces;
  } finally {
    ucmd.ictx.putObject(src);
  }
  const dst = ucmd.ictx.getObject<Ioas>(cmd.dst_ioas_id, 'IOAS');
  if (typeof dst === 'number') return dst;
  try {
    const got = pieces;
    const iova = mapAt(dst, cmd.flags, cmd.dst_iova, cmd.length, cmd.src_iova, () => got);
    if (typeof iova === 'number') return iova;
    cmd.dst_iova = iova;
    return ucmd.respond();
  } finally {
    ucmd.ictx.putObject(dst);
  }
}

/** IOMMU_IOAS_UNMAP: whole areas only; iova 0 + length U64_MAX unmaps everything. */
export function iommufdIoasUnmap(ucmd: Ucmd<Cmd<typeof iommu_ioas_unmap>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ioas = ucmd.ictx.getObject<Ioas>(cmd.ioas_id, 'IOAS');
  if (typeof ioas === 'number') return ioas;
  try {
    let unmapped: bigint;
    if (cmd.iova === 0n && cmd.length === ULONG_MAX) {
      const r = ioas.iopt.unmapAll((a) => ioas.accessesOf(a));
      if (r.rc) return r.rc;
      unmapped = r.unmapped;
    } else {
      if (cmd.iova >= ULONG_MAX || cmd.length >= ULONG_MAX) return EOVERFLOW;
      if (cmd.length === 0n) return EINVAL;
      const last = cmd.iova + cmd.length - 1n;
      if (last > ULONG_MAX) return EOVERFLOW;
      const r = ioas.iopt.unmapRange(cmd.iova, last, (a) => ioas.accessesOf(a));
      if (r.rc) return r.rc;
      unmapped = r.unmapped;
    }
    cmd.length = unmapped;
    return ucmd.respond();
  } finally {
    ucmd.ictx.putObject(ioas);
  }
}

/** IOMMU_OPTION_HUGE_PAGES on an IOAS (`iommufd_ioas_option`). */
export function ioasOptionHugePages(ucmd: Ucmd<Cmd<typeof iommu_option>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ioas = ucmd.ictx.getObject<Ioas>(cmd.object_id, 'IOAS');
  if (typeof ioas === 'number') return ioas;
  try {
    const iopt = ioas.iopt;
    if (cmd.op === IOMMU_OPTION_OP_GET) {
      cmd.val64 = iopt.disableLargePages ? 0n : 1n;
      return 0;
    }
    if (cmd.op !== IOMMU_OPTION_OP_SET) return EOPNOTSUPP;
    if (cmd.val64 === 0n) return iopt.disableLargePagesChecked();
    if (cmd.val64 === 1n) {
      iopt.enableLargePages();
      return 0;
    }
    return EINVAL;
  } finally {
    ucmd.ictx.putObject(ioas);
  }
}

/**
 * IOMMU_IOAS_CHANGE_PROCESS: makes the caller the source process of every IOAS's pages (whose
 * memory later pins come from, to whom they are accounted). Every area must be file backed
 * (EINVAL). Each pages keeps its accounting mode; those that are accounted and belong to
 * another process have their pinned count charged to the caller first — all modes at once,
 * all or nothing — then uncharged from the old process.
 */
export function iommufdIoasChangeProcess(ucmd: Ucmd<Cmd<typeof iommu_ioas_change_process>>): 0 | Errno {
  const cmd = ucmd.cmd;
  if (cmd.__reserved) return EOPNOTSUPP;
  const ictx = ucmd.ictx;
  const current = ictx.process;
  const all = new Set<IoptPages>();
  for (const ioas of ictx.allOfType<Ioas>('IOAS')) {
    for (const a of ioas.iopt.areas) {
      if (a.pages.source.kind !== 'file') return EINVAL;
      all.add(a.pages);
    }
  }
  // need_charge_update: the users of the model's processes are all one, so a different
  // process is what makes USER and MM accounting move.
  const moves = (p: IoptPages): boolean => p.accountMode !== ACCOUNT_NONE && p.process !== current;
  const npinned = new Map<AccountMode, number>([
    [ACCOUNT_USER, 0],
    [ACCOUNT_MM, 0],
  ]);
  for (const p of all) if (moves(p)) npinned.set(p.accountMode, npinned.get(p.accountMode)! + p.chargedPages);
  // charge_current, in account-mode order, undoing the earlier modes on failure.
  const charged: [AccountMode, number][] = [];
  for (const [mode, n] of npinned) {
    if (!n) continue;
    const rc = updatePinned(current, mode, n, true);
    if (rc) {
      for (const [m, k] of charged.reverse()) updatePinned(current, m, k, false);
      return rc;
    }
    charged.push([mode, n]);
  }
  let rc: 0 | Errno = 0;
  for (const p of all) {
    if (moves(p)) {
      // Uncharging an exited MM-accounted process fails (its mm is gone); the kernel warns,
      // reports it, and moves the pages all the same.
      const r = updatePinned(p.process, p.accountMode, p.chargedPages, false);
      if (r) rc = r;
    }
    p.process = current;
  }
  return rc;
}

/** IOMMU_VFIO_IOAS: GET does not create a compat IOAS (ENODEV). */
export function iommufdVfioIoas(ucmd: Ucmd<Cmd<typeof iommu_vfio_ioas>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  if (cmd.__reserved) return EOPNOTSUPP;
  switch (cmd.op) {
    case IOMMU_VFIO_IOAS_GET: {
      if (!ictx.vfioIoas) return ENODEV;
      cmd.ioas_id = ictx.vfioIoas.id;
      return ucmd.respond();
    }
    case IOMMU_VFIO_IOAS_SET: {
      const ioas = ictx.getObject<Ioas>(cmd.ioas_id, 'IOAS');
      if (typeof ioas === 'number') return ioas;
      ictx.vfioIoas = ioas;
      ictx.putObject(ioas);
      return 0;
    }
    case IOMMU_VFIO_IOAS_CLEAR:
      ictx.vfioIoas = undefined;
      return 0;
    default:
      return EOPNOTSUPP;
  }
}

