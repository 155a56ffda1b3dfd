// The selftest port's portable cases on the intel-vtd driver (issue 7), catalogue section by
// section (../shared/reference/iommufd-selftests.md §2), with VT-d data in place of the mock's:
// real VFIO functions in place of MOCK_DOMAIN, device DMA and the driver's PASID entries and
// QI descriptors in place of MD_CHECK_MAP / MD_CHECK_IOTLB, iommu_hw_info_vtd,
// iommu_hwpt_vtd_s1(_invalidate) and the experimental VT-d vIOMMU (type 0x8086).
//
// Not applicable on VT-d, and why:
// - §2.1 basic / cmd_length / cmd_ex_fail, §2.3 IOAS cases without a device (alloc, allow,
//   copy, options), §2.16 change_process: no driver is in their path; they run on mock in
//   ../selftest/, and the IOAS cases with a device attached also in portable.test.ts on every
//   preset (area, unmap, copy, iova_ranges, attach/replace, destroy) — not repeated here.
// - §2.2 vfio_compat argument checks (argsz, flags, ENODEV without an IOAS, the cap chain
//   layout): core-only; the map/unmap/info path with a VT-d domain is run here.
// - §2.5 access (CREATE_ACCESS, ACCESS_PAGES/RW), MD_CHECK_REFS/IOTLB/DEV_CACHE, TRIGGER_IOPF,
//   TRIGGER_VEVENT, ADD_RESERVED, mock PASID test ops: IOMMU_TEST_CMD exists only with the
//   mock driver. Their VT-d equivalents are used instead: DMA through the unit, the driver's
//   PASID entries and QI log, PRI page requests from the function, recorded DMA faults.
// - §2.4 hugepage / file variants: hugetlbfs/memfd sources are core-only (the host backs
//   anonymous memory page by page, so the domain gets 4 KiB leaves); the 2 MiB range is kept for its
//   invalidation (one PIOTLB with AM 9).
// - §2.7 MOCK_FLAGS_DEVICE_NO_DIRTY / HUGE_IOVA and the mock's 2 KiB pages: mock geometry.
// - §2.9/2.10 the selftest vIOMMU's mmap, data-carrying VIOMMU_ALLOC and the SELFTEST
//   invalidation/vEVENT formats: the VT-d vIOMMU has no driver data and no MMIO page.
// - §2.12 HW_QUEUE: VT-d has no guest-owned invalidation queue (only EOPNOTSUPP is checked).
// - PASID cases that rely on the mock's forced failures (pasid 1024 → ENOMEM) or on the
//   test op's "attach never overwrites" (VFIO's PASID attach replaces, as Linux's does).
import { VtdCap, VtdDevTlbDesc, VtdEcap, VtdIotlbDesc, VtdPdevTlbDesc, VtdPiotlbDesc } from '@iommufd/hw-model';
import {
  IOMMU_HWPT_DATA_VTD_S1_VDID_EXP,
  IOMMU_VEVENT_VTD_FAULT_PASID_VALID,
  IOMMU_VEVENT_VTD_FAULT_READ,
  IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP,
  IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP,
  IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP,
  iommu_vevent_vtd_fault,
} from '@iommufd/intel-vtd';
import { describe, expect, it } from 'vitest';
import { INTEL_VTD_BASE } from '../../src/platforms/intel-vtd.js';
import { PAGE, U } from '../selftest/helpers.js';
import { guestPageTable, inv, openVmm, qiEntry, readVtdVevents, s1, s1vdid, sidOf, VTD_PGTT, vtdHost, vtdInspect, type VtdVmm } from './vtd-fixture.js';

const U64_MAX = (1n << 64n) - 1n;
const { NEST_PARENT, DIRTY, PASID, FAULT } = {
  NEST_PARENT: U.IOMMU_HWPT_ALLOC_NEST_PARENT,
  DIRTY: U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  PASID: U.IOMMU_HWPT_ALLOC_PASID,
  FAULT: U.IOMMU_HWPT_FAULT_ID_VALID,
};

async function boot(devices = 2) {
  const host = await vtdHost(devices);
  const vmm = openVmm(host, Array.from({ length: devices }, (_, i) => i));
  const x = vtdInspect(host);
  const dma = (dev: number, iova: bigint, data: Uint8Array | number, pasid?: number) => {
    const extra = pasid === undefined ? {} : { pasid };
    const r = typeof data === 'number' ? host.dma(host.vfioDevices[dev]!, { iova, length: data, write: false, ...extra }) : host.dma(host.vfioDevices[dev]!, { iova, length: data.length, write: true, data, ...extra });
    return r.ok ? (r.data ?? 'ok') : 'fault';
  };
  const cap = new DataView(host.memory.read(INTEL_VTD_BASE + 0x08n, 8).buffer).getBigUint64(0, true);
  const ecap = new DataView(host.memory.read(INTEL_VTD_BASE + 0x10n, 8).buffer).getBigUint64(0, true);
  return { ...vmm, x, dma, cap, ecap };
}
type Boot = Awaited<ReturnType<typeof boot>>;

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (seed + i * 3) & 0xff);
const ok = (r: { rc: number; id: number }) => {
  expect(r.rc).toBe(0);
  return r.id;
};
/** A nest parent on the IOAS, with device 0 attached to it. */
function parentOf(b: Boot | VtdVmm, dev = 0): number {
  const parent = ok(b.t.hwptAlloc(b.devIds[dev]!, b.ioas, NEST_PARENT));
  expect(b.attach(dev, parent)).toEqual({ rc: 0, pt: parent });
  return parent;
}

/** Everything closed: no object, pin, DID, context or PASID entry left. */
function closeAll(b: Boot): void {
  for (const dfd of b.devFds) expect(b.proc.close(dfd)).toBe(0);
  for (const { fd } of b.proc.fds()) b.proc.close(fd);
  expect(b.host.contexts().every((c) => c.released && c.objects.length === 0)).toBe(true);
  expect(b.host.pinnedPages).toBe(0);
  expect(b.x.unit.allocatedDids).toEqual([]);
  // Unbound functions keep their probe-time context entry; their PASID 0 entry is gone.
  for (let i = 0; i < b.devFds.length; i++) expect(b.x.pasidEntry(i).P).toBe(0);
}

describe('§2.3/2.4 IOAS with a VT-d function attached (MD_CHECK_MAP → DMA)', () => {
  it('all_aligns: every start/length in 4 KiB steps over 8 pages maps, reads back through the unit and unmaps to a fault', async () => {
    const b = await boot(1);
    const ioas = b.t.ioasAlloc();
    expect(b.attach(0, ioas).rc).toBe(0);
    const buf = b.t.alloc(8n * PAGE);
    b.proc.poke(buf, bytes(8 * 4096, 5));
    const base = 1n << 30n;
    for (let start = 0n; start < 8n; start++) {
      for (let end = start + 1n; end <= 8n; end++) {
        const m = b.t.map(ioas, buf + start * PAGE, (end - start) * PAGE, { iova: base + start * PAGE });
        expect(m.rc).toBe(0);
        expect(b.dma(0, base + start * PAGE, 16)).toEqual(bytes(8 * 4096, 5).subarray(Number(start) * 4096, Number(start) * 4096 + 16));
        expect(b.dma(0, base + end * PAGE - 8n, 8)).toEqual(bytes(8 * 4096, 5).subarray(Number(end) * 4096 - 8, Number(end) * 4096));
        expect(b.t.unmap(ioas, base + start * PAGE, (end - start) * PAGE)).toEqual({ rc: 0, length: (end - start) * PAGE });
        expect(b.dma(0, base + start * PAGE, 4)).toBe('fault');
      }
    }
    closeAll(b);
  });

  it('a 2 MiB mapping on a first-stage domain: unmap issues one page-selective PIOTLB (AM 9) + one device-TLB over the 2 MiB', async () => {
    const b = await boot(1);
    const ioas = b.t.ioasAlloc();
    const at = b.attach(0, ioas);
    expect(at.rc).toBe(0);
    const va = b.proc.mmap(4n << 20n, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED | U.MAP_ANONYMOUS, -1, 0);
    const huge = (va + (2n << 20n) - 1n) & ~((2n << 20n) - 1n);
    expect(b.t.map(ioas, huge, 2n << 20n, { iova: 2n << 20n }).rc).toBe(0);
    const info = b.x.unit.devices.get(sidOf(0))!;
    expect(info.domain!.stage).toBe('first-stage');
    expect(b.x.pasidEntry(0)).toMatchObject({ P: 1, PGTT: VTD_PGTT.FIRST_STAGE, FSPTPTR: info.domain!.pgtable!.root, DID: 2 });
    const mark = b.x.unit.qi.log.length;
    expect(b.t.unmap(ioas, 2n << 20n, 2n << 20n).rc).toBe(0);
    // PIOTLB G=3 (page-selective in PASID) DID 2, PASID 0, ADDR 2 MiB, AM 9; then the ATS
    // function's device-TLB with S=1 over the same 2 MiB.
    const [piotlb, devtlb] = b.x.qiSince(mark);
    expect(VtdPiotlbDesc.decode(piotlb!)).toMatchObject({ TYPE: 6, G: 3, DID: 2, PASID: 0, ADDR: 2n << 20n, AM: 9 });
    expect(VtdDevTlbDesc.decode(devtlb!)).toMatchObject({ TYPE: 3, SID: sidOf(0), S: 1 });
    expect(b.x.qiSince(mark)).toHaveLength(2);
    closeAll(b);
  });
});

