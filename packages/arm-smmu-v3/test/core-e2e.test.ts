// The VMM scenario through the real @iommufd/core: ioctls with uAPI structs in process memory,
// the driver reached only through the driver API, DMA through the SMMU model.
import { describe, expect, it } from 'vitest';
import { IommuCore, iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceReplace, type KernelFile, type KernelProcess } from '@iommufd/core';
import { SMMU_CD, SMMU_EVENT, SMMU_STE } from '@iommufd/hw-model';
import {
  EBADF,
  EFAULT,
  EIO,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_ARM_SMMUV3,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_VDEVICE_ALLOC,
  IOMMU_VEVENTQ_ALLOC,
  IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
  IOMMU_VIOMMU_ALLOC,
  IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
  IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
  iommu_hwpt_alloc,
  iommu_hwpt_arm_smmuv3,
  iommu_hwpt_invalidate,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_vdevice_alloc,
  iommu_vevent_arm_smmuv3,
  iommu_veventq_alloc,
  iommu_viommu_alloc,
  parseVevents,
} from '@iommufd/uapi';
import { buildCmd } from '../src/index.js';
import { GuestRam, GuestS1, rig } from './support/harness.js';

const SCRATCH = 0x1000_0000n;
const GUEST_VA = 0x7f00_0000_0000n;
const IPA0 = 0x8000_0000n;
const VSID = 0x31n;

/** A VMM process: a scratch area for ioctl structs and its guest RAM mapped at GUEST_VA. */
class Vmm implements KernelProcess {
  readonly scratch = new Uint8Array(1 << 16);
  readonly files = new Map<number, KernelFile>();
  private top = 0;
  private nextFd = 3;
  constructor(private readonly ram: GuestRam) {}
  private pa(va: bigint): bigint | undefined {
    const off = va - GUEST_VA;
    return off >= 0n && off < BigInt(this.ram.pages) * 4096n ? this.ram.pa + off : undefined;
  }
  copyFromUser(va: bigint, length: number): Uint8Array | number {
    if (va >= SCRATCH && va + BigInt(length) <= SCRATCH + BigInt(this.scratch.length)) return this.scratch.slice(Number(va - SCRATCH), Number(va - SCRATCH) + length);
    const pa = this.pa(va);
    return pa === undefined ? EFAULT : this.ram.machine.memory.read(pa, length);
  }
  copyToUser(va: bigint, bytes: Uint8Array): 0 | number {
    if (va >= SCRATCH && va + BigInt(bytes.length) <= SCRATCH + BigInt(this.scratch.length)) {
      this.scratch.set(bytes, Number(va - SCRATCH));
      return 0;
    }
    return EFAULT;
  }
  pinPages(va: bigint, npages: number): { pfns: bigint[] } | number {
    const pfns: bigint[] = [];
    for (let i = 0; i < npages; i++) {
      const pa = this.pa(va + BigInt(i) * 4096n);
      if (pa === undefined) return EFAULT;
      pfns.push(pa >> 12n);
    }
    return { pfns };
  }
  unpinPages(): void {}
  fileForFd(): number {
    return EBADF;
  }
  reserveFd(): number {
    return this.nextFd++;
  }
  installFd(fd: number, file: KernelFile): void {
    this.files.set(fd, file);
  }
  releaseFd(fd: number): void {
    this.files.delete(fd);
  }
  capable(): boolean {
    return true;
  }
  chargeLockedPages(): 0 {
    return 0;
  }
  unchargeLockedPages(): void {}
  /** Places a struct in scratch memory; returns its VA. */
  put(bytes: Uint8Array): bigint {
    const at = this.top;
    this.scratch.set(bytes, at);
    this.top += (bytes.length + 15) & ~15;
    return SCRATCH + BigInt(at);
  }
  get(va: bigint, len: number): Uint8Array {
    return this.scratch.slice(Number(va - SCRATCH), Number(va - SCRATCH) + len);
  }
}

