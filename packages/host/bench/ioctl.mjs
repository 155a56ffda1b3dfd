#!/usr/bin/env node
// `pnpm bench ioctl` (shared/design/BENCH.md): ioctl round trips per second through the Host
// contract — `host.process.ioctl(fd, request, va)` with the struct already in process memory
// (the kernel copies it in and back) — for a cheap ioctl (IOMMU_IOAS_IOVA_RANGES) and for
// IOMMU_HWPT_INVALIDATE of one entry: on 'mock' a nested HWPT with the selftest invalidate
// data, on 'arm-smmuv3' a vIOMMU with one TLBI_NH_VA (converted, issued on the CMDQ with a
// CMD_SYNC and consumed by the SMMU model), on 'intel-vtd' a nested VTD_S1 HWPT with one
// page-selective entry (descriptors on the invalidation queue). IOVA_RANGES on every preset.
import * as U from '@iommufd/uapi';
import { buildCmd } from '@iommufd/arm-smmu-v3';
import { bestNs, bootVmm, bootVsmmu, cmdArray, fmt, ok, parseArgs, place, platformAvailable } from './common.mjs';

const { selected, tiny } = parseArgs('ioctl');
if (!selected) process.exit(0);
const REPS = tiny ? 20 : 20_000;

/** Round trips per second of `ioctl(fd, request, va)`; every call must return 0. */
function measure(impl, op, p, fd, request, va, extra = '') {
  const ns = bestNs(() => ok(op, p.ioctl(fd, request, va)), REPS);
  const perS = (REPS * 1e9) / ns;
  console.log(`ioctl impl=${impl} op=${op} ops_per_s=${fmt(perS)} ns_per_op=${fmt(ns / REPS)}${extra} calls=${REPS}`);
  return perS;
}

/** IOAS_IOVA_RANGES on an IOAS with room for 8 ranges; checks what the kernel wrote back. */
function iovaRanges(impl, vmm) {
  const { p, fd, ioas } = vmm;
  const rangesVa = place(p, new Uint8Array(8 * 16));
  const va = place(p, U.iommu_ioas_iova_ranges.encode({ size: U.iommu_ioas_iova_ranges.size, ioas_id: ioas, num_iovas: 8, allowed_iovas: rangesVa }));
  const perS = measure(impl, 'IOMMU_IOAS_IOVA_RANGES', p, fd, U.IOMMU_IOAS_IOVA_RANGES, va);
  const out = U.iommu_ioas_iova_ranges.decode(U.peekUser(p, va, U.iommu_ioas_iova_ranges.size));
  if (out.num_iovas < 1 || out.num_iovas > 8) throw new Error(`IOVA_RANGES returned num_iovas=${out.num_iovas}`);
  return perS;
}

/** HWPT_INVALIDATE of one entry at `hwptId`; checks entry_num came back as 1. */
function invalidate(impl, p, fd, hwptId, dataType, entry, what) {
  const data = place(p, entry);
  const va = place(p, U.iommu_hwpt_invalidate.encode({ size: U.iommu_hwpt_invalidate.size, hwpt_id: hwptId, data_uptr: data, data_type: dataType, entry_len: entry.length, entry_num: 1 }));
  const perS = measure(impl, 'IOMMU_HWPT_INVALIDATE', p, fd, U.IOMMU_HWPT_INVALIDATE, va, ` entries=1 entry=${what}`);
  const num = U.iommu_hwpt_invalidate.decode(U.peekUser(p, va, U.iommu_hwpt_invalidate.size)).entry_num;
  if (num !== 1) throw new Error(`HWPT_INVALIDATE handled ${num} entries, expected 1`);
  return perS;
}

const figures = {};

// mock: a nesting parent with the device attached, a nested HWPT with the selftest data.
{
  const vmm = await bootVmm({ platform: 'mock', devices: 1 });
  const { p, fd, deviceFds, devIds, ioas } = vmm;
  const ranges = iovaRanges('mock', vmm);
  const parent = U.hwptAlloc(p, fd, { devId: devIds[0], ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  U.vfioDeviceAttachIommufdPt(p, deviceFds[0], { ptId: parent });
  const nested = U.hwptAlloc(p, fd, { devId: devIds[0], ptId: parent, data: { type: U.IOMMU_HWPT_DATA_SELFTEST, bytes: U.iommu_hwpt_selftest.encode({ iotlb: U.IOMMU_TEST_IOTLB_DEFAULT }) } });
  const entry = U.iommu_hwpt_invalidate_selftest.encode({ flags: 0, iotlb_id: 0 });
  const inv = invalidate('mock', p, fd, nested, U.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, entry, 'selftest_iotlb0');
  figures.mock = { ranges, inv };
}

// arm-smmuv3: a vIOMMU on the nesting parent; one guest TLBI_NH_VA per call.
if (await platformAvailable('arm-smmuv3')) {
  const v = await bootVsmmu(1);
  const ranges = iovaRanges('arm-smmuv3', v);
  const entry = cmdArray([buildCmd({ opcode: 'TLBI_NH_VA', asid: 3, vmid: 0, addr: 0x4000_0000n, leaf: true })]);
  const inv = invalidate('arm-smmuv3', v.p, v.fd, v.viommu, U.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, entry, 'TLBI_NH_VA');
  figures['arm-smmuv3'] = { ranges, inv };
} else {
  console.log(`ioctl impl=arm-smmuv3 skipped=preset_not_in_this_build`);
}

// tegra241-cmdqv: the cheap ioctl (its trapped invalidation path is arm-smmuv3's).
if (await platformAvailable('tegra241-cmdqv')) {
  figures['tegra241-cmdqv'] = { ranges: iovaRanges('tegra241-cmdqv', await bootVmm({ platform: 'tegra241-cmdqv', devices: 1 })) };
}

// intel-vtd: a nested HWPT (VTD_S1, guest PML4 at GPA 0x1000) with the device attached;
// one page-selective entry per call (PASID-based IOTLB + device-TLB descriptors on the IQ).
if (await platformAvailable('intel-vtd')) {
  const vmm = await bootVmm({ platform: 'intel-vtd', devices: 1 }, 2n << 20n);
  const { p, fd, deviceFds, devIds, ioas } = vmm;
  const ranges = iovaRanges('intel-vtd', vmm);
  const parent = U.hwptAlloc(p, fd, { devId: devIds[0], ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  U.vfioDeviceAttachIommufdPt(p, deviceFds[0], { ptId: parent });
  const s1 = U.iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: 0x1000n, addr_width: 48, __reserved: 0 });
  const nested = U.hwptAlloc(p, fd, { devId: devIds[0], ptId: parent, data: { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1 } });
  U.vfioDeviceAttachIommufdPt(p, deviceFds[0], { ptId: nested });
  const entry = U.iommu_hwpt_vtd_s1_invalidate.encode({ addr: 0x4000_0000n, npages: 1n, flags: 0, __reserved: 0 });
  const inv = invalidate('intel-vtd', p, fd, nested, U.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entry, 'vtd_s1_page');
  figures['intel-vtd'] = { ranges, inv };
}

const parts = Object.entries(figures).filter(([, f]) => f.inv).map(([k, f]) => `invalidate/iova_ranges_${k}=${(f.inv / f.ranges).toFixed(3)}`);
for (const k of ['arm-smmuv3', 'intel-vtd']) if (figures[k]?.inv) parts.push(`invalidate_${k}/mock=${(figures[k].inv / figures.mock.inv).toFixed(3)}`);
console.log(`ioctl ratios ${parts.join(' ')} best_of=5`);