describe('§2.3 IOAS geometry with VT-d domains (iova_ranges, area beyond an aperture)', () => {
  it('first stage: [0, 2^47-1]; second stage: [0, 2^48-1]; both attached: the intersection; an existing area beyond an aperture is EADDRINUSE', async () => {
    const b = await boot(2);
    const ranges = (ioas: number) => b.t.iovaRanges(ioas, 4).ranges;
    const ioas = b.t.ioasAlloc();
    const buf = b.t.alloc(PAGE);
    // No domain yet: the whole space; an area at 2^47 (beyond a first stage, inside a second).
    expect(ranges(ioas)).toEqual([{ start: 0n, last: U64_MAX }]);
    expect(b.t.map(ioas, buf, PAGE, { iova: 1n << 47n }).rc).toBe(0);
    expect(b.attach(0, ioas).rc).toBe(-U.EADDRINUSE);
    expect(b.t.hwptAlloc(b.devIds[0]!, ioas, 0).rc).toBe(-U.EADDRINUSE);
    const ss = ok(b.t.hwptAlloc(b.devIds[0]!, ioas, NEST_PARENT));
    expect(b.attach(0, ss).rc).toBe(0);
    expect(ranges(ioas)).toEqual([{ start: 0n, last: (1n << 48n) - 1n }]);
    expect(b.dma(0, 1n << 47n, 4)).toEqual(b.proc.peek(buf, 4));
    // Beyond the second stage's 48 bits: EINVAL now that the aperture is enforced.
    expect(b.t.map(ioas, buf, PAGE, { iova: 1n << 48n }).rc).toBe(-U.EINVAL);
    expect(b.t.unmap(ioas, 1n << 47n, PAGE).rc).toBe(0);
    // A first-stage domain on device 1 narrows the ranges to the lower canonical half.
    expect(b.attach(1, ioas).rc).toBe(0);
    expect(ranges(ioas)).toEqual([{ start: 0n, last: (1n << 47n) - 1n }]);
    expect(b.t.map(ioas, buf, PAGE, { iova: 1n << 47n }).rc).toBe(-U.EINVAL);
    closeAll(b);
  });
});

describe('§2.2 vfio_compat with a VT-d function on the compat IOAS', () => {
  it('type1v2 MAP_DMA/UNMAP_DMA drive the first-stage domain; GET_INFO reports its page sizes and aperture', async () => {
    const b = await boot(1);
    const ioas = b.t.ioasAlloc();
    expect(b.attach(0, ioas).rc).toBe(0);
    expect(U.vfioIoas(b.proc, b.fd, U.IOMMU_VFIO_IOAS_SET, ioas)).toBe(ioas);
    U.vfioSetIommu(b.proc, b.fd, U.VFIO_TYPE1v2_IOMMU);
    const info = U.vfioIommuGetInfo(b.proc, b.fd);
    // The first-stage domain: 4 KiB and 2 MiB leaves (CAP.FS1GP decides 1 GiB), canonical lower half.
    const pg = (1n << 12n) | (1n << 21n) | (VtdCap.f.FS1GP.of(b.cap) ? 1n << 30n : 0n);
    expect(info.iovaPgsizes).toBe(pg);
    expect(info.iovaRanges).toEqual([{ start: 0n, end: (1n << 47n) - 1n }]);
    const buf = b.t.alloc(4n * PAGE);
    b.proc.poke(buf + PAGE, bytes(16, 0x42));
    U.vfioIommuMapDma(b.proc, b.fd, { vaddr: buf, iova: 1n << 32n, size: 4n * PAGE, flags: U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_WRITE });
    expect(b.dma(0, (1n << 32n) + PAGE, 16)).toEqual(bytes(16, 0x42));
    expect(U.vfioIommuUnmapDma(b.proc, b.fd, { iova: 1n << 32n, size: 4n * PAGE })).toBe(4n * PAGE);
    expect(b.dma(0, (1n << 32n) + PAGE, 4)).toBe('fault');
    closeAll(b);
  });
});

describe('§2.6 device: GET_HW_INFO with iommu_hw_info_vtd', () => {
  it('type INTEL_VTD, flags = ERRATA_772415_SPR17, CAP and ECAP bytes; data_len reports 24 whatever the buffer', async () => {
    const b = await boot(1);
    const expected = U.iommu_hw_info_vtd.encode({ flags: U.IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, __reserved: 0, cap_reg: b.cap, ecap_reg: b.ecap });
    for (const len of [0, 4, 8, 24, 32, 64]) {
      const r = b.t.hwInfo(b.devIds[0]!, len);
      expect(r.rc).toBe(0);
      expect(r.out.out_data_type).toBe(U.IOMMU_HW_INFO_TYPE_INTEL_VTD);
      expect(r.out.data_len).toBe(24);
      // min(len, 24) bytes copied, the rest of the user buffer zeroed.
      const want = new Uint8Array(len);
      want.set(expected.subarray(0, Math.min(len, 24)));
      expect(r.data).toEqual(want);
      expect(r.out.out_max_pasid_log2).toBe(20);
      expect(r.out.out_capabilities).toBe(BigInt(U.IOMMU_HW_CAP_DIRTY_TRACKING | U.IOMMU_HW_CAP_PCI_PASID_PRIV));
    }
    // The preset's unit: scalable mode with nesting, first and second stage, PASID, PRS, SLADS.
    for (const f of ['QI', 'DT', 'NEST', 'PRS', 'PASID', 'SMTS', 'SLADS', 'SLTS', 'FLTS', 'SMPWC'] as const) expect(VtdEcap.f[f].of(b.ecap)).toBe(1);
    expect(VtdCap.f.PSI.of(b.cap)).toBe(1);
    closeAll(b);
  });

  it('input types: DEFAULT and INTEL_VTD accepted, any other EOPNOTSUPP; unknown flags EOPNOTSUPP; bad pointer EFAULT; unknown device ENOENT', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const flags = U.IOMMU_HW_INFO_FLAG_INPUT_TYPE;
    expect(b.t.hwInfo(dev, 24, { flags, inType: U.IOMMU_HW_INFO_TYPE_DEFAULT }).rc).toBe(0);
    expect(b.t.hwInfo(dev, 24, { flags, inType: U.IOMMU_HW_INFO_TYPE_INTEL_VTD }).rc).toBe(0);
    expect(b.t.hwInfo(dev, 24, { flags, inType: U.IOMMU_HW_INFO_TYPE_ARM_SMMUV3 }).rc).toBe(-U.EOPNOTSUPP);
    expect(b.t.hwInfo(dev, 24, { flags, inType: U.IOMMU_HW_INFO_TYPE_SELFTEST }).rc).toBe(-U.EOPNOTSUPP);
    expect(b.t.hwInfo(dev, 24, { flags: 1 << 1 }).rc).toBe(-U.EOPNOTSUPP);
    expect(b.t.hwInfo(dev, 24, { uptr: 0x10n }).rc).toBe(-U.EFAULT);
    expect(b.t.hwInfo(9999, 24).rc).toBe(-U.ENOENT);
    expect(b.t.hwInfo(b.ioas, 24).rc).toBe(-U.ENOENT);
    closeAll(b);
  });
});

