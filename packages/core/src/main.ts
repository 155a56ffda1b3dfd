/**
 * The ioctl dispatch table as data (main.c `iommufd_ioctl_ops[]`): one row per ioctl with
 * its struct, minimum size and handler, plus IOMMU_DESTROY and IOMMU_OPTION, which live in
 * main.c in the kernel too.
 */
import {
  EBUSY,
  EFAULT,
  EINVAL,
  ENOTTY,
  EOPNOTSUPP,
  EPERM,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  IOMMUFD_CMD_BASE,
  IOMMUFD_IOCTLS,
  copyStructFromUserAt,
  structBytesForUser,
  iommu_option,
  type IommufdIoctl,
  type IommufdIoctlName,
  type iommu_destroy,
} from '@iommufd/uapi';
import { ACCOUNT_MM, ACCOUNT_USER, type IommufdCtxImpl, type Ucmd } from './context.js';
import type { Errno } from './kernel.js';
import {
  ioasOptionHugePages,
  iommufdIoasAlloc,
  iommufdIoasAllowIovas,
  iommufdIoasChangeProcess,
  iommufdIoasCopy,
  iommufdIoasIovaRanges,
  iommufdIoasMap,
  iommufdIoasMapFile,
  iommufdIoasUnmap,
  iommufdVfioIoas,
} from './ioas.js';
import {
  iommufdHwptAlloc,
  iommufdHwptGetDirtyBitmap,
  iommufdHwptInvalidate,
  iommufdHwptSetDirtyTracking,
} from './hw-pagetable.js';
import { iommufdGetHwInfo } from './device.js';
import { iommufdViommuAlloc } from './viommu.js';
import { iommufdVdeviceAlloc } from './vdevice.js';
import { iommufdHwQueueAlloc } from './hw-queue.js';
import { iommufdFaultAlloc, iommufdVeventqAlloc } from './eventq.js';
import { vfioCompatIoctl } from './vfio-compat.js';

type Cmd<L> = L extends { decode(b: Uint8Array): infer V } ? V : never;

/** An ioctl handler: 0 or a positive errno. */
// The table mixes struct types; each handler is typed against its own struct.
export type IoctlHandler = (ucmd: Ucmd<never>) => 0 | Errno;

/** IOMMU_DESTROY: any type; EBUSY unless only the map holds the object. */
function iommufdDestroy(ucmd: Ucmd<Cmd<typeof iommu_destroy>>): 0 | Errno {
  return ucmd.ictx.removeObject(undefined, ucmd.cmd.id, 0);
}

/** IOMMU_OPTION: only val64 is copied back. */
function iommufdOption(ucmd: Ucmd<Cmd<typeof iommu_option>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  if (cmd.__reserved) return EOPNOTSUPP;
  let rc: 0 | Errno;
  switch (cmd.option_id) {
    case IOMMU_OPTION_RLIMIT_MODE:
      rc = optionRlimitMode(ictx, cmd);
      break;
    case IOMMU_OPTION_HUGE_PAGES:
      rc = ioasOptionHugePages(ucmd);
      break;
    default:
      return EOPNOTSUPP;
  }
  if (rc) return rc;
  const val = new Uint8Array(8);
  new DataView(val.buffer).setBigUint64(0, cmd.val64, true);
  return ictx.process.copyToUser(ucmd.arg + BigInt(iommu_option.offsetOf('val64')), val) ? EFAULT : 0;
}

function optionRlimitMode(ictx: IommufdCtxImpl, cmd: Cmd<typeof iommu_option>): 0 | Errno {
  if (cmd.object_id) return EOPNOTSUPP;
  if (cmd.op === IOMMU_OPTION_OP_GET) {
    cmd.val64 = ictx.accountMode === ACCOUNT_MM ? 1n : 0n;
    return 0;
  }
  if (cmd.op === IOMMU_OPTION_OP_SET) {
    if (!ictx.process.capable('CAP_SYS_RESOURCE')) return EPERM;
    // Only an empty context (no object at all, bound devices included) may switch.
    if (ictx.objectCount) return EBUSY;
    if (cmd.val64 === 0n) ictx.accountMode = ACCOUNT_USER;
    else if (cmd.val64 === 1n) ictx.accountMode = ACCOUNT_MM;
    else return EINVAL;
    return 0;
  }
  return EOPNOTSUPP;
}

