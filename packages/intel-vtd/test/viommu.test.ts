// The experimental VT-d vIOMMU through the core: vDEVICEs with guest RIDs, nested HWPTs
// allocated from the vIOMMU with guest DIDs, raw guest QI descriptors rewritten with host
// DIDs/SIDs, faults as vEVENTs, and two VMs that cannot reach each other.
import { describe, expect, it } from 'vitest';
import { IommuCore, iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceReplace, type CoreDevice } from '@iommufd/core';
import { VtdCcDesc, VtdDevTlbDesc, VtdPiotlbDesc, VtdWaitDesc } from '@iommufd/hw-model';
import {
  EINVAL,
  EIO,
  EOPNOTSUPP,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_VTD_S1,
  IommufdError,
  hwptAlloc,
  hwptInvalidate,
  ioasAlloc,
  ioasMap,
  parseVevents,
  vdeviceAlloc,
  veventqAlloc,
  viommuAlloc,
} from '@iommufd/uapi';
import {
  IOMMU_HWPT_DATA_VTD_S1_VDID_EXP,
  IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP,
  IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP,
  IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP,
  iommu_hwpt_vtd_s1_vdid,
  iommu_vevent_vtd_fault,
} from '../src/index.js';
import { VtdTestbed, hexDesc, type TestDeviceSpec } from './harness.js';
import { VmmProcess } from './vmm.js';

const GUEST_RAM = 0x10_0000n;
const DEV_A: TestDeviceSpec = { bdf: { bus: 0, dev: 3, fn: 0 }, capabilities: { ats: true } };
const DEV_B: TestDeviceSpec = { bdf: { bus: 0, dev: 4, fn: 0 }, capabilities: { ats: true } };

function le64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

/** One VM: its own process and iommufd, guest RAM in an IOAS, a nesting parent and a vIOMMU. */
class Vm {
  readonly p: VmmProcess;
  readonly devId: number;
  readonly ram: bigint;
  readonly parent: number;
  readonly viommu: number;
  private next = 0x2000n;
  readonly idev: Parameters<typeof iommufdDeviceReplace>[0];