describe('§2.6/2.4 HWPT_ALLOC flags on VT-d (alloc_hwpt, replace)', () => {
  it('flags pick the stage: 0 and PASID → first stage, NEST_PARENT / DIRTY_TRACKING → second stage, as the PASID entry shows', async () => {
    const b = await boot(1);
    const cases: [number, number][] = [
      [0, VTD_PGTT.FIRST_STAGE],
      [PASID, VTD_PGTT.FIRST_STAGE],
      [NEST_PARENT, VTD_PGTT.SECOND_STAGE],
      [DIRTY, VTD_PGTT.SECOND_STAGE],
      [NEST_PARENT | DIRTY, VTD_PGTT.SECOND_STAGE],
      [NEST_PARENT | DIRTY | PASID, VTD_PGTT.SECOND_STAGE],
    ];
    b.proc.poke(b.ram + 0x5000n, bytes(8, 0x33));
    for (const [flags, pgtt] of cases) {
      const h = ok(b.t.hwptAlloc(b.devIds[0]!, b.ioas, flags));
      expect(b.attach(0, h)).toEqual({ rc: 0, pt: h });
      expect(b.x.pasidEntry(0)).toMatchObject({ P: 1, PGTT: pgtt, DID: 2 });
      // Replace rewrote the entry in place; DMA goes through the new table at once.
      expect(b.dma(0, 0x5000n, 8)).toEqual(bytes(8, 0x33));
    }
    closeAll(b);
  });

  it('errno: unknown flag EOPNOTSUPP, data on a paging HWPT EOPNOTSUPP, FAULT_ID_VALID on a nest parent EOPNOTSUPP, unknown fault ENOENT', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    expect(b.t.hwptAlloc(dev, b.ioas, 1 << 4).rc).toBe(-U.EOPNOTSUPP);
    expect(b.t.hwptAlloc(dev, b.ioas, 0, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }).rc).toBe(-U.EOPNOTSUPP);
    const fault = b.t.faultAlloc();
    expect(fault.rc).toBe(0);
    expect(b.t.hwptAlloc(dev, b.ioas, NEST_PARENT | FAULT, undefined, fault.id).rc).toBe(-U.EOPNOTSUPP);
    expect(b.t.hwptAlloc(dev, b.ioas, FAULT, undefined, 9999).rc).toBe(-U.ENOENT);
    // A paging HWPT with a FAULT object (IOPF-capable; the functions have PRI).
    const iopf = ok(b.t.hwptAlloc(dev, b.ioas, FAULT, undefined, fault.id));
    expect(b.attach(0, iopf).rc).toBe(0);
    expect(b.t.destroy(iopf)).toBe(-U.EBUSY);
    expect(b.t.destroy(fault.id)).toBe(-U.EBUSY);
    closeAll(b);
  });
});

