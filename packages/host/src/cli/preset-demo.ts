/**
 * The demo on the hardware presets (`arm-smmuv3`, `tegra241-cmdqv`, `intel-vtd`): the
 * portable part of a VMM session — guest RAM from a memfd mapped into an IOAS at IOVA 0,
 * every device bound and attached, DMA through the IOMMU model's page tables, a blocked DMA,
 * GET_HW_INFO, a nesting parent the first device moves onto (plus a vIOMMU and vDEVICE on
 * the SMMU presets) — and a teardown that must leave no page pinned.
 */
import * as U from '@iommufd/uapi';
import { bindAndAttachAll, DemoError, demoSteps, dmaRoundTrip, type DemoSummary } from '../demo.js';
import type { Host } from '../host.js';

const GUEST_RAM = 2n << 20n;
const HW_INFO_NAMES: Readonly<Record<number, string>> = {
  [U.IOMMU_HW_INFO_TYPE_INTEL_VTD]: 'INTEL_VTD',
  [U.IOMMU_HW_INFO_TYPE_ARM_SMMUV3]: 'ARM_SMMUV3',
  [U.IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV]: 'TEGRA241_CMDQV',
};

/** Runs the portable VMM session on a hardware preset. Throws {@link DemoError} naming the failed step. */
export function runPresetDemo(host: Host, log: (line: string) => void): DemoSummary {
  const p = host.process;
  const { step, call, hex } = demoSteps(host);
  log(`host: platform ${host.platform}, ${host.vfioDevices.length} VFIO device(s)`);

  const ramFd = p.memfdCreate('guest-ram', GUEST_RAM);
  step('memfd_create(guest-ram)', ramFd);
  const ram = p.mmap(GUEST_RAM, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED, ramFd);
  step('mmap(guest RAM)', ram);
  const greeting = new TextEncoder().encode('hello from guest RAM');
  step('guest RAM write', p.poke(ram + 0x1000n, greeting));
  const iommufd = p.open('/dev/iommu');
  step('open(/dev/iommu)', iommufd);
  const ioas = call(iommufd, 'IOMMU_IOAS_ALLOC', U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, {}).out_ioas_id;
  call(iommufd, 'IOMMU_IOAS_MAP_FILE', U.IOMMU_IOAS_MAP_FILE, U.iommu_ioas_map_file, {
    flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE,
    ioas_id: ioas,
    fd: ramFd,
    length: GUEST_RAM,
    iova: 0n,
  });
  log(`IOAS ${ioas}: ${GUEST_RAM >> 20n} MiB guest RAM mapped at IOVA 0x0..${hex(GUEST_RAM - 1n)}`);

  const devices = bindAndAttachAll(host, iommufd, ioas, step, log);
  const dev0 = devices[0]!;
  const info = call(iommufd, 'IOMMU_GET_HW_INFO', U.IOMMU_GET_HW_INFO, U.iommu_hw_info, { dev_id: dev0.devId });
  log(`IOMMU_GET_HW_INFO(DEVICE ${dev0.devId}): type ${HW_INFO_NAMES[info.out_data_type] ?? info.out_data_type}, max PASID log2 ${info.out_max_pasid_log2}`);

  const checked = dmaRoundTrip(host, devices, ram, 0n, GUEST_RAM, greeting, log);
  let transfers = checked.transfers;
  const faults = checked.faults;

  const parent = call(iommufd, 'IOMMU_HWPT_ALLOC(NEST_PARENT)', U.IOMMU_HWPT_ALLOC, U.iommu_hwpt_alloc, {
    flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT,
    dev_id: dev0.devId,
    pt_id: ioas,
  }).out_hwpt_id;
  const replace = U.vfio_device_attach_iommufd_pt.encode({ argsz: U.vfio_device_attach_iommufd_pt.size, pt_id: parent });
  step('VFIO_DEVICE_ATTACH_IOMMUFD_PT(nest parent)', p.ioctl(dev0.fd, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, replace));
  dev0.ptId = parent;
  const again = host.dma(dev0.path, { iova: 0x1000n, length: greeting.length, write: false });
  if (!again.ok) throw new DemoError(`DMA through the nest parent faulted: ${again.fault.kind}`);
  transfers++;
  log(`nest parent HWPT ${parent}: ${dev0.path} replaced onto it, DMA at IOVA 0x1000 still reads "${new TextDecoder().decode(again.data)}"`);
  const destroyIds: [string, number][] = [];
  if (host.platform !== 'intel-vtd') {
    const viommu = call(iommufd, 'IOMMU_VIOMMU_ALLOC', U.IOMMU_VIOMMU_ALLOC, U.iommu_viommu_alloc, {
      type: U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
      dev_id: dev0.devId,
      hwpt_id: parent,
    }).out_viommu_id;
    const vdevice = call(iommufd, 'IOMMU_VDEVICE_ALLOC', U.IOMMU_VDEVICE_ALLOC, U.iommu_vdevice_alloc, { viommu_id: viommu, dev_id: dev0.devId, virt_id: 0x31n }).out_vdevice_id;
    log(`vIOMMU ${viommu} (ARM_SMMUV3) on the nest parent, vDEVICE ${vdevice} with virtual StreamID 0x31`);
    destroyIds.push(['vDEVICE', vdevice], ['vIOMMU', viommu]);
  }
  const objects = host.objects(iommufd).map((o) => ({ id: o.id, type: o.type, users: o.users }));

  const detach = U.vfio_device_detach_iommufd_pt.encode({ argsz: U.vfio_device_detach_iommufd_pt.size });
  step('VFIO_DEVICE_DETACH_IOMMUFD_PT', p.ioctl(dev0.fd, U.VFIO_DEVICE_DETACH_IOMMUFD_PT, detach));
  for (const [what, id] of [...destroyIds, ['nest parent HWPT', parent] as [string, number]]) call(iommufd, `IOMMU_DESTROY(${what} ${id})`, U.IOMMU_DESTROY, U.iommu_destroy, { id });
  for (const d of devices) step(`close(${d.path})`, p.close(d.fd));
  step('close(/dev/iommu)', p.close(iommufd));
  step('close(guest-ram memfd)', p.close(ramFd));
  step('munmap(guest RAM)', p.munmap(ram, GUEST_RAM));
  log('destroyed the nesting objects, closed every fd, unmapped guest RAM');
  return {
    platform: host.platform,
    devices: devices.map(({ path, devId, ptId }) => ({ path, devId, ptId })),
    guestRamBytes: GUEST_RAM,
    guestIova: 0n,
    dmaTransfers: transfers,
    dmaFaults: faults,
    vevents: 0,
    objects,
    pinnedPagesAfterClose: host.pinnedPages,
  };
}
