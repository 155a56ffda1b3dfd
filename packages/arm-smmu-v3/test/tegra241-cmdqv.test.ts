import { describe, expect, it } from 'vitest';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, type IommufdHwQueue, type IommufdVdevice, type IommufdViommu, type IommuDomain } from '@iommufd/driver-api';
import { CMDQ_OP, CMDQV_CMDQ_ALLOC, SMMU_CD, SMMU_MMIO_SIZE, SMMU_STE, TEGRA241_CMDQV_REG as R, VCMDQ_BASE, VINTF_CONFIG } from '@iommufd/hw-model';
import {
  EEXIST,
  EINVAL,
  EIO,
  EOPNOTSUPP,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_ARM_SMMUV3,
  IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV,
  IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV,
  IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV,
  IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV,
  iommu_hw_info_tegra241_cmdqv,
  iommu_hwpt_arm_smmuv3,
  iommu_vevent_tegra241_cmdqv,
  iommu_viommu_tegra241_cmdqv,
} from '@iommufd/uapi';
import { buildCmd, tegra241_vintf, type ArmSmmuDomain } from '../src/index.js';
import { FakeCore, FlatUser, GuestRam, GuestS1, SMMU_BASE, pagingDomain, rig } from './support/harness.js';

const CMDQV = SMMU_BASE + SMMU_MMIO_SIZE;
const IPA0 = 0x8000_0000n;
const VSID = 0x42n;

