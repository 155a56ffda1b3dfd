/**
 * What the platform tests share: a VMM on a host preset, driven only through the Host
 * contract and the @iommufd/uapi wrappers — guest RAM mmap'ed and mapped into an IOAS at
 * GPA 0, VFIO cdevs bound, and small helpers for little-endian words in guest RAM.
 */
import * as U from '@iommufd/uapi';
import { expect } from 'vitest';
import { createHost, type Host, type HostOptions, type HostProcess } from '../../src/index.js';

/**
 * A Host process (the VMM's by default) for the wrappers, with peek/poke that throw at the
 * failing access (uapi's peekUser/pokeUser) rather than return -errno, so a test fails where
 * memory was wrong.
 */
export function userProcess(host: Host, p: HostProcess = host.process): U.UserProcess {
  return {
    ioctl: (fd, request, arg) => p.ioctl(fd, request, arg),
    mmap: (length, prot, flags, fd, offset) => p.mmap(length, prot, flags, fd, offset),
    munmap: (va, length) => p.munmap(va, length),
    poke: (va, bytes) => U.pokeUser(p, va, bytes),
    peek: (va, length) => U.peekUser(p, va, length),
    read: (fd, buf) => p.read(fd, buf),
    write: (fd, buf) => p.write(fd, buf),
  };
}

/** The VMM process of `host` with /dev/iommu open and every VFIO cdev open and bound to it. */
export function bindVmm(host: Host) {
  const p = userProcess(host);
  const fd = host.process.open('/dev/iommu');
  expect(fd).toBeGreaterThan(0);
  const deviceFds = host.vfioDevices.map((path) => host.process.open(path));
  const devIds = deviceFds.map((dfd) => U.vfioDeviceBindIommufd(p, dfd, { iommufd: fd }));
  return { p, fd, deviceFds, devIds };
}

/** A VMM on a fresh host: /dev/iommu open, every VFIO cdev open and bound, guest RAM in an IOAS at GPA 0. */
export async function bootVmm(options: HostOptions & { guestRam?: bigint }) {
  const host = await createHost(options);
  const { p, fd, deviceFds, devIds } = bindVmm(host);
  const guestRam = options.guestRam ?? 2n << 20n;
  const ram = p.mmap(guestRam, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED | U.MAP_ANONYMOUS, -1, 0);
  expect(ram > 0n).toBe(true);
  const ioas = U.ioasAlloc(p, fd);
  expect(U.ioasMap(p, fd, { ioasId: ioas, userVa: ram, length: guestRam, iova: 0n })).toBe(0n);
  return { host, p, fd, deviceFds, devIds, ram, guestRam, ioas };
}

/** Little-endian u64 at `va`. */
export function peek64(p: U.UserProcess, va: bigint): bigint {
  return new DataView(U.peekUser(p, va, 8).buffer).getBigUint64(0, true);
}

/** Writes little-endian u64 words at `va`. */
export function poke64(p: U.UserProcess, va: bigint, ...words: bigint[]): void {
  const b = new Uint8Array(8 * words.length);
  words.forEach((w, i) => new DataView(b.buffer).setBigUint64(8 * i, w, true));
  p.poke(va, b);
}

/** `n` bytes counting up from `start` (distinct, recognisable DMA payloads). */
export function pattern(n: number, start: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
}

/** The errno and entry_num of an IOMMU_HWPT_INVALIDATE (0 and the count on success). */
export function invalidateResult(p: U.UserProcess, fd: number, args: U.InvalidateArgs): [number, number] {
  try {
    return [0, U.hwptInvalidate(p, fd, args).entryNum];
  } catch (e) {
    if (!(e instanceof U.IommufdError)) throw e;
    return [e.errno, e.entryNum ?? -1];
  }
}

/** The errno of a wrapper call that should fail (0 when it succeeded). */
export function errnoOf(f: () => unknown): number {
  try {
    f();
    return 0;
  } catch (e) {
    if (!(e instanceof U.IommufdError)) throw e;
    return e.errno;
  }
}

/**
 * A host with one device (`deviceIndex`) bound to a fresh /dev/iommu and attached to a new
 * IOAS, plus one page of anonymous memory holding `bytes` — the set-up of the small
 * per-platform DMA checks.
 */
export async function attachedDevice(options: HostOptions, deviceIndex: number, bytes: Uint8Array) {
  const host = await createHost(options);
  const p = host.process;
  const fd = p.open('/dev/iommu');
  const path = host.vfioDevices[deviceIndex]!;
  const dev = p.open(path);
  U.vfioDeviceBindIommufd(p, dev, { iommufd: fd });
  const ioas = U.ioasAlloc(p, fd);
  U.vfioDeviceAttachIommufdPt(p, dev, { ptId: ioas });
  const va = p.mmap(4096n, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
  p.poke(va, bytes);
  return { host, p, fd, dev, path, ioas, va };
}
