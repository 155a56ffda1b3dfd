#!/usr/bin/env node
// `pnpm bench scale` (shared/design/BENCH.md): 1 000 vDEVICEs on one vIOMMU, 64 HW queues on
// one vIOMMU, and 1 TiB of sparse guest RAM mapped into an IOAS. The hw_queues line of
// tegra241-cmdqv tries one queue past the target, so it shows the exact stop errno too. Where a platform cannot
// reach the target, the line says the largest count/size that worked and the exact error.
// Every line carries the time, the JS heap / RSS of this process and the physical RAM
// frames the machine handed out (host.memory.pagesInUse) and pinned (host.pinnedPages).
import * as U from '@iommufd/uapi';
import { bootVmm, bootVsmmu, fmt, memoryFigures, parseArgs, place, platformAvailable, timeNs } from './common.mjs';

const { selected, tiny } = parseArgs('scale');
if (!selected) process.exit(0);
const VDEVICES = tiny ? 16 : 1000;
const HW_QUEUES = 64;
const SPARSE = tiny ? 1n << 30n : 1n << 40n;

/** `-errno` as its name, or the message of what was thrown. */
const why = (e) => (e instanceof U.IommufdError ? U.errnoName(e.errno) : `${e?.name}:${JSON.stringify(String(e?.message))}`);
const frames = (host) => `frames_in_use=${host.memory.pagesInUse} pinned_pages=${host.pinnedPages}`;
const ms = (ns) => (ns / 1e6).toFixed(3);
/** reached/target per figure, for the last line. */
const summary = [];

/** Runs `step(i)` for i = 0..target-1 until one throws; `{ done, error, ns }`. */
function upTo(target, step) {
  let done = 0, error;
  const ns = timeNs(() => {
    for (; done < target; done++) {
      try {
        step(done);
      } catch (e) {
        error = why(e);
        return;
      }
    }
  });
  return { done, error, ns };
}

const line = (what, impl, target, r, host, extra = '') => {
  summary.push(`${what}_${impl}=${r.done}/${target}`);
  console.log(
    `scale impl=${impl} what=${what} target=${target} reached=${r.done} ops_per_s=${fmt((r.done * 1e9) / Math.max(r.ns, 1))} ` +
    `total_ms=${ms(r.ns)}${extra} ${frames(host)} ${memoryFigures()}${r.error ? ` stopped_by=${r.error}` : ''}`,
  );
};

