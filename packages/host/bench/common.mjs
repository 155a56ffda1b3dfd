// What the Host benchmarks share (shared/design/BENCH.md): argument parsing (`NAME…`,
// `--tiny` for the harness test), best-of-5-after-warm-up timing, number formatting, and a
// VMM on a host preset driven only through the Host contract and @iommufd/uapi's wrappers.
import * as U from '@iommufd/uapi';
import { createHost } from '@iommufd/host';

/** Timed runs per figure (the best one is reported). */
export const RUNS = 5;

/**
 * `{ selected, tiny }` for a benchmark file owning `own`: selected is false when the
 * command line names only other benchmarks; `--tiny` shrinks every size (tests).
 */
export function parseArgs(own) {
  const args = process.argv.slice(2);
  const tiny = args.includes('--tiny');
  const names = args.filter((a) => !a.startsWith('--'));
  return { selected: names.length === 0 || names.includes(own), tiny };
}

/** A figure as BENCH.md prints them: integers from 100 up, else 3 significant digits. */
export const fmt = (x) => (x >= 100 ? Math.round(x).toString() : x.toPrecision(3));

/** Nanoseconds of `f()` (one call). */
export function timeNs(f) {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0);
}

/** Best of {@link RUNS} timings (ns) of `reps` calls of `op(i)`, after one untimed warm-up pass. */
export function bestNs(op, reps, runs = RUNS) {
  const pass = () => {
    for (let i = 0; i < reps; i++) op(i);
  };
  pass();
  let best = Infinity;
  for (let r = 0; r < runs; r++) best = Math.min(best, timeNs(pass));
  return best;
}

/** Throws unless a raw ioctl returned 0 (benchmarks never time a failing call). */
export function ok(what, rc) {
  if (rc !== 0) throw new Error(`${what}: ${rc < 0 ? U.errnoName(-rc) : rc}`);
}

/** Whether `createHost` knows `platform` in this build (presets land separately). */
export async function platformAvailable(platform) {
  try {
    await createHost({ platform, devices: 0 });
    return true;
  } catch (e) {
    if (e?.code === 'PLATFORM_NOT_AVAILABLE' || e?.code === 'UNKNOWN_PLATFORM') return false;
    throw e;
  }
}

/**
 * A VMM on a fresh host: /dev/iommu open, every VFIO cdev bound, an IOAS; `guestRam` bytes
 * of shared anonymous memory mapped at IOVA `iova` (default 0) when given.
 */
export async function bootVmm(options, guestRam = 0n, iova = 0n) {
  const host = await createHost(options);
  const p = host.process; // the uapi wrappers take the Host's process as it is
  const fd = host.process.open('/dev/iommu');
  if (fd < 0) throw new Error(`open /dev/iommu: ${U.errnoName(-fd)}`);
  const deviceFds = host.vfioDevices.map((path) => host.process.open(path));
  const devIds = deviceFds.map((dfd) => U.vfioDeviceBindIommufd(p, dfd, { iommufd: fd }));
  const ioas = U.ioasAlloc(p, fd);
  let ram = 0n;
  if (guestRam > 0n) {
    ram = p.mmap(guestRam, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED | U.MAP_ANONYMOUS, -1, 0);
    if (ram < 0n) throw new Error(`mmap ${guestRam}: ${U.errnoName(Number(-ram))}`);
    U.ioasMap(p, fd, { ioasId: ioas, userVa: ram, length: guestRam, iova });
  }
  return { host, p, fd, deviceFds, devIds, ram, ioas, iova };
}

/** Places `bytes` in fresh anonymous process memory; its VA. */
export function place(p, bytes) {
  const va = p.mmap(BigInt(Math.max(bytes.length, 1)), U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
  if (va < 0n) throw new Error(`mmap ${bytes.length}: ${U.errnoName(Number(-va))}`);
  U.pokeUser(p, va, bytes);
  return va;
}

/** SMMUv3 commands (dw0, dw1 pairs) as one little-endian array of 16-byte entries. */
export function cmdArray(cmds) {
  const out = new Uint8Array(16 * cmds.length);
  const dv = new DataView(out.buffer);
  cmds.forEach(([a, b], i) => {
    dv.setBigUint64(16 * i, a, true);
    dv.setBigUint64(16 * i + 8, b, true);
  });
  return out;
}

/** The arm-smmuv3 preset up to a vIOMMU (ARM_SMMUV3) on a nesting parent, device 0 attached to it. */
export async function bootVsmmu(devices) {
  const vmm = await bootVmm({ platform: 'arm-smmuv3', devices }, 2n << 20n);
  const { p, fd, deviceFds, devIds, ioas } = vmm;
  const parent = U.hwptAlloc(p, fd, { devId: devIds[0], ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  U.vfioDeviceAttachIommufdPt(p, deviceFds[0], { ptId: parent });
  const viommu = U.viommuAlloc(p, fd, { devId: devIds[0], hwptId: parent, type: U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3 }).id;
  return { ...vmm, parent, viommu };
}

/** Heap and RSS of this process in MiB, for the scale figures. */
export function memoryFigures() {
  const m = process.memoryUsage();
  return `heap_mib=${(m.heapUsed / 2 ** 20).toFixed(1)} rss_mib=${(m.rss / 2 ** 20).toFixed(1)} external_mib=${(m.external / 2 ** 20).toFixed(1)}`;
}
