/**
 * What the VT-d acceptance suites share (vtd-selftests, vtd-hostile): a VMM process on the
 * `intel-vtd` preset with /dev/iommu open, every VFIO cdev bound, guest RAM in an IOAS at
 * GPA 0, a guest x86 first-stage table builder, raw-rc helpers for attach/detach, and
 * read-only views of the driver's PASID entries and the unit's QI log.
 */
import { VTD_PGTT, VtdPasidDirEntry, VtdPasidEntry, VtdSmContextEntry } from '@iommufd/hw-model';
import { expect } from 'vitest';
import { IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, iommu_hwpt_vtd_s1_vdid, iommu_vevent_vtd_fault } from '@iommufd/intel-vtd';
import { createHost, type Host, type HostProcess } from '../../src/index.js';
import { intelVtdUnitOf } from '../../src/platforms/intel-vtd.js';
import { Iommufd, MAP_ANONYMOUS, MAP_SHARED, PROT_RW, U } from '../selftest/helpers.js';

export { VTD_PGTT };

/** GPA of the guest's PML4 in every scenario. */
export const S1_ROOT = 0x1000n;
/** First-stage PTE bits P | R/W | U/S. */
export const FS_PTE = 0x7n;
/** Guest RAM of each VM (mapped at GPA/IOVA 0). */
export const GUEST_RAM = 2n << 20n;

/** `iommu_hwpt_vtd_s1` bytes, defaults: no flags, root at {@link S1_ROOT}, 48-bit. */
export function s1(fields: Partial<{ flags: bigint; pgtbl_addr: bigint; addr_width: number; __reserved: number }> = {}): Uint8Array {
  return U.iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: S1_ROOT, addr_width: 48, __reserved: 0, ...fields });
}

/** `iommu_hwpt_vtd_s1_vdid` bytes for a nested HWPT on the experimental vIOMMU. */
export function s1vdid(guestDid: number, fields: Partial<{ flags: bigint; pgtbl_addr: bigint; addr_width: number }> = {}): Uint8Array {
  return iommu_hwpt_vtd_s1_vdid.encode({ flags: 0n, pgtbl_addr: S1_ROOT, addr_width: 48, guest_did: guestDid, ...fields });
}

/** One `iommu_hwpt_vtd_s1_invalidate` entry. */
export function inv(addr: bigint, npages: bigint, flags = 0, reserved = 0): Uint8Array {
  return U.iommu_hwpt_vtd_s1_invalidate.encode({ addr, npages, flags, __reserved: reserved });
}

/** A 32-byte guest QI descriptor from its little-endian qwords (missing ones are 0). */
export function qiEntry(words: readonly bigint[]): Uint8Array {
  const b = new Uint8Array(32);
  words.forEach((w, i) => new DataView(b.buffer).setBigUint64(8 * i, w, true));
  return b;
}

/** What the guest table builder needs of a process: its memory (a HostProcess or a uapi UserProcess). */
export type GuestMemory = Pick<U.UserProcess, 'peek' | 'poke'>;

/** Little-endian u64 at `va`. */
function peek64(mem: GuestMemory, va: bigint): bigint {
  const r = mem.peek(va, 8);
  if (typeof r === 'number') throw new Error(`peek 0x${va.toString(16)}: ${r}`);
  return new DataView(r.buffer, r.byteOffset, 8).getBigUint64(0, true);
}

/** Writes a little-endian u64 at `va`. */
function poke64(mem: GuestMemory, va: bigint, value: bigint): void {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, value, true);
  const r = mem.poke(va, b);
  if (typeof r === 'number' && r < 0) throw new Error(`poke 0x${va.toString(16)}: ${r}`);
}