const HANDLERS: Record<IommufdIoctlName, IoctlHandler> = {
  IOMMU_DESTROY: iommufdDestroy as IoctlHandler,
  IOMMU_IOAS_ALLOC: iommufdIoasAlloc as IoctlHandler,
  IOMMU_IOAS_ALLOW_IOVAS: iommufdIoasAllowIovas as IoctlHandler,
  IOMMU_IOAS_COPY: iommufdIoasCopy as IoctlHandler,
  IOMMU_IOAS_IOVA_RANGES: iommufdIoasIovaRanges as IoctlHandler,
  IOMMU_IOAS_MAP: iommufdIoasMap as IoctlHandler,
  IOMMU_IOAS_UNMAP: iommufdIoasUnmap as IoctlHandler,
  IOMMU_OPTION: iommufdOption as IoctlHandler,
  IOMMU_VFIO_IOAS: iommufdVfioIoas as IoctlHandler,
  IOMMU_HWPT_ALLOC: iommufdHwptAlloc as IoctlHandler,
  IOMMU_GET_HW_INFO: iommufdGetHwInfo as IoctlHandler,
  IOMMU_HWPT_SET_DIRTY_TRACKING: iommufdHwptSetDirtyTracking as IoctlHandler,
  IOMMU_HWPT_GET_DIRTY_BITMAP: iommufdHwptGetDirtyBitmap as IoctlHandler,
  IOMMU_HWPT_INVALIDATE: iommufdHwptInvalidate as IoctlHandler,
  IOMMU_FAULT_QUEUE_ALLOC: iommufdFaultAlloc as IoctlHandler,
  IOMMU_IOAS_MAP_FILE: iommufdIoasMapFile as IoctlHandler,
  IOMMU_VIOMMU_ALLOC: iommufdViommuAlloc as IoctlHandler,
  IOMMU_VDEVICE_ALLOC: iommufdVdeviceAlloc as IoctlHandler,
  IOMMU_IOAS_CHANGE_PROCESS: iommufdIoasChangeProcess as IoctlHandler,
  IOMMU_VEVENTQ_ALLOC: iommufdVeventqAlloc as IoctlHandler,
  IOMMU_HW_QUEUE_ALLOC: iommufdHwQueueAlloc as IoctlHandler,
};

/** One row of the dispatch table: the uAPI row plus its handler. */
export interface DispatchRow extends IommufdIoctl {
  /** The handler. */
  readonly handler: IoctlHandler;
}

/** The dispatch table, indexed by `nr - IOMMUFD_CMD_BASE`. */
export const IOMMUFD_DISPATCH: readonly DispatchRow[] = IOMMUFD_IOCTLS.map((row) => ({ ...row, handler: HANDLERS[row.name] }));

/** The selftest's IOMMU_TEST_CMD number (`IOMMUFD_CMD_BASE + 32`). */
export const IOMMU_TEST_CMD_NR = 0xa0;

/** Handler of IOMMU_TEST_CMD supplied by the host (the selftest kernel's iommufd_test()). */
export type TestCommandHandler = (ctx: IommufdCtxImpl, arg: bigint, userSize: number) => number;

/**
 * `iommufd_fops_ioctl`: route, read `size`, check the row, apply the size-extensibility rule,
 * run the handler, finalize or destroy a ucmd-style object. Returns 0 or -errno.
 */
export function dispatchIoctl(ictx: IommufdCtxImpl, request: number, arg: bigint, testCommand?: TestCommandHandler): number {
  const nr = request & 0xff;
  const tableLen = testCommand ? IOMMU_TEST_CMD_NR - IOMMUFD_CMD_BASE + 1 : IOMMUFD_DISPATCH.length;
  if (nr < IOMMUFD_CMD_BASE || nr - IOMMUFD_CMD_BASE >= tableLen) return vfioCompatIoctl(ictx, request, arg);
  const sizeBytes = ictx.process.copyFromUser(arg, 4);
  if (typeof sizeBytes === 'number') return -EFAULT;
  // Little-endian u32 from the bytes (a DataView would move the small array out of the JS heap).
  const userSize = (sizeBytes[0]! | (sizeBytes[1]! << 8) | (sizeBytes[2]! << 16) | (sizeBytes[3]! << 24)) >>> 0;
  if (nr === IOMMU_TEST_CMD_NR && testCommand) {
    if (request >>> 0 !== (0x3b00 | IOMMU_TEST_CMD_NR)) return -ENOTTY;
    return testCommand(ictx, arg, userSize);
  }
  const row = IOMMUFD_DISPATCH[nr - IOMMUFD_CMD_BASE];
  if (!row || row.request !== request >>> 0) return -ENOTTY;
  if (userSize < row.minSize) return -EINVAL;
  const cmd = copyStructFromUserAt(row.layout, (va, n) => ictx.process.copyFromUser(va, n), arg, userSize);
  if (typeof cmd === 'number') return -cmd;
  const ucmd: Ucmd<typeof cmd> = {
    ictx,
    arg,
    userSize,
    cmd,
    newObj: undefined,
    respond() {
      return ictx.process.copyToUser(arg, structBytesForUser(row.layout, cmd, userSize)) ? EFAULT : 0;
    },
  };
  const rc = row.handler(ucmd as Ucmd<never>);
  if (ucmd.newObj) {
    if (rc === 0) ictx.finalize(ucmd.newObj);
    else ictx.abortAndDestroy(ucmd.newObj);
  }
  return rc ? -rc : 0;
}