// --- vDEVICEs --------------------------------------------------------------------------
// mock: selftest mock devices (IOMMU_TEST_OP_MOCK_DOMAIN, as many as wanted), one SELFTEST
// vIOMMU on a nesting parent, one vDEVICE per device (virt_id = i).
{
  const { host, p, fd, ioas } = await bootVmm({ platform: 'mock', devices: 0 });
  const idevs = [];
  const add = upTo(VDEVICES, () => idevs.push(U.iommuTestCmd(p, fd, 'mock_domain', { id: ioas }).out_idev_id));
  line('mock_devices', 'mock', VDEVICES, add, host);
  const parent = U.hwptAlloc(p, fd, { devId: idevs[0], ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  const viommu = U.viommuAlloc(p, fd, { devId: idevs[0], hwptId: parent, type: U.IOMMU_VIOMMU_TYPE_SELFTEST }).id;
  const r = upTo(idevs.length, (i) => U.vdeviceAlloc(p, fd, { viommuId: viommu, devId: idevs[i], virtId: BigInt(i) }));
  const objects = host.objects(fd).length;
  line('vdevices', 'mock', VDEVICES, r, host, ` objects=${objects}`);
}
// arm-smmuv3: one vDEVICE per VFIO device, so as many PCI functions as vDEVICEs: the preset
// puts 31 on each bus (slots 1–31, bus after bus), each with its own StreamID.
if (await platformAvailable('arm-smmuv3')) {
  const { host, p, fd, viommu, devIds } = await bootVsmmu(VDEVICES);
  const r = upTo(devIds.length, (i) => U.vdeviceAlloc(p, fd, { viommuId: viommu, devId: devIds[i], virtId: BigInt(0x100 + 3 * i) }));
  line('vdevices', 'arm-smmuv3', VDEVICES, r, host, ` devices=${devIds.length} buses=${Math.ceil(devIds.length / 31)} objects=${host.objects(fd).length}`);
}
// tegra241-cmdqv: a vDEVICE takes one SID match/replace slot of the vIOMMU's VINTF, and a
// VINTF's register block has 16 (PARAM.NUM_SID_PER_VM_LOG2 = 4, the most it can say): the
// 17th stops with the driver's -ENOSPC. One device more than slots is enough to show it.
if (await platformAvailable('tegra241-cmdqv')) {
  const slots = 16;
  const { host, p, fd, deviceFds, devIds, ioas } = await bootVmm({ platform: 'tegra241-cmdqv', devices: slots + 1, hardware: { cmdqv: { sidsPerVintfLog2: 4 } } }, 2n << 20n);
  const parent = U.hwptAlloc(p, fd, { devId: devIds[0], ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  U.vfioDeviceAttachIommufdPt(p, deviceFds[0], { ptId: parent });
  const viommu = U.viommuAlloc(p, fd, { devId: devIds[0], hwptId: parent, type: U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, data: U.iommu_viommu_tegra241_cmdqv.encode({}) }).id;
  const r = upTo(devIds.length, (i) => U.vdeviceAlloc(p, fd, { viommuId: viommu, devId: devIds[i], virtId: BigInt(0x100 + 3 * i) }));
  line('vdevices', 'tegra241-cmdqv', VDEVICES, r, host, ` devices=${devIds.length} sid_slots_per_vintf=${slots}`);
}

// --- HW queues -------------------------------------------------------------------------
// mock: SELFTEST HW queues on a SELFTEST vIOMMU, each a page of guest RAM mapped at the
// start of the mock aperture.
{
  const base = BigInt(U.MOCK_APERTURE_START);
  const { host, p, fd, deviceFds, devIds, ioas } = await bootVmm({ platform: 'mock', devices: 1 }, 2n << 20n, base);
  const parent = U.hwptAlloc(p, fd, { devId: devIds[0], ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  U.vfioDeviceAttachIommufdPt(p, deviceFds[0], { ptId: parent });
  const viommu = U.viommuAlloc(p, fd, { devId: devIds[0], hwptId: parent, type: U.IOMMU_VIOMMU_TYPE_SELFTEST }).id;
  const r = upTo(HW_QUEUES, (i) => U.hwQueueAlloc(p, fd, { viommuId: viommu, type: U.IOMMU_HW_QUEUE_TYPE_SELFTEST, index: i, nestingParentIova: base + (BigInt(i) << 12n), length: 4096n }));
  line('hw_queues', 'mock', HW_QUEUES, r, host, ` limit=IOMMU_TEST_HW_QUEUE_MAX=${U.IOMMU_TEST_HW_QUEUE_MAX}`);
}
// tegra241-cmdqv: logical VCMDQs of the vIOMMU's VINTF. Linux's driver reads PARAM and
// gives every VINTF NUM_VCMDQ / NUM_VINTF logical queues (num_lvcmdqs_per_vintf); it keeps
// VINTF0 for itself and gives each vIOMMU a free VINTF. Current silicon has 2 per VINTF (a
// reviewer's note on the Linux series); the preset's default, 16 / 4, gives 4. For 64 on one
// vIOMMU: 2^7 VCMDQs — the most
// CMDQ_ALLOC's 7-bit LVCMDQ field can address — over 2^1 VINTFs (VINTF0 the kernel's, VINTF1
// the vIOMMU's), 64 each; the 65th index is the driver's -EINVAL.
const TEGRA_64_QUEUES = { cmdqv: { vcmdqsLog2: 7, vintfsLog2: 1 } };
if (await platformAvailable('tegra241-cmdqv')) {
  const { host, p, fd, deviceFds, devIds, ioas } = await bootVmm({ platform: 'tegra241-cmdqv', devices: 1, hardware: TEGRA_64_QUEUES }, 2n << 20n);
  const info = U.iommu_hw_info_tegra241_cmdqv.decode(U.getHwInfo(p, fd, { devId: devIds[0], type: U.IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV }).data);
  const parent = U.hwptAlloc(p, fd, { devId: devIds[0], ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  U.vfioDeviceAttachIommufdPt(p, deviceFds[0], { ptId: parent });
  const viommu = U.viommuAlloc(p, fd, { devId: devIds[0], hwptId: parent, type: U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, data: U.iommu_viommu_tegra241_cmdqv.encode({}) }).id;
  const r = upTo(HW_QUEUES + 1, (i) => U.hwQueueAlloc(p, fd, { viommuId: viommu, type: U.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, index: i, nestingParentIova: BigInt(i) << 12n, length: 4096n }));
  line('hw_queues', 'tegra241-cmdqv', HW_QUEUES, r, host, ` vcmdqs_log2=${TEGRA_64_QUEUES.cmdqv.vcmdqsLog2} vintfs_log2=${TEGRA_64_QUEUES.cmdqv.vintfsLog2} hw_info_log2vcmdqs=${info.log2vcmdqs}`);
}

// --- sparse guest RAM ------------------------------------------------------------------
// mmap of SPARSE bytes of private anonymous memory (nothing touched) and IOAS_MAP of it at
// IOVA 0 into an IOAS no device is attached to: with no domain to fill, iommufd pins
// nothing (as Linux: pages are pinned when a domain or an access needs them), so both must
// be O(1) in the size. Then the same with a domain: attaching a device fills it, which pins
// every page — the largest size that works is bounded by RAM, and the error is reported.
{
  const { host, p, fd, deviceFds, ioas } = await bootVmm({ platform: 'mock', devices: 1 });
  let va = 0n, rc = 0;
  const mmapNs = timeNs(() => {
    va = p.mmap(SPARSE, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
  });
  if (va < 0n) throw new Error(`mmap ${SPARSE}: ${U.errnoName(Number(-va))}`);
  const arg = place(p, U.iommu_ioas_map.encode({ size: U.iommu_ioas_map.size, flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE, ioas_id: ioas, user_va: va, length: SPARSE, iova: 0n }));
  const mapNs = timeNs(() => {
    rc = p.ioctl(fd, U.IOMMU_IOAS_MAP, arg);
  });
  summary.push(`sparse_map_no_domain=${rc === 0 ? 'ok' : U.errnoName(-rc)}`);
  console.log(`scale impl=mock what=sparse_map domain=none bytes=${SPARSE} ops_per_s=${fmt(1e9 / mapNs)} rc=${rc < 0 ? U.errnoName(-rc) : rc} mmap_ms=${ms(mmapNs)} map_ms=${ms(mapNs)} ${frames(host)} ${memoryFigures()}`);
  // Attaching a mock device: its domain's aperture is [16 MiB, 2 GiB) (MOCK_APERTURE_*),
  // which a mapping at IOVA 0 conflicts with.
  let attachRc = 0;
  const attachNs = timeNs(() => {
    attachRc = p.ioctl(deviceFds[0], U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, U.vfio_device_attach_iommufd_pt.encode({ argsz: 16, flags: 0, pt_id: ioas }));
  });
  console.log(`scale impl=mock what=sparse_attach domain=mock bytes=${SPARSE} ops_per_s=${fmt(1e9 / attachNs)} rc=${attachRc < 0 ? U.errnoName(-attachRc) : attachRc} attach_ms=${ms(attachNs)} ${frames(host)} ${memoryFigures()}`);
  const unmap = place(p, U.iommu_ioas_unmap.encode({ size: U.iommu_ioas_unmap.size, ioas_id: ioas, iova: 0n, length: SPARSE }));
  const unmapNs = timeNs(() => {
    rc = p.ioctl(fd, U.IOMMU_IOAS_UNMAP, unmap);
  });
  console.log(`scale impl=mock what=sparse_unmap bytes=${SPARSE} ops_per_s=${fmt(1e9 / unmapNs)} rc=${rc < 0 ? U.errnoName(-rc) : rc} unmap_ms=${ms(unmapNs)} ${frames(host)} ${memoryFigures()}`);
}
// arm-smmuv3 with a domain: the device is attached first, so IOAS_MAP must pin every page;
// with RAM far below the size the right answer is -ENOMEM with nothing left pinned. A size
// whose map throws out of the ioctl instead (a crash of the simulated kernel) is reported
// with the exception, and the size halved until the ioctl returns an errno.
if (await platformAvailable('arm-smmuv3')) {
  const ramBytes = tiny ? 64n << 20n : 1n << 30n;
  for (let size = SPARSE; size >= 1n << 30n; size /= 2n) {
    const vmm = await bootVmm({ platform: 'arm-smmuv3', devices: 1, ramBytes });
    const { p, fd, deviceFds, ioas } = vmm;
    U.vfioDeviceAttachIommufdPt(p, deviceFds[0], { ptId: ioas });
    const va = p.mmap(size, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    const arg = place(p, U.iommu_ioas_map.encode({ size: U.iommu_ioas_map.size, flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE, ioas_id: ioas, user_va: va, length: size, iova: 0n }));
    let rc = 0, thrown;
    const ns = timeNs(() => {
      try {
        rc = p.ioctl(fd, U.IOMMU_IOAS_MAP, arg);
      } catch (e) {
        thrown = `${e?.name}:${JSON.stringify(String(e?.message))}@${/at (\S+) \(file:/.exec(String(e?.stack))?.[1] ?? '?'}`;
      }
    });
    const result = thrown ? `THROWN` : rc < 0 ? U.errnoName(-rc) : String(rc);
    if (size === SPARSE) summary.push(`sparse_map_arm-smmuv3_attached=${result}`);
    console.log(`scale impl=arm-smmuv3 what=sparse_map domain=attached bytes=${size} ops_per_s=${fmt(1e9 / ns)} ram_bytes=${ramBytes} rc=${result} map_ms=${ms(ns)}${thrown ? ` thrown=${thrown}` : ''} ${frames(vmm.host)} ${memoryFigures()}`);
    if (!thrown) break;
  }
}
console.log(`scale ratios ${summary.join(' ')} sparse_bytes=${SPARSE}`);