describe('§2.8 nested HWPT from iommu_hwpt_vtd_s1', () => {
  it('alloc: each check of intel_iommu_domain_alloc_nested and the core, in order, with its errno', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const parent = parentOf(b);
    const plainSs = ok(b.t.hwptAlloc(dev, b.ioas, DIRTY));
    const fs = ok(b.t.hwptAlloc(dev, b.ioas, 0));
    const nest = (pt: number, data: { type: number; bytes?: Uint8Array; uptr?: bigint; len?: number }, flags = 0) => b.t.hwptAlloc(dev, pt, flags, data).rc;
    const vtd = (bytes = s1()) => ({ type: U.IOMMU_HWPT_DATA_VTD_S1, bytes });
    // Flags other than ALLOC_PASID: EOPNOTSUPP (core); the other vendors' data types: EOPNOTSUPP (driver).
    expect(nest(parent, vtd(), NEST_PARENT)).toBe(-U.EOPNOTSUPP);
    expect(nest(parent, vtd(), DIRTY)).toBe(-U.EOPNOTSUPP);
    expect(nest(parent, { type: U.IOMMU_HWPT_DATA_ARM_SMMUV3, bytes: new Uint8Array(16) })).toBe(-U.EOPNOTSUPP);
    expect(nest(parent, { type: U.IOMMU_HWPT_DATA_SELFTEST, bytes: new Uint8Array(4) })).toBe(-U.EOPNOTSUPP);
    // The parent must be a nest parent (a DIRTY_TRACKING second stage or a first stage is not).
    expect(nest(plainSs, vtd())).toBe(-U.EINVAL);
    expect(nest(fs, vtd())).toBe(-U.EINVAL);
    // Copy-in: shorter than offsetofend(__reserved) or longer than the struct: EINVAL; bad pointer EFAULT; a type with no data EINVAL.
    expect(nest(parent, vtd(s1().subarray(0, 20)))).toBe(-U.EINVAL);
    expect(nest(parent, vtd(Uint8Array.from([...s1(), 0, 0, 0, 0, 0, 0, 0, 0])))).toBe(-U.EINVAL);
    expect(nest(parent, { type: U.IOMMU_HWPT_DATA_VTD_S1, uptr: 0x10n, len: 24 })).toBe(-U.EFAULT);
    expect(nest(parent, { type: U.IOMMU_HWPT_DATA_VTD_S1, len: 0 })).toBe(-U.EINVAL);
    // Not checked at allocation (nested.c): undefined flag bits, __reserved, alignment, address width.
    for (const bad of [s1({ flags: 1n << 5n }), s1({ __reserved: 7 }), s1({ pgtbl_addr: 0x1234n }), s1({ addr_width: 39 })]) {
      expect(nest(parent, vtd(bad))).toBe(0);
    }
    // A nested HWPT cannot parent another.
    const n = ok(b.t.hwptAlloc(dev, parent, 0, vtd()));
    expect(nest(n, vtd())).toBe(-U.EINVAL);
    expect(b.t.destroy(parent)).toBe(-U.EBUSY);
    closeAll(b);
  });

  it('attach: address width and flags checked against CAP/ECAP with EINVAL; the PASID entry carries PGTT=3, FSPTPTR, SRE/WPE/EAFE, the parent’s SSPTPTR and the nested DID', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const parent = parentOf(b);
    const alloc = (bytes: Uint8Array) => ok(b.t.hwptAlloc(dev, parent, 0, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes }));
    const fs5 = VtdCap.f.FS5LP.of(b.cap);
    const srs = VtdEcap.f.SRS.of(b.ecap);
    const eafs = VtdEcap.f.EAFS.of(b.ecap);
    b.proc.poke(b.ram + 0x6000n, bytes(8, 0x61));
    // A failed attach leaves the device translating through the nest parent it had.
    expect(b.attach(0, alloc(s1({ addr_width: 39 }))).rc).toBe(-U.EINVAL);
    expect(b.x.pasidEntry(0)).toMatchObject({ P: 1, PGTT: VTD_PGTT.SECOND_STAGE, DID: 2 });
    expect(b.dma(0, 0x6000n, 8)).toEqual(bytes(8, 0x61));
    for (const [data, supported] of [
      [s1({ addr_width: 57 }), fs5],
      [s1({ flags: BigInt(U.IOMMU_VTD_S1_SRE) }), srs],
      [s1({ flags: BigInt(U.IOMMU_VTD_S1_EAFE) }), eafs],
    ] as const) {
      expect(b.attach(0, alloc(data)).rc).toBe(supported ? 0 : -U.EINVAL);
      expect(b.attach(0, parent).rc).toBe(0);
    }
    expect(b.x.pasidEntry(0)).toMatchObject({ P: 1, PGTT: VTD_PGTT.SECOND_STAGE, DID: 2 });
    const root = b.x.unit.devices.get(sidOf(0))!.domain!.pgtable!.root;
    // Undefined flags and __reserved are ignored; the root's low 12 bits are dropped; WPE needs
    // SRE. Attaching blocks first, so the parent's DID 2 is free again and the nested domain gets it.
    const h = alloc(s1({ flags: (1n << 5n) | BigInt(U.IOMMU_VTD_S1_WPE), pgtbl_addr: 0x1234n, __reserved: 9 }));
    expect(b.attach(0, h)).toEqual({ rc: 0, pt: h });
    expect(b.x.pasidEntry(0)).toMatchObject({ P: 1, PGTT: VTD_PGTT.NESTED, FSPTPTR: 0x1000n, SSPTPTR: root, FSPM: 0, SRE: 0, WPE: 0, EAFE: 0, DID: 2, AW: 2 });
    if (srs) {
      const sre = alloc(s1({ flags: BigInt(U.IOMMU_VTD_S1_SRE | U.IOMMU_VTD_S1_WPE) }));
      expect(b.attach(0, sre).rc).toBe(0);
      expect(b.x.pasidEntry(0)).toMatchObject({ PGTT: VTD_PGTT.NESTED, SRE: 1, WPE: 1 });
    }
    closeAll(b);
  });

  it('invalidate: core framing, flags/alignment/all-pages rules, entry_num of handled entries, and the descriptors each entry becomes', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const parent = parentOf(b);
    const nested = ok(b.t.hwptAlloc(dev, parent, 0, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }));
    expect(b.attach(0, nested).rc).toBe(0);
    const did = b.x.pasidEntry(0).DID;
    const T = U.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1;
    const run = (entries: Uint8Array[], n = entries.length, len = 24, type = T) => b.t.invalidate(nested, type, entries.length ? Uint8Array.from(entries.flatMap((e) => [...e])) : undefined, len, n);
    // Core framing: entry_num 0 is a no-op; data_uptr 0 or entry_len 0 with entries EINVAL.
    expect(run([], 0)).toEqual({ rc: 0, num: 0 });
    expect(b.t.invalidate(nested, T, undefined, 24, 1, 0n)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(run([inv(0n, 1n)], 1, 0)).toEqual({ rc: -U.EINVAL, num: 0 });
    // The paging parent, an IOAS, a device are not invalidation targets.
    expect(b.t.invalidate(parent, T, inv(0n, 1n), 24, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(b.t.invalidate(b.ioas, T, inv(0n, 1n), 24, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    // Bad user pointer for the second entry: the first is handled, EFAULT with entry_num 1.
    const lastPage = b.t.alloc(2n * PAGE);
    b.proc.poke(lastPage + PAGE - 24n, inv(0x1000n, 1n));
    // PROT_NONE rather than a hole: a hole could be reused for the ioctl's own argument.
    expect(b.proc.mmap(PAGE, U.PROT_NONE, U.MAP_PRIVATE | U.MAP_ANONYMOUS | U.MAP_FIXED, -1, 0, lastPage + PAGE)).toBe(lastPage + PAGE);
    expect(b.t.invalidate(nested, T, undefined, 24, 2, lastPage + PAGE - 24n)).toEqual({ rc: -U.EFAULT, num: 1 });
    // Rules per entry, stopping at the first bad one.
    expect(run([inv(0x1000n, 1n), inv(0x1800n, 1n)])).toEqual({ rc: -U.EINVAL, num: 1 });
    expect(run([inv(0x1000n, 1n, 1 << 1)])).toEqual({ rc: -U.EOPNOTSUPP, num: 0 });
    expect(run([inv(0x1000n, 1n), inv(0x1000n, 1n, 0, 1)])).toEqual({ rc: -U.EOPNOTSUPP, num: 1 });
    expect(run([inv(0x1000n, U64_MAX)])).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(run([inv(0x1000n, 1n)], 1, 16)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(run([inv(0x1000n, 1n)], 1, 24, U.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST)).toEqual({ rc: -U.EINVAL, num: 0 });
    // What each good entry becomes: PIOTLB (DID of the nested domain, PASID 0) + device-TLB.
    const expectDescs = (entry: Uint8Array, piotlb: Record<string, unknown>) => {
      const mark = b.x.unit.qi.log.length;
      expect(run([entry])).toEqual({ rc: 0, num: 1 });
      const d = b.x.qiSince(mark);
      expect(VtdPiotlbDesc.decode(d[0]!)).toMatchObject({ TYPE: 6, DID: did, PASID: 0, ...piotlb });
      expect(Number(d[1]![0]! & 0xfn)).toBe(3);
      expect(d).toHaveLength(2);
    };
    expectDescs(inv(0x3000n, 1n), { G: 3, ADDR: 0x3000n, AM: 0, IH: 0 });
    expectDescs(inv(0x3000n, 1n, U.IOMMU_VTD_INV_FLAGS_LEAF), { G: 3, ADDR: 0x3000n, AM: 0, IH: 1 });
    // Three pages from 0x5000: rounded to 4 and widened to the aligned block holding [0x5000, 0x7fff].
    expectDescs(inv(0x5000n, 3n), { G: 3, ADDR: 0x4000n, AM: 2 });
    expectDescs(inv(0n, U64_MAX), { G: 2 });
    // npages 0 is not rejected (addr 0 → a full flush in the newest code).
    expect(run([inv(0n, 0n)])).toEqual({ rc: 0, num: 1 });
    closeAll(b);
  });
});

describe('§2.7 dirty tracking on a second-stage domain (SSADE, D bits)', () => {
  it('set/get dirty: EOPNOTSUPP without DIRTY_TRACKING; SSADE follows; DMA writes set bits, NO_CLEAR keeps them', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const fs = ok(b.t.hwptAlloc(dev, b.ioas, 0));
    expect(b.t.setDirtyTracking(fs, true)).toBe(-U.EOPNOTSUPP);
    const h = ok(b.t.hwptAlloc(dev, b.ioas, DIRTY));
    expect(b.attach(0, h).rc).toBe(0);
    const bitmap = b.t.alloc(PAGE);
    const get = (flags = 0) => {
      b.proc.poke(bitmap, new Uint8Array(8));
      const rc = b.t.getDirtyBitmap(h, 0n, 64n * PAGE, PAGE, bitmap, flags);
      const u = b.proc.peek(bitmap, 8) as Uint8Array;
      return { rc, bits: new DataView(u.buffer, u.byteOffset, 8).getBigUint64(0, true) };
    };
    expect(b.t.setDirtyTracking(h, true)).toBe(0);
    expect(b.x.pasidEntry(0)).toMatchObject({ PGTT: VTD_PGTT.SECOND_STAGE, SSADE: 1 });
    expect(get()).toEqual({ rc: 0, bits: 0n });
    expect(b.dma(0, 3n * PAGE + 8n, bytes(4, 1))).toBe('ok');
    expect(b.dma(0, 9n * PAGE, bytes(4, 1))).toBe('ok');
    // Reads do not dirty.
    expect(b.dma(0, 20n * PAGE, 4)).toEqual(new Uint8Array(4));
    expect(get(U.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR)).toEqual({ rc: 0, bits: (1n << 3n) | (1n << 9n) });
    expect(get()).toEqual({ rc: 0, bits: (1n << 3n) | (1n << 9n) });
    expect(get()).toEqual({ rc: 0, bits: 0n });
    // Cleared D bits are set again by the next write (the IOTLB entry was flushed with them).
    expect(b.dma(0, 3n * PAGE, bytes(4, 2))).toBe('ok');
    expect(get()).toEqual({ rc: 0, bits: 1n << 3n });
    expect(b.t.setDirtyTracking(h, false)).toBe(0);
    expect(b.x.pasidEntry(0).SSADE).toBe(0);
    // A DIRTY_TRACKING domain cannot be attached at a PASID (intel_iommu_set_dev_pasid).
    const rid = ok(b.t.hwptAlloc(dev, b.ioas, PASID));
    expect(b.attach(0, rid).rc).toBe(0);
    const dirtyPasid = ok(b.t.hwptAlloc(dev, b.ioas, DIRTY | PASID));
    expect(b.attach(0, dirtyPasid, 7).rc).toBe(-U.EINVAL);
    closeAll(b);
  });
  it('a dirty-tracking nest parent: SSADE reaches its nested child’s PASID entry; DMA through the guest tables dirties the parent’s leaves', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const parent = ok(b.t.hwptAlloc(dev, b.ioas, NEST_PARENT | DIRTY));
    const nested = ok(b.t.hwptAlloc(dev, parent, 0, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }));
    guestPageTable(b.proc, b.ram).map(0x2000_0000n, 0x5000n);
    expect(b.attach(0, nested).rc).toBe(0);
    expect(b.x.pasidEntry(0)).toMatchObject({ PGTT: VTD_PGTT.NESTED, SSADE: 0 });
    expect(b.t.setDirtyTracking(parent, true)).toBe(0);
    expect(b.x.pasidEntry(0)).toMatchObject({ PGTT: VTD_PGTT.NESTED, SSADE: 1 });
    expect(b.dma(0, 0x2000_0000n, bytes(4, 3))).toBe('ok');
    const bitmap = b.t.alloc(PAGE);
    expect(b.t.getDirtyBitmap(parent, 0n, 64n * PAGE, PAGE, bitmap, U.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR)).toBe(0);
    const u = b.proc.peek(bitmap, 8) as Uint8Array;
    // GPA 0x5000 (the data) is dirty; nothing beyond the guest's first 8 pages (data + tables) is.
    // (Whether the hardware's A-bit writes into the guest's table pages also set their
    // second-stage D bits is the hardware model's call; only the data page is pinned here.)
    const bits = new DataView(u.buffer, u.byteOffset, 8).getBigUint64(0, true);
    expect(bits & (1n << 5n)).toBe(1n << 5n);
    expect(bits >> 8n).toBe(0n);
    expect(b.t.setDirtyTracking(parent, false)).toBe(0);
    expect(b.x.pasidEntry(0).SSADE).toBe(0);
    // A dirty-tracking parent's nested HWPTs cannot go to a PASID (intel_nested_set_dev_pasid).
    const np = ok(b.t.hwptAlloc(dev, parent, PASID, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }));
    const rid = ok(b.t.hwptAlloc(dev, b.ioas, PASID));
    expect(b.attach(0, rid).rc).toBe(0);
    expect(b.attach(0, np, 4).rc).toBe(-U.EINVAL);
    closeAll(b);
  });
});