function tegraVm() {
  const r = rig({ tegra: true });
  const core = new FakeCore();
  const user = new FlatUser();
  const s2 = pagingDomain(r.devs[0]!, IOMMU_HWPT_ALLOC_NEST_PARENT) as ArmSmmuDomain;
  const ram = new GuestRam(r.machine, IPA0, 64);
  s2.ops.mapPages!(s2, IPA0, ram.pa, 4096n, 64, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
  const data = user.data(IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, iommu_viommu_tegra241_cmdqv.encode({ out_vintf_mmap_offset: 0n, out_vintf_mmap_length: 0n }));
  const viommu = core.viommuAlloc(r.devs[0]!, s2, IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, data) as IommufdViommu;
  return { ...r, core, user, s2, ram, viommu, data };
}

const reg = (r: ReturnType<typeof rig>, off: number) => r.machine.memory.read32(CMDQV + BigInt(off));

describe('Tegra241 CMDQV host side', () => {
  it('enables CMDQV, assigns global VCMDQs statically, maps and enables VINTF0 queues (HYP_OWN)', () => {
    const r = rig({ tegra: true });
    expect(reg(r, R.STATUS) & 1).toBe(1);
    // 16 VCMDQs / 4 VINTFs: global q → VINTF q>>2, LVCMDQ q&3; only VINTF0's are mapped.
    for (let q = 0; q < 16; q++) {
      expect(CMDQV_CMDQ_ALLOC.decode([BigInt(reg(r, R.CMDQ_ALLOC + 4 * q))])).toEqual({ ALLOCATED: q < 4 ? 1n : 0n, LVCMDQ: BigInt(q & 3), VINTF: BigInt(q >> 2) });
    }
    expect(VINTF_CONFIG.decode([BigInt(reg(r, R.VINTF_BASE + R.VINTF_CONFIG))])).toEqual({ EN: 1n, VMID: 0n, HYP_OWN: 1n });
    expect(reg(r, R.VINTF_PAGE0 + R.VCMDQ_CONFIG) & 1).toBe(1);
  });

  it('routes host commands through VINTF0 LVCMDQ0 (busy-polled CS=NONE SYNC), not the main CMDQ', () => {
    const r = rig({ tegra: true });
    const mainProd = r.smmu.cmdq.prod;
    const d = pagingDomain(r.devs[0]!);
    expect(d.ops.attachDev!(d, r.devs[0]!)).toBe(0);
    expect(r.smmu.cmdq.prod).toBe(mainProd);
    const prod = reg(r, R.VINTF_PAGE0 + R.VCMDQ_PROD);
    expect(prod).toBeGreaterThan(0);
    expect(reg(r, R.VINTF_PAGE0 + R.VCMDQ_CONS) & 0xfffff).toBe(prod);
    const base = VCMDQ_BASE.get([r.machine.memory.read64(CMDQV + BigInt(R.VINTF_PAGE0 + 0x10000))], 'ADDR') << 5n;
    const ops = Array.from({ length: prod }, (_, i) => Number(r.machine.memory.read64(base + BigInt(i * 16)) & 0xffffn));
    // CD (hitless: dw1..7 then dw0), then the STE; every SYNC is CS=NONE (0x0046) and left intact.
    expect(ops.slice(0, 4)).toEqual([CMDQ_OP.CFGI_CD, 0x46, CMDQ_OP.CFGI_CD, 0x46]);
    expect(ops).toContain(CMDQ_OP.CFGI_STE);
    expect(ops.at(-1)).toBe(CMDQ_OP.PREFETCH_CONFIG);
  });

  it('recovers an illegal command on a VINTF0 queue through the CMDQV interrupt (skip + GERRORN)', () => {
    const r = rig({ tegra: true });
    const q = r.smmu.getCmdq({ opcode: 'TLBI_NSNH_ALL' });
    expect(q).not.toBe(r.smmu.cmdq);
    const at = q.slot(q.prod);
    expect(q.issueCmdlist([[0x7fn, 0n], buildCmd({ opcode: 'TLBI_NSNH_ALL' })], true)).toBe(0);
    // Replaced by a CS=NONE CMD_SYNC (busy-polled queue), errors acknowledged on the VCMDQ.
    // CMD_SYNC (0x46), CS=NONE, MSH=ISH (0xc0_0000), MSIATTR=OIWB (0x0f00_0000).
    expect(r.machine.memory.read64(at)).toBe(0x0fc0_0046n);
    expect(reg(r, R.VINTF_PAGE0 + R.VCMDQ_GERROR)).toBe(reg(r, R.VINTF_PAGE0 + R.VCMDQ_GERRORN));
    expect(r.smmu.messages.some((m) => m.startsWith('CMDQV: unexpected error reported'))).toBe(true);
  });

  it('reports iommu_hw_info_tegra241_cmdqv for the TEGRA241_CMDQV type', () => {
    const r = rig({ tegra: true });
    const info = r.devs[0]!.iommu.ops.hwInfo!(r.devs[0]!, IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV);
    if (typeof info === 'number') throw new Error(`hwInfo ${info}`);
    expect(info.type).toBe(IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV);
    expect(iommu_hw_info_tegra241_cmdqv.decode(info.data)).toEqual({ flags: 0, version: 1, log2vcmdqs: 2, log2vsids: 4, __reserved: 0 });
  });
});

describe('TEGRA241_CMDQV vIOMMU', () => {
  it('needs its driver data (EINVAL) and writes back the VINTF page0 mmap offset and 64 KiB length', () => {
    const r = rig({ tegra: true });
    const core = new FakeCore();
    const s2 = pagingDomain(r.devs[0]!, IOMMU_HWPT_ALLOC_NEST_PARENT);
    expect(core.viommuAlloc(r.devs[0]!, s2, IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV)).toBe(EINVAL);
    const { viommu, data, user, s2: parent } = tegraVm();
    const out = iommu_viommu_tegra241_cmdqv.decode(user.bytes.slice(Number(data.uptr), Number(data.uptr) + 16));
    expect(out.out_vintf_mmap_length).toBe(0x10000n);
    expect(out.out_vintf_mmap_offset).not.toBe(0n);
    expect(viommu.memory.bytes.byteLength).toBe(tegra241_vintf.size);
    expect(parent.vmid).toBe(1);
  });

  it('programs VINTF1 with the parent VMID, guest-owned, and maps its page0 for user space', () => {
    const vm = tegraVm();
    expect(VINTF_CONFIG.decode([BigInt(reg(vm, R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_CONFIG))])).toEqual({ EN: 1n, VMID: 1n, HYP_OWN: 0n });
    expect([...vm.core.mmaps.values()]).toEqual([{ viommu: vm.viommu, addr: CMDQV + BigInt(R.VINTF_PAGE0 + R.VINTF_PAGE_STRIDE), length: 0x10000n }]);
    vm.viommu.ops!.destroy!(vm.viommu);
    expect(vm.core.mmaps.size).toBe(0);
    expect(reg(vm, R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_CONFIG)).toBe(0);
  });

  it('programs a SID slot per vDEVICE and clears it at destroy', () => {
    const vm = tegraVm();
    const vdev = vm.core.vdeviceAlloc(vm.viommu, vm.devs[0]!, VSID) as IommufdVdevice;
    expect(reg(vm, R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_SID_REPLACE)).toBe(vm.pci[0]!.streamId);
    expect(reg(vm, R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_SID_MATCH)).toBe(Number((VSID << 1n) | 1n));
    expect(vm.core.vdeviceAlloc(vm.viommu, vm.devs[1]!, 1n << 32n)).toBe(EINVAL);
    // A u32 vSID wider than the slot's 20 bits is written as is and kept truncated (writel).
    const wide = vm.core.vdeviceAlloc(vm.viommu, vm.devs[1]!, 0xfff0_0077n) as IommufdVdevice;
    expect(reg(vm, R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_SID_MATCH + 4)).toBe((0x77 << 1) | 1);
    vm.core.vdeviceDestroy(vdev);
    vm.core.vdeviceDestroy(wide);
    expect(reg(vm, R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_SID_MATCH)).toBe(0);
    expect(reg(vm, R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_SID_MATCH + 4)).toBe(0);
  });

  it('checks HW queues as the reference says: type, index, order, length, alignment; maps disabled; descending destroy', () => {
    const vm = tegraVm();
    const qmem = vm.machine.memory.allocPages(1, { align: 0x1000n })[0]!;
    const alloc = (type: number, index: number, pa: bigint, len: bigint) => vm.core.hwQueueAlloc(vm.viommu, type, index, pa, len);
    expect(alloc(0, 0, qmem, 4096n)).toBe(EOPNOTSUPP);
    expect(alloc(IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, 4, qmem, 4096n)).toBe(EINVAL);
    expect(alloc(IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, 1, qmem, 4096n)).toBe(EIO);
    expect(alloc(IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, 0, qmem, 3000n)).toBe(EINVAL);
    expect(alloc(IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, 0, qmem, 16n)).toBe(EINVAL);
    expect(alloc(IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, 0, qmem + 0x800n, 4096n)).toBe(EINVAL);
    const q0 = alloc(IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, 0, qmem, 4096n) as IommufdHwQueue;
    expect(typeof q0).toBe('object');
    expect(alloc(IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, 0, qmem, 4096n)).toBe(EEXIST);
    // Global VCMDQ 4 = VINTF1/LVCMDQ0 is now mapped; BASE = PA | log2(256 entries); not enabled.
    expect(CMDQV_CMDQ_ALLOC.num([BigInt(reg(vm, R.CMDQ_ALLOC + 16))], 'ALLOCATED')).toBe(1);
    const page0 = R.VINTF_PAGE0 + R.VINTF_PAGE_STRIDE;
    expect(vm.machine.memory.read64(CMDQV + BigInt(page0 + 0x10000))).toBe(qmem | 8n);
    expect(reg(vm, page0 + R.VCMDQ_CONFIG)).toBe(0);
    const q1 = alloc(IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, 1, vm.machine.memory.allocPages(1)[0]!, 32n) as IommufdHwQueue;
    expect(vm.core.depends).toEqual([[q1, q0]]);
    expect(vm.core.hwQueueDestroy(q0)).toBe(16);
    expect(vm.core.hwQueueDestroy(q1)).toBe(0);
    expect(vm.core.hwQueueDestroy(q0)).toBe(0);
    expect(CMDQV_CMDQ_ALLOC.num([BigInt(reg(vm, R.CMDQ_ALLOC + 16))], 'ALLOCATED')).toBe(0);
  });

  it('a guest invalidation through its VCMDQ (written via the mapped page) fixes a stale translation; a hostile command becomes a vEVENT', () => {
    const vm = tegraVm();
    const { ram, machine, viommu, user, core } = vm;
    core.vdeviceAlloc(viommu, vm.devs[0]!, VSID);
    const s1 = new GuestS1(ram);
    const cdTable = ram.allocPage();
    machine.memory.write(ram.toPa(cdTable), SMMU_CD.toBytes(s1.cd(9)));
    const p1 = ram.allocPage();
    const p2 = ram.allocPage();
    machine.memory.write(ram.toPa(p1), new Uint8Array([1]));
    machine.memory.write(ram.toPa(p2), new Uint8Array([2]));
    s1.map(0x5000_0000n, p1);
    const ste = SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n }).slice(0, 2);
    const d = viommu.ops!.allocDomainNested!(viommu, 0, user.data(IOMMU_HWPT_DATA_ARM_SMMUV3, iommu_hwpt_arm_smmuv3.encode({ ste }))) as IommuDomain;
    expect(d.ops.attachDev!(d, vm.devs[0]!)).toBe(0);
    const read = () => {
      const x = vm.pci[0]!.dma({ iova: 0x5000_0000n, length: 1, write: false });
      return x.ok ? x.data![0] : -1;
    };
    expect(read()).toBe(1);
    s1.map(0x5000_0000n, p2);
    expect(read()).toBe(1);
    // The guest's queue: 256 entries in its RAM (physically contiguous), HW_QUEUE at index 0.
    const qIpa = ram.allocPage();
    const q = core.hwQueueAlloc(viommu, IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, 0, ram.toPa(qIpa), 4096n);
    expect(typeof q).toBe('object');
    const [mmap] = [...core.mmaps.values()];
    const w32 = (off: number, v: number) => machine.memory.write32(mmap!.addr + BigInt(off), v);
    const put = (i: number, c: readonly [bigint, bigint]) => {
      ram.write64(qIpa + BigInt(i * 16), c[0]);
      ram.write64(qIpa + BigInt(i * 16) + 8n, c[1]);
    };
    // VMID 0 from the guest: the VINTF stamps VMID 1.
    put(0, buildCmd({ opcode: 'TLBI_NH_VA', asid: 9, vmid: 0, addr: 0x5000_0000n, leaf: true }));
    put(1, [BigInt(CMDQ_OP.CMD_SYNC), 0n]);
    w32(R.VCMDQ_CONFIG, 1);
    w32(R.VCMDQ_PROD, 2);
    expect(machine.memory.read32(mmap!.addr + BigInt(R.VCMDQ_CONS))).toBe(2);
    expect(read()).toBe(2);
    // A host-only command in the guest queue: the queue stops with CERROR_ILL, the host reports it.
    put(2, buildCmd({ opcode: 'CFGI_STE', sid: 0, leaf: true }));
    w32(R.VCMDQ_PROD, 3);
    expect(machine.memory.read32(mmap!.addr + BigInt(R.VCMDQ_CONS))).toBe(2 | (1 << 24));
    vm.smmu.serviceInterrupts();
    expect(core.events.map((e) => e.type)).toEqual([IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV]);
    expect(iommu_vevent_tegra241_cmdqv.decode(core.events[0]!.data)).toEqual({ lvcmdq_err_map: [1n, 0n] });
  });
});
