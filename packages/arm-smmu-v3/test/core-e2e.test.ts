// The VMM scenario through the real @iommufd/core: ioctls with uAPI structs in process memory,
// the driver reached only through the driver API, DMA through the SMMU model.
import { describe, expect, it } from 'vitest';
import { FailNth, IommuCore, iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceReplace, iommufdDeviceUnbind } from '@iommufd/core';
import { SMMU_CD, SMMU_EVENT, SMMU_STE, TEGRA241_CMDQV_REG as R } from '@iommufd/hw-model';
import {
  EIO,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_ARM_SMMUV3,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HW_QUEUE_ALLOC,
  IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV,
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
  IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV,
  iommu_hw_queue_alloc,
  iommu_hwpt_alloc,
  iommu_hwpt_arm_smmuv3,
  iommu_hwpt_invalidate,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_vdevice_alloc,
  iommu_vevent_arm_smmuv3,
  iommu_veventq_alloc,
  iommu_viommu_alloc,
  iommu_viommu_tegra241_cmdqv,
  parseVevents,
} from '@iommufd/uapi';
import { buildCmd } from '../src/index.js';
import { GUEST_VA, GuestRam, GuestS1, Vmm, rig } from './support/harness.js';

const IPA0 = 0x8000_0000n;
const VSID = 0x31n;
const GVA = 0x4000_0000n;

/**
 * A VMM up to a nested HWPT on its vIOMMU: bind, IOAS with guest RAM, nest-parent HWPT,
 * vIOMMU of `type`, vDEVICE, the guest's CD and S1 table, nested HWPT from the guest STE.
 */
/** One device, added by a real core (the harness's own probe is released first). */
function coreRig(tegra: boolean) {
  const r = rig({ devices: 1, tegra });
  for (const d of r.devs) r.smmu.ops.releaseDevice!(d);
  const core = new IommuCore();
  core.registerIommu(r.smmu);
  const pci = r.pci[0]!;
  const cdev = core.addDevice({ name: pci.name, iommu: r.smmu, group: 1 });
  return { r, core, pci, cdev };
}

function boot(type: number) {
  const { r, core, pci, cdev } = coreRig(type === IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV);
  const ram = new GuestRam(r.machine, IPA0, 64);
  const vmm = new Vmm(ram);
  const ctx = core.open(vmm);
  const ioctl = (req: number, bytes: Uint8Array) => {
    const va = vmm.put(bytes);
    return { rc: ctx.ioctl!(req, va), va };
  };
  /** Issues an ioctl that must succeed and returns the struct as the kernel wrote it back. */
  const ok = <T>(req: number, layout: { size: number; encode(v: object): Uint8Array; decode(b: Uint8Array): T }, v: object): T => {
    const x = ioctl(req, layout.encode({ size: layout.size, ...v }));
    expect(x.rc).toBe(0);
    return layout.decode(vmm.get(x.va, layout.size));
  };
  const bound = iommufdDeviceBind(ctx, cdev);
  if (typeof bound === 'number') throw new Error(`bind ${bound}`);
  const ioasId = ok(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {}).out_ioas_id;
  const s2Id = ok(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { flags: IOMMU_HWPT_ALLOC_NEST_PARENT, dev_id: bound.devId, pt_id: ioasId }).out_hwpt_id;
  const flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
  ok(IOMMU_IOAS_MAP, iommu_ioas_map, { flags, ioas_id: ioasId, user_va: GUEST_VA, length: 64n * 4096n, iova: IPA0 });
  expect(iommufdDeviceAttach(bound.idev, undefined, s2Id)).toEqual({ ptId: s2Id });
  const tegraData = vmm.put(iommu_viommu_tegra241_cmdqv.encode({}));
  const tegra = type === IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV ? { data_len: 16, data_uptr: tegraData } : {};
  const viommuId = ok(IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, { type, dev_id: bound.devId, hwpt_id: s2Id, ...tegra }).out_viommu_id;
  ok(IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc, { viommu_id: viommuId, dev_id: bound.devId, virt_id: VSID });
  const s1 = new GuestS1(ram);
  const cdTable = ram.allocPage();
  r.machine.memory.write(ram.toPa(cdTable), SMMU_CD.toBytes(s1.cd(3)));
  const p1 = ram.allocPage();
  const p2 = ram.allocPage();
  r.machine.memory.write(ram.toPa(p1), new Uint8Array([0x11]));
  r.machine.memory.write(ram.toPa(p2), new Uint8Array([0x22]));
  s1.map(GVA, p1);
  const ste = SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n }).slice(0, 2);
  const data = vmm.put(iommu_hwpt_arm_smmuv3.encode({ ste }));
  const nestedId = ok(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { dev_id: bound.devId, pt_id: viommuId, data_type: IOMMU_HWPT_DATA_ARM_SMMUV3, data_len: 16, data_uptr: data }).out_hwpt_id;
  // A VMM moves the device from the S2 HWPT to the nested one with REPLACE.
  expect(iommufdDeviceReplace(bound.idev, undefined, nestedId)).toEqual({ ptId: nestedId });
  const read = () => {
    const d = pci.dma({ iova: GVA, length: 1, write: false });
    return d.ok ? d.data![0] : -1;
  };
  expect(read()).toBe(0x11);
  // The guest retargets its page without invalidating: the SMMU still uses the cached entry.
  s1.map(GVA, p2);
  expect(read()).toBe(0x11);
  return { ...r, core, ctx, vmm, ram, ioctl, ok, viommuId, read, tegraData };
}

