import { describe, expect, it } from 'vitest';
import { IOMMU_READ, IOMMU_WRITE, type IommuDomain } from '@iommufd/driver-api';
import {
  EFAULT,
  EINVAL,
  EOPNOTSUPP,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_ARM_SMMUV3,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IOMMU_VTD_INV_FLAGS_LEAF,
  IOMMU_VTD_S1_EAFE,
  IOMMU_VTD_S1_SRE,
  IOMMU_VTD_S1_WPE,
  iommu_hwpt_vtd_s1,
  iommu_hwpt_vtd_s1_invalidate,
} from '@iommufd/uapi';
import { intelIommuOps, pasidEntryBytes, type DmarDomain } from '../src/index.js';
import { ATS_PASID_PRI, VtdTestbed, hexDesc, words } from './harness.js';

const RW = IOMMU_READ | IOMMU_WRITE;
const U64_MAX = (1n << 64n) - 1n;

/** A VM: guest RAM (GPA 0 .. 1 MiB) mapped in a nesting parent, with a guest x86 4-level first-stage table. */
class Vm {
  readonly parent: DmarDomain;
  readonly gpaToHpa = new Map<bigint, bigint>();
  readonly fsRoot = 0x1000n;
  private nextTable = 0x2000n;

  constructor(readonly t: VtdTestbed) {
    this.parent = t.allocPaging(IOMMU_HWPT_ALLOC_NEST_PARENT) as DmarDomain;
    for (let gpa = 0n; gpa < 0x10_0000n; gpa += 0x1000n) {
      const hpa = t.page();
      this.gpaToHpa.set(gpa, hpa);
      expect(this.parent.ops.mapPages!(this.parent, gpa, hpa, 4096n, 1, RW).status).toBe(0);
    }
  }
  hpa(gpa: bigint): bigint {
    return this.gpaToHpa.get(gpa & ~0xfffn)! | (gpa & 0xfffn);
  }
  /** The guest writes its own page table entry (P|R/W|U/S). */
  guestMap(giova: bigint, gpa: bigint, flags = 0x7n): void {
    let table = this.fsRoot;
    for (let level = 4; level > 1; level--) {
      const slot = table + ((giova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n;
      let e = this.t.mem.read64(this.hpa(slot));
      if ((e & 1n) === 0n) {
        e = this.nextTable | 0x7n;
        this.nextTable += 0x1000n;
        this.t.mem.write64(this.hpa(slot), e);
      }
      table = e & 0xf_ffff_ffff_f000n;
    }
    this.t.mem.write64(this.hpa(table + ((giova >> 12n) & 0x1ffn) * 8n), gpa | flags);
  }
  s1(flags = 0n, width = 48, pgtbl = this.fsRoot): Uint8Array {
    return iommu_hwpt_vtd_s1.encode({ flags, pgtbl_addr: pgtbl, addr_width: width, __reserved: 0 });
  }
  allocNested(data: Uint8Array, len = data.length, type = IOMMU_HWPT_DATA_VTD_S1, flags = 0, parent: IommuDomain = this.parent): IommuDomain | number {
    return intelIommuOps.domainAllocNested!(this.t.devs[0]!, parent, flags, this.t.userData(type, data, len));
  }
}

function inv(addr: bigint, npages: bigint, flags = 0, reserved = 0): Uint8Array {
  return iommu_hwpt_vtd_s1_invalidate.encode({ addr, npages, flags, __reserved: reserved });
}

describe('nested translation over a guest first-stage table', () => {
  it('allocation checks in nested.c order with their errno', () => {
    const t = new VtdTestbed();
    const vm = new Vm(t);
    const plainParent = t.allocPaging(0);
    expect(vm.allocNested(vm.s1(), 24, IOMMU_HWPT_DATA_VTD_S1, 1 << 0)).toBe(EOPNOTSUPP);
    expect(vm.allocNested(vm.s1(), 24, IOMMU_HWPT_DATA_ARM_SMMUV3)).toBe(EOPNOTSUPP);
    expect(vm.allocNested(vm.s1(), 24, IOMMU_HWPT_DATA_VTD_S1, 0, plainParent)).toBe(EINVAL);
    expect(vm.allocNested(vm.s1(), 16)).toBe(EINVAL);
    expect(vm.allocNested(new Uint8Array(32), 32)).toBe(EINVAL);
    expect(intelIommuOps.domainAllocNested!(t.devs[0]!, vm.parent, 0, { type: IOMMU_HWPT_DATA_VTD_S1, uptr: 0xdead_0000n, len: 24, user: t.user })).toBe(EFAULT);
    const noNest = new VtdTestbed({ nested: false });
    expect(intelIommuOps.domainAllocNested!(noNest.devs[0]!, vm.parent, 0, t.userData(IOMMU_HWPT_DATA_VTD_S1, vm.s1()))).toBe(EOPNOTSUPP);
    // Unchecked at allocation: undefined flags, bad width (caught at attach).
    const d = vm.allocNested(vm.s1(0x80n, 39)) as IommuDomain;
    expect(d.type).toBe('nested');
    expect(d.ops.attachDev!(d, t.devs[0]!)).toBe(EINVAL);
  });

  it('attach checks: SRE needs ECAP.SRS, EAFE needs ECAP.EAFS, 57-bit needs FS5LP', () => {
    const t = new VtdTestbed({ supervisorRequests: false });
    const vm = new Vm(t);
    const sre = vm.allocNested(vm.s1(BigInt(IOMMU_VTD_S1_SRE))) as IommuDomain;
    expect(sre.ops.attachDev!(sre, t.devs[0]!)).toBe(EINVAL);
    const eafe = vm.allocNested(vm.s1(BigInt(IOMMU_VTD_S1_EAFE))) as IommuDomain;
    expect(eafe.ops.attachDev!(eafe, t.devs[0]!)).toBe(EINVAL);
    const w57 = vm.allocNested(vm.s1(0n, 57)) as IommuDomain;
    expect(w57.ops.attachDev!(w57, t.devs[0]!)).toBe(EINVAL);
    expect(t.iommu.allocatedDids).toEqual([]);
  });

  it('DMA at guest addresses, stale translation until the guest invalidates, exact PASID entry and PIOTLB bytes', () => {
    const t = new VtdTestbed({}, [ATS_PASID_PRI]);
    const vm = new Vm(t);
    const giova = 0x7f00_0000_3000n;
    vm.guestMap(giova, 0x8_0000n);
    const nested = vm.allocNested(vm.s1(BigInt(IOMMU_VTD_S1_SRE | IOMMU_VTD_S1_WPE), 48, vm.fsRoot | 0xabcn)) as DmarDomain;
    expect(nested.ops.attachDev!(nested, t.devs[0]!)).toBe(0);
    const did = nested.didOn(t.iommu)!;
    expect(did).toBe(2);
    const info = t.iommu.devices.get(0x18)!;
    // P | AW=2 | PGTT=3 | SSPTPTR; DID | PWSNP; SRE | WPE | FSPTPTR (low 12 bits dropped).
    expect(words(pasidEntryBytes(t.iommu, info))).toEqual([
      vm.parent.pgtable!.root | (3n << 6n) | (2n << 2n) | 1n,
      BigInt(did) | (1n << 23n),
      0x1000n | (1n << 4n) | 1n,
      0n, 0n, 0n, 0n, 0n,
    ]);
    const dev = t.pci[0]!;
    expect(dev.dma({ iova: giova + 8n, length: 4, write: true, data: new Uint8Array([1, 1, 1, 1]) })).toEqual({ ok: true });
    expect([...t.mem.read(vm.hpa(0x8_0008n), 4)]).toEqual([1, 1, 1, 1]);
    // Guest retargets its PTE without telling anyone: the IOTLB and the ATC still hold the old page.
    vm.guestMap(giova, 0x9_0000n);
    expect(dev.dma({ iova: giova + 8n, length: 4, write: true, data: new Uint8Array([2, 2, 2, 2]) })).toEqual({ ok: true });
    expect([...t.mem.read(vm.hpa(0x8_0008n), 4)]).toEqual([2, 2, 2, 2]);
    expect([...t.mem.read(vm.hpa(0x9_0008n), 4)]).toEqual([0, 0, 0, 0]);
    const mark = t.iommu.qi.log.length;
    const arr = t.userArray(IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, [inv(giova, 1n, IOMMU_VTD_INV_FLAGS_LEAF)]);
    expect(nested.ops.cacheInvalidateUser!(nested, arr)).toBe(0);
    expect(arr.entryNum).toBe(1);
    // PIOTLB G=3 DID 2 PASID 0 ADDR IH=1 AM=0, then the device-TLB of SID 0x18 for that page.
    expect(t.batchesSince(mark).map((b) => b.map((x) => hexDesc(x.slice(0, 2))))).toEqual([
      [
        ['0x0000000000020036', '0x00007f0000003040'],
        ['0x0000001800000003', '0x00007f0000003000'],
      ],
    ]);
    expect(dev.dma({ iova: giova + 8n, length: 4, write: true, data: new Uint8Array([3, 3, 3, 3]) })).toEqual({ ok: true });
    expect([...t.mem.read(vm.hpa(0x9_0008n), 4)]).toEqual([3, 3, 3, 3]);
  });

  it('bad invalidation entries: exact errno and entry_num, nothing after the bad entry is flushed', () => {
    const t = new VtdTestbed();
    const vm = new Vm(t);
    const nested = vm.allocNested(vm.s1()) as DmarDomain;
    expect(nested.ops.attachDev!(nested, t.devs[0]!)).toBe(0);
    const run = (entries: Uint8Array[], type = IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entryLen = 24): [number, number, number] => {
      const mark = t.iommu.qi.log.length;
      const a = t.userArray(type, entries, entryLen);
      const rc = nested.ops.cacheInvalidateUser!(nested, a);
      return [rc, a.entryNum, t.iommu.qi.log.length - mark];
    };
    expect(run([inv(0n, U64_MAX)], 1)).toEqual([EINVAL, 0, 0]);
    expect(run([inv(0x1000n, 1n), inv(0x2000n, 1n, 2)])).toEqual([EOPNOTSUPP, 1, 1]);
    expect(run([inv(0x1000n, 1n), inv(0x2000n, 1n, 0, 1)])).toEqual([EOPNOTSUPP, 1, 1]);
    expect(run([inv(0x1000n, 1n), inv(0x2000n, 1n), inv(0x2800n, 1n)])).toEqual([EINVAL, 2, 2]);
    expect(run([inv(0x1000n, U64_MAX)])).toEqual([EINVAL, 0, 0]);
    expect(run([inv(0n, U64_MAX)])).toEqual([0, 1, 1]);
    expect(run([inv(0n, 1n)], IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, 16)).toEqual([EINVAL, 0, 0]);
    expect(run([inv(0n, 1n)], IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, 32)).toEqual([EINVAL, 0, 0]);
    // Everything: PIOTLB all-in-PASID (G=2).
    const mark = t.iommu.qi.log.length;
    run([inv(0n, U64_MAX)]);
    expect(t.batchesSince(mark).map((b) => b.map((x) => hexDesc(x.slice(0, 2))))).toEqual([[['0x0000000000020026', '0x0000000000000000']]]);
    // An unaligned range widens the mask until start and end share the high bits.
    const m2 = t.iommu.qi.log.length;
    run([inv(0x3000n, 2n)]);
    expect(t.batchesSince(m2).map((b) => b.map((x) => hexDesc(x.slice(0, 2))))).toEqual([[['0x0000000000020036', '0x0000000000000003']]]);
  });

  it('a host unmap on the parent flushes the nested DID with type-2 PSI (NESTING_IOTLB tag) and the whole device-TLB', () => {
    const t = new VtdTestbed({}, [ATS_PASID_PRI]);
    const vm = new Vm(t);
    const nested = vm.allocNested(vm.s1()) as DmarDomain;
    expect(nested.ops.attachDev!(nested, t.devs[0]!)).toBe(0);
    const mark = t.iommu.qi.log.length;
    expect(vm.parent.ops.unmapPages!(vm.parent, 0x8_0000n, 4096n, 1)).toBe(4096n);
    expect(t.batchesSince(mark).map((b) => b.map((x) => hexDesc(x.slice(0, 2))))).toEqual([
      [
        ['0x0000000000020032', '0x0000000000080000'],
        ['0x0000001800000003', '0x7ffffffffffff001'],
      ],
    ]);
  });
});