const GUEST_RID = 0x0100n; // 01:00.0 in the guest
const QI = IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP;
/** A nest parent with device 0 on it and the experimental vIOMMU on the parent. */
function viommuOf(b: Boot): { parent: number; viommu: number } {
  const parent = parentOf(b);
  const v = b.t.viommuAlloc(b.devIds[0]!, parent, IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP);
  expect(v.rc).toBe(0);
  return { parent, viommu: v.id };
}
const vdidData = (guestDid: number, bytes = s1vdid(guestDid)) => ({ type: IOMMU_HWPT_DATA_VTD_S1_VDID_EXP, bytes });
const piotlb = (did: number, addr: bigint, g = 3, pasid = 0) => qiEntry(VtdPiotlbDesc.encode({ TYPE: 6, G: g, DID: did, PASID: pasid, ADDR: addr, AM: 0 }));
const devtlb = (sid: number, addr: bigint) => qiEntry(VtdDevTlbDesc.encode({ TYPE: 3, SID: sid, ADDR: addr }));
const viommuInvalidate = (b: Boot, viommu: number, entries: Uint8Array[], len = 32, type = QI) =>
  b.t.invalidate(viommu, type, Uint8Array.from(entries.flatMap((e) => [...e])), len, entries.length);

describe('§2.9 the experimental VT-d vIOMMU (type 0x8086, outside Linux’s enum)', () => {
  it('VIOMMU_ALLOC: flags, reserved/foreign types, a parent that is not a nest parent, driver data; the parent is then busy', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const parent = parentOf(b);
    const fs = ok(b.t.hwptAlloc(dev, b.ioas, 0));
    const ss = ok(b.t.hwptAlloc(dev, b.ioas, DIRTY));
    const alloc = (hwpt: number, type = IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP, data?: Uint8Array, d = dev) => b.t.viommuAlloc(d, hwpt, type, data).rc;
    expect(b.t.call(U.IOMMU_VIOMMU_ALLOC, U.iommu_viommu_alloc, { flags: 1, type: IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP, dev_id: dev, hwpt_id: parent }).rc).toBe(-U.EOPNOTSUPP);
    expect(alloc(parent, U.IOMMU_VIOMMU_TYPE_DEFAULT)).toBe(-U.EOPNOTSUPP);
    // Linux's own types (and the selftest's) are not this driver's: get_viommu_size says 0.
    expect(alloc(parent, U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3)).toBe(-U.EOPNOTSUPP);
    expect(alloc(parent, U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV)).toBe(-U.EOPNOTSUPP);
    expect(alloc(parent, U.IOMMU_VIOMMU_TYPE_SELFTEST)).toBe(-U.EOPNOTSUPP);
    expect(alloc(9999)).toBe(-U.ENOENT);
    expect(alloc(parent, IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP, undefined, 9999)).toBe(-U.ENOENT);
    expect(alloc(fs)).toBe(-U.EINVAL);
    expect(alloc(ss)).toBe(-U.EINVAL);
    // The VT-d vIOMMU takes no driver data.
    expect(alloc(parent, IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP, new Uint8Array(8))).toBe(-U.EOPNOTSUPP);
    const v = b.t.viommuAlloc(dev, parent, IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP);
    expect(v.rc).toBe(0);
    expect(b.host.objects(b.fd).find((o) => o.id === v.id)).toMatchObject({ type: 'VIOMMU', refs: [parent] });
    expect(b.t.destroy(parent)).toBe(-U.EBUSY);
    // No HW queue on VT-d (no guest-owned invalidation queue).
    expect(b.t.hwQueueAlloc(v.id, U.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, 0, 0n, PAGE).rc).toBe(-U.EOPNOTSUPP);
    expect(b.t.destroy(v.id)).toBe(0);
    expect(b.t.destroy(parent)).toBe(-U.EBUSY); // still attached
    closeAll(b);
  });

  it('nested HWPT on the vIOMMU from iommu_hwpt_vtd_s1_vdid: flags, type, length and guest DID checks; the vIOMMU is busy while it exists', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const { viommu } = viommuOf(b);
    const nest = (data: { type: number; bytes?: Uint8Array; len?: number }, flags = 0) => b.t.hwptAlloc(dev, viommu, flags, data).rc;
    expect(nest(vdidData(7), NEST_PARENT)).toBe(-U.EOPNOTSUPP);
    expect(nest({ type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() })).toBe(-U.EOPNOTSUPP);
    expect(nest(vdidData(7, s1vdid(7).subarray(0, 20)))).toBe(-U.EINVAL);
    expect(nest(vdidData(7, Uint8Array.from([...s1vdid(7), 0, 0, 0, 0, 0, 0, 0, 0])))).toBe(-U.EINVAL);
    expect(nest(vdidData(0x1_0000))).toBe(-U.EINVAL);
    const h = b.t.hwptAlloc(dev, viommu, PASID, vdidData(0xffff));
    expect(h.rc).toBe(0);
    expect(b.host.objects(b.fd).find((o) => o.id === h.id)).toMatchObject({ type: 'HWPT_NESTED', refs: [viommu] });
    expect(b.t.destroy(viommu)).toBe(-U.EBUSY);
    expect(b.attach(0, h.id)).toEqual({ rc: 0, pt: h.id });
    expect(b.x.pasidEntry(0)).toMatchObject({ P: 1, PGTT: VTD_PGTT.NESTED, DID: 2, FSPTPTR: 0x1000n });
    expect(b.t.destroy(h.id)).toBe(-U.EBUSY);
    closeAll(b);
  });
});

