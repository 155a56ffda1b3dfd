// fail_nth over the VMM scenarios of the hardware presets: the n-th allocation point of the
// core or the driver fails, for every n the scenario reaches; the failing call leaves the
// objects, pins and IDs as before it; whatever step failed, closing the fds leaves no object,
// no pin, no domain ID (VT-d) or ASID/VMID, no live STE and no guest VINTF/VCMDQ (SMMU)
// behind, and the next n runs on a fresh host.
import { FailNth } from '@iommufd/core';
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { createHost, type Host } from '../../src/index.js';
import { buildCmd } from '@iommufd/arm-smmu-v3';
import { SMMU_STE } from '@iommufd/hw-model';
import { armSmmuOf } from '../../src/platforms/arm-smmuv3.js';
import { intelVtdUnitOf } from '../../src/platforms/intel-vtd.js';
import { presetViommu, smmuLeftNothing } from './smmu-guest.js';
import { userProcess } from './vmm.js';

type Preset = 'intel-vtd' | 'arm-smmuv3' | 'tegra241-cmdqv';

/** What a failed call must leave as it was: the context's objects, the pins and (SMMU) the ASIDs/VMIDs. */
function uapiState(host: Host, iommufd: number): unknown {
  const smmu = armSmmuOf(host.memory)?.smmu;
  return { objects: iommufd > 0 ? host.objects(iommufd) : [], pins: host.pinnedPages, ids: smmu ? [smmu.asidsInUse, smmu.vmidsInUse] : [] };
}

/**
 * The scenario up to the first failing call: IOAS + map, nest parent, nested HWPT (from a
 * vIOMMU on SMMU), invalidation, DMA. Every ioctl that fails must leave the state as before it.
 */
function scenario(host: Host, preset: Preset): void {
  let fd = -1;
  const user = userProcess(host);
  const p: U.UserProcess = {
    ...user,
    ioctl: (f, request, arg) => {
      const before = uapiState(host, fd);
      const rc = user.ioctl(f, request, arg);
      if (rc < 0) expect(uapiState(host, fd)).toEqual(before);
      return rc;
    },
  };
  fd = host.process.open('/dev/iommu');
  if (fd < 0) throw new U.IommufdError('open', -fd);
  const dfd = host.process.open(host.vfioDevices[0]!);
  const devId = U.vfioDeviceBindIommufd(p, dfd, { iommufd: fd });
  const ram = p.mmap(1n << 20n, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED | U.MAP_ANONYMOUS, -1, 0);
  const ioas = U.ioasAlloc(p, fd);
  U.ioasMap(p, fd, { ioasId: ioas, userVa: ram, length: 1n << 20n, iova: 0n });
  const parent = U.hwptAlloc(p, fd, { devId, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  U.vfioDeviceAttachIommufdPt(p, dfd, { ptId: parent });
  let nested: number;
  let invalidate: () => void;
  if (preset === 'intel-vtd') {
    nested = U.hwptAlloc(p, fd, { devId, ptId: parent, data: { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: U.iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: 0x1000n, addr_width: 48, __reserved: 0 }) } });
    invalidate = () => U.hwptInvalidate(p, fd, { hwptId: nested, dataType: U.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entryLen: 24, entries: [U.iommu_hwpt_vtd_s1_invalidate.encode({ addr: 0n, npages: 1n, flags: 0, __reserved: 0 })] });
  } else {
    const tegra = preset === 'tegra241-cmdqv';
    const viommu = U.viommuAlloc(p, fd, { devId, hwptId: parent, ...presetViommu(preset) }).id;
    U.vdeviceAlloc(p, fd, { viommuId: viommu, devId, virtId: 0x31n });
    U.veventqAlloc(p, fd, { viommuId: viommu, type: U.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, depth: 4 });
    if (tegra) U.hwQueueAlloc(p, fd, { viommuId: viommu, type: U.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, index: 0, nestingParentIova: 0x8000n, length: 4096n });
    const ste = SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: 0x1000n >> 6n }).slice(0, 2);
    nested = U.hwptAlloc(p, fd, { devId, ptId: viommu, data: { type: U.IOMMU_HWPT_DATA_ARM_SMMUV3, bytes: U.iommu_hwpt_arm_smmuv3.encode({ ste }) } });
    const [w0, w1] = buildCmd({ opcode: 'TLBI_NH_ASID', asid: 1, vmid: 0 });
    const entry = new Uint8Array(16);
    new DataView(entry.buffer).setBigUint64(0, w0, true);
    new DataView(entry.buffer).setBigUint64(8, w1, true);
    invalidate = () => U.hwptInvalidate(p, fd, { hwptId: viommu, dataType: U.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, entryLen: 16, entries: [entry] });
  }
  U.vfioDeviceAttachIommufdPt(p, dfd, { ptId: nested });
  invalidate();
  host.dma(host.vfioDevices[0]!, { iova: 0x1000n, length: 4, write: false });
}

const CORE_SITES = ['domain-alloc', 'file-alloc', 'id-alloc', 'object-alloc', 'pin', 'resv-regions'];
const SITES: Record<Preset, string[]> = {
  'intel-vtd': CORE_SITES,
  'arm-smmuv3': [...CORE_SITES, 'driver-init', 'vevent-alloc'].sort(),
  'tegra241-cmdqv': [...CORE_SITES, 'driver-init', 'mmap-alloc', 'vevent-alloc'].sort(),
};

describe.each(['intel-vtd', 'arm-smmuv3', 'tegra241-cmdqv'] as const)("fail_nth on '%s'", (preset) => {
  it('every allocation point fails in turn; closing everything leaves nothing behind', async () => {
    const failedSites = new Set<string>();
    let n = 1;
    for (; n < 400; n++) {
      const host = await createHost({ platform: preset, devices: 1 });
      const injector = new FailNth(n);
      host.setFaultInjector(injector);
      try {
        scenario(host, preset);
      } catch (e) {
        if (!(e instanceof U.IommufdError)) throw e;
        expect(injector.injected).toBe(true);
      }
      host.setFaultInjector(undefined);
      for (const { fd } of host.process.fds()) expect(host.process.close(fd)).toBe(0);
      expect(host.contexts().every((c) => c.released && c.objects.length === 0)).toBe(true);
      expect(host.pinnedPages).toBe(0);
      if (preset === 'intel-vtd') expect(intelVtdUnitOf(host.memory)!.unit.allocatedDids).toEqual([]);
      else smmuLeftNothing(host, [0x08]);
      if (!injector.injected) break;
      failedSites.add(injector.failedSite!);
    }
    // The scenario ran to its end once n passed the last allocation point, having failed the
    // core's sites and the driver's (domains, vIOMMU init, the VINTF mmap region).
    expect(n).toBeGreaterThan(10);
    expect(n).toBeLessThan(400);
    expect([...failedSites].sort()).toEqual(SITES[preset]);
  });
});