describe('through @iommufd/core', () => {
  it('runs the VMM scenario: nest parent, vIOMMU, vDEVICE, nested HWPT, stale TLB fixed by HWPT_INVALIDATE, hostile command EIO, vEVENT with vSID', () => {
    const full = rig({ devices: 1 });
    const { machine } = full;
    // The harness probed the device itself; release it so that the core adds it.
    for (const d of full.devs) full.smmu.ops.releaseDevice!(d);
    const lone = full.smmu;
    const core = new IommuCore();
    core.registerIommu(lone);
    const pci = machine.devices[0]!;
    const cdev = core.addDevice({ name: pci.name, iommu: lone, group: 1 });
    const ram = new GuestRam(machine, IPA0, 64);
    const vmm = new Vmm(ram);
    const ctx = core.open(vmm);
    const ioctl = (req: number, bytes: Uint8Array) => {
      const va = vmm.put(bytes);
      return { rc: ctx.ioctl!(req, va), va };
    };
    const bound = iommufdDeviceBind(ctx, cdev);
    if (typeof bound === 'number') throw new Error(`bind ${bound}`);
    let x = ioctl(IOMMU_IOAS_ALLOC, iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size }));
    expect(x.rc).toBe(0);
    const ioasId = iommu_ioas_alloc.decode(vmm.get(x.va, iommu_ioas_alloc.size)).out_ioas_id;
    x = ioctl(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc.encode({ size: iommu_hwpt_alloc.size, flags: IOMMU_HWPT_ALLOC_NEST_PARENT, dev_id: bound.devId, pt_id: ioasId }));
    expect(x.rc).toBe(0);
    const s2Id = iommu_hwpt_alloc.decode(vmm.get(x.va, iommu_hwpt_alloc.size)).out_hwpt_id;
    x = ioctl(
      IOMMU_IOAS_MAP,
      iommu_ioas_map.encode({ size: iommu_ioas_map.size, flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE, ioas_id: ioasId, user_va: GUEST_VA, length: 64n * 4096n, iova: IPA0 }),
    );
    expect(x.rc).toBe(0);
    expect(iommufdDeviceAttach(bound.idev, undefined, s2Id)).toEqual({ ptId: s2Id });
    x = ioctl(IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc.encode({ size: iommu_viommu_alloc.size, type: IOMMU_VIOMMU_TYPE_ARM_SMMUV3, dev_id: bound.devId, hwpt_id: s2Id }));
    expect(x.rc).toBe(0);
    const viommuId = iommu_viommu_alloc.decode(vmm.get(x.va, iommu_viommu_alloc.size)).out_viommu_id;
    x = ioctl(IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc.encode({ size: iommu_vdevice_alloc.size, viommu_id: viommuId, dev_id: bound.devId, virt_id: VSID }));
    expect(x.rc).toBe(0);
    x = ioctl(IOMMU_VEVENTQ_ALLOC, iommu_veventq_alloc.encode({ size: iommu_veventq_alloc.size, viommu_id: viommuId, type: IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, veventq_depth: 8 }));
    expect(x.rc).toBe(0);
    const evFd = iommu_veventq_alloc.decode(vmm.get(x.va, iommu_veventq_alloc.size)).out_veventq_fd;

    // The guest's own tables in guest RAM.
    const s1 = new GuestS1(ram);
    const cdTable = ram.allocPage();
    machine.memory.write(ram.toPa(cdTable), SMMU_CD.toBytes(s1.cd(3)));
    const p1 = ram.allocPage();
    const p2 = ram.allocPage();
    machine.memory.write(ram.toPa(p1), new Uint8Array([0x11]));
    machine.memory.write(ram.toPa(p2), new Uint8Array([0x22]));
    s1.map(0x4000_0000n, p1);
    const ste = SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n }).slice(0, 2);
    const data = vmm.put(iommu_hwpt_arm_smmuv3.encode({ ste }));
    x = ioctl(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc.encode({ size: iommu_hwpt_alloc.size, dev_id: bound.devId, pt_id: viommuId, data_type: IOMMU_HWPT_DATA_ARM_SMMUV3, data_len: 16, data_uptr: data }));
    expect(x.rc).toBe(0);
    const nestedId = iommu_hwpt_alloc.decode(vmm.get(x.va, iommu_hwpt_alloc.size)).out_hwpt_id;
    expect(iommufdDeviceReplace(bound.idev, undefined, nestedId)).toEqual({ ptId: nestedId });

    const read = () => {
      const d = pci.dma({ iova: 0x4000_0000n, length: 1, write: false });
      return d.ok ? d.data![0] : -1;
    };
    expect(read()).toBe(0x11);
    s1.map(0x4000_0000n, p2);
    expect(read()).toBe(0x11);
    const inv = (cmds: (readonly [bigint, bigint])[]) => {
      const arr = new Uint8Array(16 * cmds.length);
      const dv = new DataView(arr.buffer);
      cmds.forEach(([a, b], i) => {
        dv.setBigUint64(i * 16, a, true);
        dv.setBigUint64(i * 16 + 8, b, true);
      });
      const uptr = vmm.put(arr);
      const y = ioctl(IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate.encode({ size: iommu_hwpt_invalidate.size, hwpt_id: viommuId, data_uptr: uptr, data_type: IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, entry_len: 16, entry_num: cmds.length }));
      return { rc: y.rc, entryNum: iommu_hwpt_invalidate.decode(vmm.get(y.va, iommu_hwpt_invalidate.size)).entry_num };
    };
    expect(inv([buildCmd({ opcode: 'TLBI_NH_VA', asid: 3, vmid: 0x77, addr: 0x4000_0000n, leaf: true })])).toEqual({ rc: 0, entryNum: 1 });
    expect(read()).toBe(0x22);
    // A hostile guest: CFGI_STE is the host's business.
    expect(inv([buildCmd({ opcode: 'TLBI_NH_ASID', asid: 3, vmid: 0 }), buildCmd({ opcode: 'CFGI_STE', sid: 0, leaf: true })])).toEqual({ rc: -EIO, entryNum: 1 });

    // A stage-1 fault: the vEVENT carries the vSID.
    expect(pci.dma({ iova: 0x4100_0000n, length: 4, write: false }).ok).toBe(false);
    lone.serviceInterrupts();
    const buf = new Uint8Array(256);
    const n = vmm.files.get(evFd)!.read!(buf, 0);
    const events = parseVevents(buf.subarray(0, n), IOMMU_VEVENTQ_TYPE_ARM_SMMUV3);
    expect(events).toHaveLength(1);
    expect(events[0]!.sequence).toBe(0);
    const evt = iommu_vevent_arm_smmuv3.decode(events[0]!.data).evt;
    expect(SMMU_EVENT.decode(evt)).toMatchObject({ ID: 0x10n, SID: VSID, RNW: 1n, INPUT_ADDR: 0x4100_0000n });
  });
});