describe('§2.10 vDEVICE (virt_id = guest RID), vIOMMU invalidation, tombstone', () => {
  it('VDEVICE_ALLOC: 16-bit RIDs only, duplicate virt id and duplicate device EEXIST; the vIOMMU is busy while a vDEVICE exists', async () => {
    const b = await boot(2);
    const { viommu } = viommuOf(b);
    expect(b.t.vdeviceAlloc(viommu, b.devIds[0]!, 0x1_0000n).rc).toBe(-U.EINVAL);
    expect(b.t.vdeviceAlloc(9999, b.devIds[0]!, GUEST_RID).rc).toBe(-U.ENOENT);
    expect(b.t.vdeviceAlloc(viommu, 9999, GUEST_RID).rc).toBe(-U.ENOENT);
    const vd = b.t.vdeviceAlloc(viommu, b.devIds[0]!, GUEST_RID);
    expect(vd.rc).toBe(0);
    expect(b.t.vdeviceAlloc(viommu, b.devIds[1]!, GUEST_RID).rc).toBe(-U.EEXIST);
    expect(b.t.vdeviceAlloc(viommu, b.devIds[0]!, GUEST_RID + 8n).rc).toBe(-U.EEXIST);
    expect(b.t.vdeviceAlloc(viommu, b.devIds[1]!, 0xffffn).rc).toBe(0);
    expect(b.t.destroy(viommu)).toBe(-U.EBUSY);
    expect(b.t.destroy(vd.id)).toBe(0);
    expect(b.t.destroy(vd.id)).toBe(-U.ENOENT);
    closeAll(b);
  });

  it('guest QI descriptors through the vIOMMU: guest DID → host DID, guest RID → host SID; malformed EINVAL, foreign or VMM-owned EIO, entry_num = issued', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const { viommu } = viommuOf(b);
    expect(b.t.vdeviceAlloc(viommu, dev, GUEST_RID).rc).toBe(0);
    const h = ok(b.t.hwptAlloc(dev, viommu, 0, vdidData(7)));
    expect(b.attach(0, h).rc).toBe(0);
    const hostDid = b.x.pasidEntry(0).DID;
    const mark = b.x.unit.qi.log.length;
    expect(viommuInvalidate(b, viommu, [piotlb(7, 0x5000n), devtlb(Number(GUEST_RID), 0x5000n)])).toEqual({ rc: 0, num: 2 });
    const [p6, d3] = b.x.qiSince(mark);
    expect(VtdPiotlbDesc.decode(p6!)).toMatchObject({ TYPE: 6, G: 3, DID: hostDid, PASID: 0, ADDR: 0x5000n });
    expect(VtdDevTlbDesc.decode(d3!)).toMatchObject({ TYPE: 3, SID: sidOf(0), ADDR: 0x5000n });
    // An IOTLB (type 2) domain-selective flush of guest DID 7 becomes a DSI of the host DID.
    const m2 = b.x.unit.qi.log.length;
    expect(viommuInvalidate(b, viommu, [qiEntry(VtdIotlbDesc.encode({ TYPE: 2, G: 2, DID: 7 }))])).toEqual({ rc: 0, num: 1 });
    expect(VtdIotlbDesc.decode(b.x.qiSince(m2)[0]!)).toMatchObject({ TYPE: 2, G: 2, DID: hostDid });
    // A guest DID no nested HWPT carries: nothing to issue, still handled.
    const m3 = b.x.unit.qi.log.length;
    expect(viommuInvalidate(b, viommu, [piotlb(8, 0n)])).toEqual({ rc: 0, num: 1 });
    expect(b.x.qiSince(m3)).toEqual([]);
    // Malformed: reserved bits, G < 2 for PIOTLB, AM > MAMV, non-zero upper qwords: EINVAL.
    const mamv = VtdCap.f.MAMV.of(b.cap);
    expect(viommuInvalidate(b, viommu, [piotlb(7, 0n), qiEntry([...VtdPiotlbDesc.encode({ TYPE: 6, G: 3, DID: 7, AM: 0 }).slice(0, 1), 1n << 7n])])).toEqual({ rc: -U.EINVAL, num: 1 });
    expect(viommuInvalidate(b, viommu, [piotlb(7, 0n, 1)])).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(viommuInvalidate(b, viommu, [qiEntry(VtdPiotlbDesc.encode({ TYPE: 6, G: 3, DID: 7, AM: mamv + 1 }))])).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(viommuInvalidate(b, viommu, [qiEntry([...VtdPiotlbDesc.encode({ TYPE: 6, G: 2, DID: 7 }), 0n, 1n])])).toEqual({ rc: -U.EINVAL, num: 0 });
    // Not this vIOMMU's RID, and the types owned by the VMM (context, IEC, wait, PASID cache, response): EIO.
    expect(viommuInvalidate(b, viommu, [piotlb(7, 0n), devtlb(0x0200, 0n)])).toEqual({ rc: -U.EIO, num: 1 });
    for (const type of [1, 4, 5, 7, 9, 0xa, 0xf]) expect(viommuInvalidate(b, viommu, [qiEntry([BigInt(type)])])).toEqual({ rc: -U.EIO, num: 0 });
    // Framing: another data type EINVAL; an entry longer with a non-zero tail E2BIG, shorter is zero-extended.
    expect(viommuInvalidate(b, viommu, [piotlb(7, 0n)], 32, U.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(viommuInvalidate(b, viommu, [Uint8Array.from([...piotlb(7, 0n), 1, 0, 0, 0, 0, 0, 0, 0])], 40)).toEqual({ rc: -U.E2BIG, num: 0 });
    expect(viommuInvalidate(b, viommu, [piotlb(7, 0n).subarray(0, 16)], 16)).toEqual({ rc: 0, num: 1 });
    closeAll(b);
  });

  it('a vIOMMU nested HWPT at PASID 4: stale until the guest’s PIOTLB (PASID 4) and PASID dev-TLB (type 0x8) for its RID, rewritten with host DID and SID', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const parent = ok(b.t.hwptAlloc(dev, b.ioas, NEST_PARENT | PASID));
    expect(b.attach(0, parent).rc).toBe(0);
    const viommu = b.t.viommuAlloc(dev, parent, IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP).id;
    expect(b.t.vdeviceAlloc(viommu, dev, GUEST_RID).rc).toBe(0);
    const gpt = guestPageTable(b.proc, b.ram);
    gpt.map(0x7000_0000n, 0x6000n);
    b.proc.poke(b.ram + 0x6000n, bytes(4, 0x10));
    b.proc.poke(b.ram + 0x7000n, bytes(4, 0x20));
    const h = ok(b.t.hwptAlloc(dev, viommu, PASID, vdidData(11)));
    expect(b.attach(0, h, 4).rc).toBe(0);
    expect(b.dma(0, 0x7000_0000n, 4, 4)).toEqual(bytes(4, 0x10));
    gpt.map(0x7000_0000n, 0x7000n);
    expect(b.dma(0, 0x7000_0000n, 4, 4)).toEqual(bytes(4, 0x10));
    // The guest's descriptors for PASID 0 do not touch the PASID-4 translation.
    expect(viommuInvalidate(b, viommu, [piotlb(11, 0x7000_0000n)])).toEqual({ rc: 0, num: 1 });
    expect(b.dma(0, 0x7000_0000n, 4, 4)).toEqual(bytes(4, 0x10));
    const mark = b.x.unit.qi.log.length;
    const pdevtlb = qiEntry(VtdPdevTlbDesc.encode({ TYPE: 8, SID: Number(GUEST_RID), PASID: 4, ADDR: 0x7000_0000n }));
    expect(viommuInvalidate(b, viommu, [piotlb(11, 0x7000_0000n, 3, 4), pdevtlb])).toEqual({ rc: 0, num: 2 });
    const [p6, d8] = b.x.qiSince(mark);
    expect(VtdPiotlbDesc.decode(p6!)).toMatchObject({ TYPE: 6, G: 3, DID: b.x.pasidEntry(0, 4).DID, PASID: 4, ADDR: 0x7000_0000n });
    expect(VtdPdevTlbDesc.decode(d8!)).toMatchObject({ TYPE: 8, SID: sidOf(0), PASID: 4, ADDR: 0x7000_0000n });
    expect(b.dma(0, 0x7000_0000n, 4, 4)).toEqual(bytes(4, 0x20));
    closeAll(b);
  });

  it('vdevice_tombstone: unbinding the device destroys its vDEVICE (DESTROY → ENOENT); its guest RID no longer resolves (EIO)', async () => {
    const b = await boot(2);
    const { viommu } = viommuOf(b);
    const vd = b.t.vdeviceAlloc(viommu, b.devIds[1]!, GUEST_RID);
    expect(vd.rc).toBe(0);
    expect(viommuInvalidate(b, viommu, [devtlb(Number(GUEST_RID), 0n)])).toEqual({ rc: 0, num: 1 });
    expect(b.proc.close(b.devFds[1]!)).toBe(0);
    b.devFds.pop();
    expect(b.t.destroy(vd.id)).toBe(-U.ENOENT);
    expect(viommuInvalidate(b, viommu, [devtlb(Number(GUEST_RID), 0n)])).toEqual({ rc: -U.EIO, num: 0 });
    // The virt id is free again for another device.
    expect(b.t.vdeviceAlloc(viommu, b.devIds[0]!, GUEST_RID).rc).toBe(0);
    closeAll(b);
  });
});