/** The guest's 4-level x86 first-stage tables, written into guest RAM through the process. */
export function guestPageTable(p: GuestMemory, ram: bigint, root = S1_ROOT, firstTable = root + 0x1000n) {
  let nextTable = firstTable;
  const slotOf = (table: bigint, giova: bigint, level: number) => ram + table + ((giova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n;
  return {
    /** Maps the 4 KiB page at `giova` to `gpa` (tables allocated upwards from `firstTable`). */
    map(giova: bigint, gpa: bigint, leafBits = FS_PTE): void {
      let table = root;
      for (let level = 4; level > 1; level--) {
        const slot = slotOf(table, giova, level);
        let e = peek64(p, slot);
        if ((e & 1n) === 0n) {
          e = nextTable | FS_PTE;
          nextTable += 0x1000n;
          poke64(p, slot, e);
        }
        table = e & 0x000f_ffff_ffff_f000n;
      }
      poke64(p, slotOf(table, giova, 1), gpa | leafBits);
    },
    /** Writes the raw entry of `level` (4 = PML4) on the walk of `giova`; the upper levels must exist. */
    setEntry(giova: bigint, level: number, value: bigint): void {
      let table = root;
      for (let l = 4; l > level; l--) table = peek64(p, slotOf(table, giova, l)) & 0x000f_ffff_ffff_f000n;
      poke64(p, slotOf(table, giova, level), value);
    },
  };
}

/** A VMM on a fresh intel-vtd host (or a second VMM process on the same host). */
export interface VtdVmm {
  host: Host;
  proc: HostProcess;
  t: Iommufd;
  fd: number;
  devFds: number[];
  devIds: number[];
  ioas: number;
  ram: bigint;
  /** VFIO_DEVICE_ATTACH_IOMMUFD_PT (with PASID when given): rc and the pt_id written back. */
  attach(dev: number, ptId: number, pasid?: number): { rc: number; pt: number };
  /** VFIO_DEVICE_DETACH_IOMMUFD_PT (with PASID when given). */
  detach(dev: number, pasid?: number): number;
}

/** The raw ioctl process of a VMM, as {@link Iommufd} expects a host. */
function iommufdOf(host: Host, proc: HostProcess, fd: number): Iommufd {
  const t = new Iommufd(host, fd);
  Object.defineProperty(t, 'p', { get: () => proc });
  return t;
}

/**
 * Opens /dev/iommu in `proc` (default the host's VMM process), binds the devices with the
 * given indexes and maps {@link GUEST_RAM} of shared anonymous memory at IOVA 0.
 */
export function openVmm(host: Host, devices: readonly number[], proc: HostProcess = host.process): VtdVmm {
  const fd = proc.open('/dev/iommu');
  if (fd < 0) throw new Error(`open /dev/iommu: ${fd}`);
  const t = iommufdOf(host, proc, fd);
  const devFds = devices.map((i) => proc.open(host.vfioDevices[i]!));
  const devIds = devFds.map((dfd) => {
    const b = U.vfio_device_bind_iommufd.encode({ argsz: U.vfio_device_bind_iommufd.size, iommufd: fd });
    const rc = proc.ioctl(dfd, U.VFIO_DEVICE_BIND_IOMMUFD, b);
    if (rc !== 0) throw new Error(`bind: ${rc}`);
    return U.vfio_device_bind_iommufd.get(b, 'out_devid');
  });
  const ioas = t.ioasAlloc();
  const ram = proc.mmap(GUEST_RAM, PROT_RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  const m = t.map(ioas, ram, GUEST_RAM, { iova: 0n });
  if (m.rc !== 0) throw new Error(`map guest RAM: ${m.rc}`);
  return {
    host,
    proc,
    t,
    fd,
    devFds,
    devIds,
    ioas,
    ram,
    attach(dev, ptId, pasid) {
      const b = U.vfio_device_attach_iommufd_pt.encode({ argsz: U.vfio_device_attach_iommufd_pt.size, flags: pasid === undefined ? 0 : U.VFIO_DEVICE_ATTACH_PASID, pt_id: ptId, pasid: pasid ?? 0 });
      return { rc: proc.ioctl(devFds[dev]!, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, b), pt: U.vfio_device_attach_iommufd_pt.get(b, 'pt_id') };
    },
    detach(dev, pasid) {
      const b = U.vfio_device_detach_iommufd_pt.encode({ argsz: U.vfio_device_detach_iommufd_pt.size, flags: pasid === undefined ? 0 : U.VFIO_DEVICE_DETACH_PASID, pasid: pasid ?? 0 });
      return proc.ioctl(devFds[dev]!, U.VFIO_DEVICE_DETACH_IOMMUFD_PT, b);
    },
  };
}

/** A fresh intel-vtd host (strict caches: nothing is evicted, so every missing invalidation shows). */
export async function vtdHost(devices = 2): Promise<Host> {
  return createHost({ platform: 'intel-vtd', devices, strict: true });
}

/** Requester ID of the preset's device `index` (00:01.0 = 0x08, 00:02.0 = 0x10, …). */
export function sidOf(index: number): number {
  return (index + 1) << 3;
}

/** Read-only views of the driver and the VT-d model of `host`. */
export function vtdInspect(host: Host) {
  const { unit, hw } = intelVtdUnitOf(host.memory)!;
  return {
    unit,
    hw,
    /** The PASID entry of (device `index`, `pasid`), decoded; zeros when its table was never allocated. */
    pasidEntry(index: number, pasid = 0) {
      const info = unit.devices.get(sidOf(index));
      const zero = VtdPasidEntry.decode([0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n]);
      if (info === undefined) return zero;
      const dir = unit.mem.read64(info.pasidDir + BigInt((pasid >> 6) * 8));
      if (VtdPasidDirEntry.f.P.of(dir) === 0) return zero;
      const at = (VtdPasidDirEntry.f.PASIDPTPTR.of(dir) as bigint) + BigInt((pasid & 0x3f) * 64);
      return VtdPasidEntry.decode(Array.from({ length: 8 }, (_, i) => unit.mem.read64(at + BigInt(8 * i))));
    },
    /** QI batches issued since `mark`, as lists of descriptor types. */
    qiTypesSince(mark: number): bigint[][] {
      return unit.qi.log.slice(mark).map((b) => b.descs.map((d) => d[0]! & 0xfn));
    },
    /** Descriptors issued since `mark` (the appended wait descriptors dropped). */
    qiSince(mark: number): bigint[][] {
      return unit.qi.log.slice(mark).flatMap((b) => b.descs.filter((d) => (d[0]! & 0xfn) !== 5n).map((d) => [...d]));
    },
  };
}

/** Reads every vEVENT of a VT-d experimental vEVENTQ (24-byte payload). */
export function readVtdVevents(proc: HostProcess, fd: number): U.Vevent[] {
  const buf = new Uint8Array(4096);
  const n = proc.read(fd, buf);
  if (n < 0) throw new Error(`read vEVENTQ: ${n}`);
  return U.parseVevents(buf.subarray(0, n), IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, iommu_vevent_vtd_fault.size);
}

/**
 * What the intel-vtd driver must not leave behind once every fd is closed: a DID, and for
 * each device `index` in `devices` a domain at the RID or a PASID, an IOPF reference, a
 * non-zero PASID entry in any of its PASID tables; its context entry stays as probe_device
 * wrote it, and its DMA is blocked.
 */
export function vtdLeftNothing(host: Host, devices: readonly number[]): void {
  const { unit } = intelVtdUnitOf(host.memory)!;
  expect(unit.allocatedDids).toEqual([]);
  for (const index of devices) {
    const sid = sidOf(index);
    const info = unit.devices.get(sid)!;
    expect([info.domain, info.pasidDomains.size, info.iopfRefcount]).toEqual([undefined, 0, 0]);
    for (const table of info.pasidTables) expect(host.memory.read(table, 4096).every((b) => b === 0)).toBe(true);
    expect(VtdSmContextEntry.decode(Array.from({ length: 4 }, (_, i) => new DataView(unit.contextEntry(sid).buffer).getBigUint64(8 * i, true)))).toMatchObject({
      P: 1,
      DTE: 1,
      PASIDE: 1,
      PRE: 1,
      PASIDDIRPTR: info.pasidDir,
    });
    expect(host.dma(host.vfioDevices[index]!, { iova: 0x1000n, length: 4, write: false }).ok).toBe(false);
  }
}