describe('through @iommufd/core', () => {
  it('ARM_SMMUV3: stale TLB fixed by HWPT_INVALIDATE, hostile command EIO, vEVENT with the vSID', () => {
    const b = boot(IOMMU_VIOMMU_TYPE_ARM_SMMUV3);
    const evFd = b.ok(IOMMU_VEVENTQ_ALLOC, iommu_veventq_alloc, { viommu_id: b.viommuId, type: IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, veventq_depth: 8 }).out_veventq_fd;
    const inv = (cmds: (readonly [bigint, bigint])[]) => {
      const arr = new Uint8Array(16 * cmds.length);
      const dv = new DataView(arr.buffer);
      cmds.forEach(([a, c], i) => {
        dv.setBigUint64(i * 16, a, true);
        dv.setBigUint64(i * 16 + 8, c, true);
      });
      const y = b.ioctl(
        IOMMU_HWPT_INVALIDATE,
        iommu_hwpt_invalidate.encode({ size: iommu_hwpt_invalidate.size, hwpt_id: b.viommuId, data_uptr: b.vmm.put(arr), data_type: IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, entry_len: 16, entry_num: cmds.length }),
      );
      return { rc: y.rc, entryNum: iommu_hwpt_invalidate.decode(b.vmm.get(y.va, iommu_hwpt_invalidate.size)).entry_num };
    };
    expect(inv([buildCmd({ opcode: 'TLBI_NH_VA', asid: 3, vmid: 0x77, addr: GVA, leaf: true })])).toEqual({ rc: 0, entryNum: 1 });
    expect(b.read()).toBe(0x22);
    // A hostile guest: CFGI_STE is the host's business.
    expect(inv([buildCmd({ opcode: 'TLBI_NH_ASID', asid: 3, vmid: 0 }), buildCmd({ opcode: 'CFGI_STE', sid: 0, leaf: true })])).toEqual({ rc: -EIO, entryNum: 1 });
    // A stage-1 fault: the vEVENT carries the vSID.
    expect(b.pci[0]!.dma({ iova: 0x4100_0000n, length: 4, write: false }).ok).toBe(false);
    b.smmu.serviceInterrupts();
    const buf = new Uint8Array(256);
    const n = b.vmm.files.get(evFd)!.read!(buf, 0);
    const events = parseVevents(buf.subarray(0, n), IOMMU_VEVENTQ_TYPE_ARM_SMMUV3);
    expect(events).toHaveLength(1);
    expect(events[0]!.sequence).toBe(0);
    const evt = iommu_vevent_arm_smmuv3.decode(events[0]!.data).evt;
    expect(SMMU_EVENT.decode(evt)).toMatchObject({ ID: 0x10n, SID: VSID, RNW: 1n, INPUT_ADDR: 0x4100_0000n });
  });

  it('TEGRA241_CMDQV: HW_QUEUE in guest RAM, VINTF page0 mmapped, the guest invalidates through its own VCMDQ', () => {
    const b = boot(IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV);
    const out = iommu_viommu_tegra241_cmdqv.decode(b.vmm.get(b.tegraData, 16));
    expect(out.out_vintf_mmap_length).toBe(0x10000n);
    const region = b.ctx.mmap!(0x10000n, 3, 1, out.out_vintf_mmap_offset);
    if (typeof region === 'number') throw new Error(`mmap ${region}`);
    const qIpa = b.ram.allocPage();
    b.ok(IOMMU_HW_QUEUE_ALLOC, iommu_hw_queue_alloc, { viommu_id: b.viommuId, type: IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, index: 0, nesting_parent_iova: qIpa, length: 4096n });
    const put = (i: number, c: readonly [bigint, bigint]) => {
      b.ram.write64(qIpa + BigInt(i * 16), c[0]);
      b.ram.write64(qIpa + BigInt(i * 16) + 8n, c[1]);
    };
    put(0, buildCmd({ opcode: 'TLBI_NH_VA', asid: 3, vmid: 0, addr: GVA, leaf: true }));
    put(1, [0x46n, 0n]);
    // The guest drives its queue through the mapped page: enable, then PROD.
    b.machine.memory.write32(region.physAddr + BigInt(R.VCMDQ_CONFIG), 1);
    b.machine.memory.write32(region.physAddr + BigInt(R.VCMDQ_PROD), 2);
    expect(b.machine.memory.read32(region.physAddr + BigInt(R.VCMDQ_CONS))).toBe(2);
    expect(b.read()).toBe(0x22);
    region.close();
  });

  it('fail_nth: each allocation point (core and driver) fails cleanly; unbind + close return every page and leave the STE aborting', () => {
    let n = 1;
    for (; n < 300; n++) {
      const { r, core, pci, cdev } = coreRig(false);
      const ram = new GuestRam(r.machine, IPA0, 16);
      const baseline = r.machine.memory.allocatedPages;
      const fail = new FailNth(n);
      core.faultInjector = fail;
      const vmm = new Vmm(ram);
      const ctx = core.open(vmm);
      const call = (req: number, layout: { size: number; encode(v: object): Uint8Array; decode(b: Uint8Array): Record<string, unknown> }, v: object) => {
        const va = vmm.put(layout.encode({ size: layout.size, ...v }));
        const rc = ctx.ioctl!(req, va);
        return rc === 0 ? layout.decode(vmm.get(va, layout.size)) : undefined;
      };
      const bound = iommufdDeviceBind(ctx, cdev);
      if (typeof bound === 'object') {
        const steps = (): void => {
          const ioas = call(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {});
          if (!ioas) return;
          const s2 = call(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { flags: IOMMU_HWPT_ALLOC_NEST_PARENT, dev_id: bound.devId, pt_id: ioas.out_ioas_id });
          if (!s2) return;
          const flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
          if (!call(IOMMU_IOAS_MAP, iommu_ioas_map, { flags, ioas_id: ioas.out_ioas_id, user_va: GUEST_VA, length: 16n * 4096n, iova: IPA0 })) return;
          if (typeof iommufdDeviceAttach(bound.idev, undefined, s2.out_hwpt_id as number) === 'number') return;
          const vi = call(IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, { type: IOMMU_VIOMMU_TYPE_ARM_SMMUV3, dev_id: bound.devId, hwpt_id: s2.out_hwpt_id });
          if (!vi) return;
          if (!call(IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc, { viommu_id: vi.out_viommu_id, dev_id: bound.devId, virt_id: VSID })) return;
          const ste = SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: IPA0 >> 6n }).slice(0, 2);
          const data = vmm.put(iommu_hwpt_arm_smmuv3.encode({ ste }));
          const nested = call(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { dev_id: bound.devId, pt_id: vi.out_viommu_id, data_type: IOMMU_HWPT_DATA_ARM_SMMUV3, data_len: 16, data_uptr: data });
          if (!nested) return;
          iommufdDeviceReplace(bound.idev, undefined, nested.out_hwpt_id as number);
        };
        steps();
        iommufdDeviceUnbind(bound.idev);
      }
      ctx.release();
      expect(r.machine.memory.allocatedPages, `leak after failing point ${n} (${fail.failedSite})`).toBe(baseline);
      expect(r.smmu.readSte(pci.streamId)).toEqual(SMMU_STE.encode({ V: 1 }));
      if (!fail.injected) break;
    }
    // Every point was reached and failed once before a run went through untouched.
    expect(n).toBeGreaterThan(10);
  });
});