describe('§2.10/2.11 vEVENTQ with real DMA faults of a vIOMMU nested domain', () => {
  it('alloc errno; an untranslated request faulting in the guest tables becomes {addr, guest RID, pasid, reason, READ}; overflow is reported as lost events', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const { viommu } = viommuOf(b);
    expect(b.t.veventqAlloc(viommu, U.IOMMU_VEVENTQ_TYPE_DEFAULT).rc).toBe(-U.EOPNOTSUPP);
    expect(b.t.veventqAlloc(viommu, IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, 0).rc).toBe(-U.EINVAL);
    expect(b.t.veventqAlloc(9999, IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP).rc).toBe(-U.ENOENT);
    const q = b.t.veventqAlloc(viommu, IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, 2);
    expect(q.rc).toBe(0);
    expect(b.t.veventqAlloc(viommu, IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP).rc).toBe(-U.EEXIST);
    expect(b.t.destroy(viommu)).toBe(-U.EBUSY);
    expect(b.t.vdeviceAlloc(viommu, dev, GUEST_RID).rc).toBe(0);
    const gpt = guestPageTable(b.proc, b.ram);
    gpt.map(0x4000_0000n, 0x7000_0000n); // a GPA beyond the guest's RAM
    const h = ok(b.t.hwptAlloc(dev, viommu, 0, vdidData(7)));
    expect(b.attach(0, h).rc).toBe(0);
    // The function stops using its ATC (ATS Enable cleared): its requests are untranslated and
    // faults are recorded in FRCD, where the fault handler finds them.
    b.x.unit.devices.get(sidOf(0))!.endpoint.atsEnabled = false;
    expect(b.dma(0, 0x4000_0010n, 4)).toBe('fault');
    const [e] = readVtdVevents(b.proc, q.fd);
    expect(e!.lostEvents).toBe(false);
    const fault = iommu_vevent_vtd_fault.decode(e!.data);
    // Reason 0x79 (second-stage entry not present): the parent has nothing at the guest's output GPA.
    expect(fault).toEqual({ addr: 0x4000_0000n, virt_rid: Number(GUEST_RID), pasid: 0, reason: 0x79, flags: IOMMU_VEVENT_VTD_FAULT_READ });
    expect(b.x.unit.faultLog.at(-1)).toEqual({ reason: 0x79, sid: sidOf(0), address: 0x4000_0000n, pasid: undefined, read: true });
    // Three more faults into a queue of depth 2: two records, then the lost-events header.
    for (const page of [1n, 2n, 3n]) expect(b.dma(0, 0x4000_0000n + page * PAGE, bytes(4, 1))).toBe('fault');
    const got = readVtdVevents(b.proc, q.fd);
    expect(got.map((v) => [v.lostEvents, v.lostEvents ? undefined : iommu_vevent_vtd_fault.decode(v.data).addr])).toEqual([
      [false, 0x4000_1000n],
      [false, 0x4000_2000n],
      [true, undefined],
    ]);
    expect(iommu_vevent_vtd_fault.decode(got[0]!.data).flags).toBe(0); // a write
    // A nested HWPT of the vIOMMU at PASID 3 (the RID's nested HWPT above was not PASID-capable:
    // put a PASID-capable one at the RID first): its faults carry the PASID.
    const rid = ok(b.t.hwptAlloc(dev, viommu, PASID, vdidData(7)));
    expect(b.attach(0, rid).rc).toBe(0);
    const atPasid = ok(b.t.hwptAlloc(dev, viommu, PASID, vdidData(9)));
    expect(b.attach(0, atPasid, 3).rc).toBe(0);
    expect(b.dma(0, 0x4000_0020n, 4, 3)).toBe('fault');
    expect(readVtdVevents(b.proc, q.fd).map((v) => iommu_vevent_vtd_fault.decode(v.data))).toEqual([
      { addr: 0x4000_0000n, virt_rid: Number(GUEST_RID), pasid: 3, reason: 0x79, flags: IOMMU_VEVENT_VTD_FAULT_READ | IOMMU_VEVENT_VTD_FAULT_PASID_VALID },
    ]);
    closeAll(b);
  });
});

describe('§2.13 FAULT / IOPF with PRI functions on nested HWPTs', () => {
  it('a nested HWPT with a FAULT object: the guest IOVA’s page request reaches the fault fd; SUCCESS and INVALID go back as page-group responses', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const parent = parentOf(b);
    const fault = b.t.faultAlloc();
    expect(fault.rc).toBe(0);
    const iopf = ok(b.t.hwptAlloc(dev, parent, FAULT, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }, fault.id));
    expect(b.t.hwptAlloc(dev, parent, FAULT | (1 << 5), { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }, fault.id).rc).toBe(-U.EOPNOTSUPP);
    expect(b.t.hwptAlloc(dev, parent, FAULT, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }, 9999).rc).toBe(-U.ENOENT);
    expect(b.attach(0, iopf).rc).toBe(0);
    expect(b.t.destroy(iopf)).toBe(-U.EBUSY);
    expect(b.t.destroy(fault.id)).toBe(-U.EBUSY);
    const gpt = guestPageTable(b.proc, b.ram);
    gpt.map(0x2000_0000n, 0x1_0000n);
    b.proc.poke(b.ram + 0x1_1008n, bytes(8, 0x77));
    // The guest has not mapped 0x2000_1000 yet: a page request, not a fault record.
    expect(b.dma(0, 0x2000_1008n, 8)).toBe('fault');
    const faults = U.readPageFaults(b.proc, fault.fd);
    expect(faults).toEqual([{ flags: U.IOMMU_PGFAULT_FLAGS_LAST_PAGE, dev_id: dev, pasid: 0, grpid: 0, perm: U.IOMMU_PGFAULT_PERM_READ, __reserved: 0, addr: 0x2000_1000n, length: 0, cookie: faults[0]!.cookie }]);
    expect(b.x.unit.faultLog).toEqual([]);
    gpt.map(0x2000_1000n, 0x1_1000n);
    expect(U.writePageResponses(b.proc, fault.fd, [{ cookie: faults[0]!.cookie, code: U.IOMMUFD_PAGE_RESP_SUCCESS }])).toBe(1);
    expect(b.x.hw.pageResponses.at(-1)).toEqual({ requesterId: sidOf(0), pasid: undefined, groupIndex: 0, code: 0 });
    expect(b.dma(0, 0x2000_1008n, 8)).toEqual(bytes(8, 0x77));
    // A write to another unmapped page, answered INVALID (response code 1).
    expect(b.dma(0, 0x2000_5000n, bytes(4, 1))).toBe('fault');
    const [w] = U.readPageFaults(b.proc, fault.fd);
    expect(w).toMatchObject({ perm: U.IOMMU_PGFAULT_PERM_WRITE, addr: 0x2000_5000n, grpid: 1 });
    expect(U.writePageResponses(b.proc, fault.fd, [{ cookie: w!.cookie, code: U.IOMMUFD_PAGE_RESP_INVALID }])).toBe(1);
    expect(b.x.hw.pageResponses.at(-1)).toEqual({ requesterId: sidOf(0), pasid: undefined, groupIndex: 1, code: 1 });
    // Bad response codes and cookies: EINVAL.
    expect(b.proc.write(fault.fd, U.iommu_hwpt_page_response.encode({ cookie: w!.cookie, code: 2 }))).toBe(-U.EINVAL);
    // A pending fault is answered INVALID when the HWPT is detached.
    expect(b.dma(0, 0x2000_6000n, 4)).toBe('fault');
    expect(U.readPageFaults(b.proc, fault.fd)).toHaveLength(1);
    expect(b.attach(0, parent).rc).toBe(0);
    expect(b.x.hw.pageResponses.at(-1)).toEqual({ requesterId: sidOf(0), pasid: undefined, groupIndex: 2, code: 1 });
    closeAll(b);
  });

  it('PASID-tagged page requests of a nested HWPT attached at a PASID carry PASID_VALID and the PASID in the response', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const parent = ok(b.t.hwptAlloc(dev, b.ioas, NEST_PARENT | PASID));
    expect(b.attach(0, parent).rc).toBe(0);
    const fault = b.t.faultAlloc();
    const iopf = ok(b.t.hwptAlloc(dev, parent, FAULT | PASID, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }, fault.id));
    expect(b.attach(0, iopf, 9)).toEqual({ rc: 0, pt: iopf });
    expect(b.dma(0, 0x3000_0000n, 4, 9)).toBe('fault');
    const [f] = U.readPageFaults(b.proc, fault.fd);
    expect(f).toMatchObject({ flags: U.IOMMU_PGFAULT_FLAGS_PASID_VALID | U.IOMMU_PGFAULT_FLAGS_LAST_PAGE, dev_id: dev, pasid: 9, addr: 0x3000_0000n });
    expect(U.writePageResponses(b.proc, fault.fd, [{ cookie: f!.cookie, code: U.IOMMUFD_PAGE_RESP_SUCCESS }])).toBe(1);
    expect(b.x.hw.pageResponses.at(-1)).toEqual({ requesterId: sidOf(0), pasid: 9, groupIndex: 0, code: 0 });
    closeAll(b);
  });
});