  constructor(core: IommuCore, t: VtdTestbed, dev: CoreDevice, readonly vrid: bigint) {
    this.p = new VmmProcess(t.mem, core);
    const bound = iommufdDeviceBind(this.p.ctx, dev);
    if (typeof bound === 'number') throw new Error(`bind ${bound}`);
    this.idev = bound.idev;
    this.devId = bound.devId;
    this.ram = this.p.alloc(GUEST_RAM);
    const ioas = ioasAlloc(this.p, this.fd);
    ioasMap(this.p, this.fd, { ioasId: ioas, userVa: this.ram, length: GUEST_RAM, iova: 0n });
    this.parent = hwptAlloc(this.p, this.fd, { devId: this.devId, ptId: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    expect(iommufdDeviceAttach(bound.idev, undefined, this.parent)).toEqual({ ptId: this.parent });
    this.viommu = viommuAlloc(this.p, this.fd, { devId: this.devId, hwptId: this.parent, type: IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP }).id;
    vdeviceAlloc(this.p, this.fd, { viommuId: this.viommu, devId: this.devId, virtId: vrid });
  }
  get fd(): number {
    return this.p.iommufd;
  }
  read64(gpa: bigint): bigint {
    return new DataView(this.p.peek(this.ram + gpa, 8).buffer).getBigUint64(0, true);
  }
  guestMap(giova: bigint, gpa: bigint): void {
    let table = 0x1000n;
    for (let level = 4; level > 1; level--) {
      const slot = table + ((giova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n;
      let e = this.read64(slot);
      if ((e & 1n) === 0n) {
        e = this.next | 7n;
        this.next += 0x1000n;
        this.p.poke(this.ram + slot, le64(e));
      }
      table = e & ~0xfffn;
    }
    this.p.poke(this.ram + table + ((giova >> 12n) & 0x1ffn) * 8n, le64(gpa | 7n));
  }
  nested(guestDid: number): number {
    const bytes = iommu_hwpt_vtd_s1_vdid.encode({ flags: 0n, pgtbl_addr: 0x1000n, addr_width: 48, guest_did: guestDid });
    return hwptAlloc(this.p, this.fd, { devId: this.devId, ptId: this.viommu, data: { type: IOMMU_HWPT_DATA_VTD_S1_VDID_EXP, bytes } });
  }
  /** Guest QI descriptors through IOMMU_HWPT_INVALIDATE on the vIOMMU: [errno, entry_num]. */
  invalidate(descs: bigint[][]): [number, number | undefined] {
    const entries = descs.map((d) => {
      const b = new Uint8Array(32);
      d.forEach((w, i) => b.set(le64(w), i * 8));
      return b;
    });
    try {
      return [0, hwptInvalidate(this.p, this.fd, { hwptId: this.viommu, dataType: IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP, entryLen: 32, entries }).entryNum];
    } catch (e) {
      if (!(e instanceof IommufdError)) throw e;
      return [e.errno, e.entryNum];
    }
  }
}

function boot() {
  const core = new IommuCore();
  const t = new VtdTestbed({}, [DEV_A, DEV_B], true, core);
  const a = new Vm(core, t, t.coreDevs[0]!, 0x0100n);
  const b = new Vm(core, t, t.coreDevs[1]!, 0x0100n);
  return { core, t, a, b };
}

const piotlb = (did: number, addr: bigint, am = 0, pasid = 0): bigint[] => [...VtdPiotlbDesc.encode({ TYPE: 6, G: 3, DID: did, PASID: pasid, ADDR: addr, AM: am }), 0n, 0n];
const devtlb = (sid: number, addr: bigint): bigint[] => [...VtdDevTlbDesc.encode({ TYPE: 3, SID: sid, ADDR: addr }), 0n, 0n];

describe('experimental VT-d vIOMMU', () => {
  it('allocation: type outside the Linux enum, nested HWPTs from the vIOMMU carry a guest DID', () => {
    const { t, a } = boot();
    const h = a.nested(7);
    expect(iommufdDeviceReplace(a.idev, undefined, h)).toEqual({ ptId: h });
    // Plain VTD_S1 data is not the vIOMMU's format; a guest DID above 16 bits is rejected.
    const s1 = iommu_hwpt_vtd_s1_vdid.encode({ flags: 0n, pgtbl_addr: 0x1000n, addr_width: 48, guest_did: 0x1_0000 });
    const err = (f: () => unknown): number => {
      try {
        f();
        return 0;
      } catch (e) {
        return (e as IommufdError).errno;
      }
    };
    expect(err(() => hwptAlloc(a.p, a.fd, { devId: a.devId, ptId: a.viommu, data: { type: IOMMU_HWPT_DATA_VTD_S1, bytes: s1 } }))).toBe(EOPNOTSUPP);
    expect(err(() => hwptAlloc(a.p, a.fd, { devId: a.devId, ptId: a.viommu, data: { type: IOMMU_HWPT_DATA_VTD_S1_VDID_EXP, bytes: s1 } }))).toBe(EINVAL);
    expect(err(() => vdeviceAlloc(a.p, a.fd, { viommuId: a.viommu, devId: a.devId, virtId: 0x1_0000n }))).not.toBe(0);
    expect(t.iommu.allocatedDids.length).toBe(2);
  });

  it('guest PIOTLB / dev-TLB descriptors are rewritten with the host DID and SID; stale until then', () => {
    const { t, a } = boot();
    const giova = 0x2000_0000n;
    a.guestMap(giova, 0x8_0000n);
    const h = a.nested(7);
    iommufdDeviceReplace(a.idev, undefined, h);
    const dev = t.pci[0]!;
    expect(dev.dma({ iova: giova, length: 4, write: true, data: new Uint8Array([1, 1, 1, 1]) })).toEqual({ ok: true });
    a.guestMap(giova, 0x9_0000n);
    expect(dev.dma({ iova: giova, length: 4, write: true, data: new Uint8Array([2, 2, 2, 2]) })).toEqual({ ok: true });
    expect([...a.p.peek(a.ram + 0x9_0000n, 4)]).toEqual([0, 0, 0, 0]);
    const mark = t.iommu.qi.log.length;
    expect(a.invalidate([piotlb(7, giova), devtlb(0x0100, giova)])).toEqual([0, 2]);
    const hostDid = t.iommu.devices.get(0x18)!.domain!.didOn(t.iommu)!;
    expect(t.batchesSince(mark).map((x) => x.map((y) => hexDesc(y.slice(0, 2))))).toEqual([
      [['0x' + ((BigInt(hostDid) << 16n) | 0x36n).toString(16).padStart(16, '0'), '0x0000000020000000']],
      [['0x0000001800000003', '0x0000000020000000']],
    ]);
    expect(dev.dma({ iova: giova, length: 4, write: true, data: new Uint8Array([3, 3, 3, 3]) })).toEqual({ ok: true });
    expect([...a.p.peek(a.ram + 0x9_0000n, 4)]).toEqual([3, 3, 3, 3]);
  });

  it('errno and entry_num: unknown vRID and VMM-owned descriptor types are EIO, malformed ones EINVAL', () => {
    const { a } = boot();
    iommufdDeviceReplace(a.idev, undefined, a.nested(7));
    const cc = [...VtdCcDesc.encode({ TYPE: 1, G: 1 }), 0n, 0n];
    const wait = [...VtdWaitDesc.encode({ TYPE: 5, SW: 1 }), 0n, 0n];
    expect(a.invalidate([piotlb(7, 0n), devtlb(0x0200, 0n)])).toEqual([EIO, 1]);
    expect(a.invalidate([cc])).toEqual([EIO, 0]);
    expect(a.invalidate([piotlb(7, 0n), wait])).toEqual([EIO, 1]);
    expect(a.invalidate([piotlb(7, 0n), piotlb(7, 0n, 19)])).toEqual([EINVAL, 1]);
    expect(a.invalidate([[piotlb(7, 0n)[0]! | (1n << 7n), 0n, 0n, 0n]])).toEqual([EINVAL, 0]);
    expect(a.invalidate([[...piotlb(7, 0n).slice(0, 2), 1n, 0n]])).toEqual([EINVAL, 0]);
    expect(a.invalidate([piotlb(9, 0n)])).toEqual([0, 1]);
  });

  it('a hostile guest is confined: same guest DID and vRID numbers reach only its own domains and devices', () => {
    const { t, a, b } = boot();
    const giova = 0x3000_0000n;
    a.guestMap(giova, 0x8_0000n);
    b.guestMap(giova, 0x8_0000n);
    iommufdDeviceReplace(a.idev, undefined, a.nested(7));
    iommufdDeviceReplace(b.idev, undefined, b.nested(7));
    const [da, db] = [t.pci[0]!, t.pci[1]!];
    expect(da.dma({ iova: giova, length: 1, write: true, data: new Uint8Array([0xa]) })).toEqual({ ok: true });
    expect(db.dma({ iova: giova, length: 1, write: true, data: new Uint8Array([0xb]) })).toEqual({ ok: true });
    expect([...a.p.peek(a.ram + 0x8_0000n, 1)]).toEqual([0xa]);
    expect([...b.p.peek(b.ram + 0x8_0000n, 1)]).toEqual([0xb]);
    // Both guests retarget; only B invalidates (guest DID 7 and vRID 0x100, the same numbers as A's).
    a.guestMap(giova, 0x9_0000n);
    b.guestMap(giova, 0x9_0000n);
    const mark = t.iommu.qi.log.length;
    expect(b.invalidate([piotlb(7, giova), devtlb(0x0100, giova)])).toEqual([0, 2]);
    const hostDidB = t.iommu.devices.get(0x20)!.domain!.didOn(t.iommu)!;
    const batches = t.batchesSince(mark);
    expect(VtdPiotlbDesc.f.DID.get(batches[0]![0]!)).toBe(hostDidB);
    expect(VtdDevTlbDesc.f.SID.get(batches[1]![0]!)).toBe(0x20);
    expect(da.dma({ iova: giova, length: 1, write: true, data: new Uint8Array([0xaa]) })).toEqual({ ok: true });
    expect(db.dma({ iova: giova, length: 1, write: true, data: new Uint8Array([0xbb]) })).toEqual({ ok: true });
    expect([...a.p.peek(a.ram + 0x8_0000n, 1)]).toEqual([0xaa]);
    expect([...b.p.peek(b.ram + 0x9_0000n, 1)]).toEqual([0xbb]);
    // B's page table points past its guest RAM: the walk faults in its second stage, no host byte moves.
    b.guestMap(0x4000_0000n, 0x7000_0000n);
    const r = db.dma({ iova: 0x4000_0000n, length: 1, write: true, data: new Uint8Array([0xff]) });
    expect(r.ok).toBe(false);
  });

  it('unrecoverable faults of a nested domain become vEVENTs with the guest RID', () => {
    const { a, t } = boot();
    iommufdDeviceReplace(a.idev, undefined, a.nested(7));
    const q = veventqAlloc(a.p, a.fd, { viommuId: a.viommu, type: IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, depth: 8 });
    const r = t.pci[0]!.dma({ iova: 0x5555_0000n, length: 4, write: true, data: new Uint8Array(4) });
    expect(r.ok).toBe(false);
    const buf = new Uint8Array(256);
    const n = a.p.read(q.fd, buf);
    const events = parseVevents(buf.subarray(0, n), IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, iommu_vevent_vtd_fault.size);
    expect(events.map((e) => iommu_vevent_vtd_fault.decode(e.data))).toEqual([
      { addr: 0x5555_0000n, virt_rid: 0x0100, pasid: 0, reason: r.ok ? 0 : r.fault.code, flags: 0 },
    ]);
    expect(t.iommu.faultLog.at(-1)?.sid).toBe(0x18);
  });
});