describe('§2.14 PASID attach / replace / detach through VFIO (VFIO_DEVICE_ATTACH_PASID)', () => {
  it('compatibility rules, the PASID entry of each HWPT kind, replace in place, detach to a non-present entry and a faulting DMA', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const gpt = guestPageTable(b.proc, b.ram);
    gpt.map(0x1000_0000n, 0x3_0000n);
    b.proc.poke(b.ram + 0x3_0000n, bytes(8, 0x91));
    b.proc.poke(b.ram + 0x1000n * 0x30n, bytes(8, 0x91));
    const parent = ok(b.t.hwptAlloc(dev, b.ioas, NEST_PARENT));
    const s2 = ok(b.t.hwptAlloc(dev, b.ioas, PASID));
    const nested0 = ok(b.t.hwptAlloc(dev, parent, PASID, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }));
    const nested1 = ok(b.t.hwptAlloc(dev, parent, PASID, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }));
    const nestedNoPasid = ok(b.t.hwptAlloc(dev, parent, 0, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }));
    // RID on a HWPT that is not PASID-compatible: no PASID attach at all.
    expect(b.attach(0, parent).rc).toBe(0);
    expect(b.attach(0, s2, 100).rc).toBe(-U.EINVAL);
    expect(b.attach(0, s2)).toEqual({ rc: 0, pt: s2 });
    // PASID attach needs a PASID-capable HWPT; the IOAS itself is not one.
    expect(b.attach(0, parent, 100).rc).toBe(-U.EINVAL);
    expect(b.attach(0, nestedNoPasid, 100).rc).toBe(-U.EINVAL);
    expect(b.x.pasidEntry(0, 100).P).toBe(0);
    expect(b.attach(0, nested0, 100)).toEqual({ rc: 0, pt: nested0 });
    const e0 = b.x.pasidEntry(0, 100);
    expect(e0).toMatchObject({ P: 1, PGTT: VTD_PGTT.NESTED, FSPTPTR: 0x1000n });
    expect(b.dma(0, 0x1000_0000n, 8, 100)).toEqual(bytes(8, 0x91));
    // The RID must stay PASID-compatible while a PASID is attached.
    expect(b.attach(0, parent).rc).toBe(-U.EINVAL);
    // Attaching again replaces (VFIO): nested1 gets its own DID, written in place.
    expect(b.attach(0, nested1, 100)).toEqual({ rc: 0, pt: nested1 });
    const e1 = b.x.pasidEntry(0, 100);
    expect(e1).toMatchObject({ P: 1, PGTT: VTD_PGTT.NESTED });
    expect(e1.DID).not.toBe(e0.DID);
    // … and to a first-stage HWPT.
    expect(b.attach(0, s2, 100)).toEqual({ rc: 0, pt: s2 });
    expect(b.x.pasidEntry(0, 100)).toMatchObject({ P: 1, PGTT: VTD_PGTT.FIRST_STAGE });
    expect(b.dma(0, 0x30_000n, 8, 100)).toEqual(bytes(8, 0x91));
    expect(b.t.destroy(s2)).toBe(-U.EBUSY);
    // PASIDs beyond the function's 20 bits: EINVAL.
    expect(b.attach(0, nested0, 1 << 20).rc).toBe(-U.EINVAL);
    expect(b.detach(0, 100)).toBe(0);
    expect(b.x.pasidEntry(0, 100).P).toBe(0);
    expect(b.dma(0, 0x30_000n, 8, 100)).toBe('fault');
    // Two PASIDs on the same nested HWPT share its DID.
    expect(b.attach(0, nested0, 200).rc).toBe(0);
    expect(b.attach(0, nested0, 201).rc).toBe(0);
    expect(b.x.pasidEntry(0, 200).DID).toBe(b.x.pasidEntry(0, 201).DID);
    expect(b.detach(0, 200)).toBe(0);
    expect(b.detach(0, 201)).toBe(0);
    closeAll(b);
  });
});

describe('§2.15 destroy matrix on VT-d objects', () => {
  it('every holder makes DESTROY EBUSY until it is gone; then each DESTROY succeeds once and ENOENT after', async () => {
    const b = await boot(1);
    const dev = b.devIds[0]!;
    const { parent, viommu } = viommuOf(b);
    const vd = b.t.vdeviceAlloc(viommu, dev, GUEST_RID).id;
    const q = b.t.veventqAlloc(viommu, IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP);
    const fault = b.t.faultAlloc();
    const onViommu = ok(b.t.hwptAlloc(dev, viommu, FAULT, vdidData(3), fault.id));
    const onParent = ok(b.t.hwptAlloc(dev, parent, 0, { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }));
    expect(b.attach(0, onViommu).rc).toBe(0);
    const busy: [number, string][] = [
      [b.ioas, 'IOAS (parent)'],
      [parent, 'parent (vIOMMU, nested, attached)'],
      [viommu, 'vIOMMU (vDEVICE, vEVENTQ, nested)'],
      [onViommu, 'attached nested'],
      [fault.id, 'FAULT held by a HWPT'],
      [dev, 'bound device'],
      [q.id, 'vEVENTQ with its fd open'],
    ];
    for (const [id, what] of busy) expect([what, b.t.destroy(id)]).toEqual([what, -U.EBUSY]);
    expect(b.attach(0, parent).rc).toBe(0);
    expect(b.t.destroy(fault.id)).toBe(-U.EBUSY); // its fd is still open
    expect(b.proc.close(q.fd)).toBe(0);
    expect(b.proc.close(fault.fd)).toBe(0);
    for (const [id, what] of [[onViommu, 'nested on vIOMMU'], [onParent, 'nested on parent'], [vd, 'vDEVICE'], [q.id, 'vEVENTQ'], [fault.id, 'FAULT'], [viommu, 'vIOMMU']] as const) {
      expect([what, b.t.destroy(id)]).toEqual([what, 0]);
      expect([what, b.t.destroy(id)]).toEqual([what, -U.ENOENT]);
    }
    expect(b.t.destroy(parent)).toBe(-U.EBUSY);
    expect(b.detach(0)).toBe(0);
    expect(b.t.destroy(parent)).toBe(0);
    expect(b.t.destroy(0)).toBe(-U.ENOENT);
    expect(b.x.unit.allocatedDids).toEqual([]);
    closeAll(b);
  });
});
