// Error order of IOMMU_VDEVICE_ALLOC (vdevice.ts, iommufd-core.md §3.2 steps 1-7).
import { describe, expect, it } from 'vitest';
import { EEXIST, ENOENT, IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc } from '@iommufd/uapi';
import { expectErrorOrder } from '../harness.js';
import { orderEnv } from './env.js';

describe('error order: IOMMU_VDEVICE_ALLOC', () => {
  it('vIOMMU, device, one vDEVICE per device, then one per virt_id', () => {
    const e = orderEnv();
    const { viommu, parent } = e.viommu();
    expect(e.ioctl(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, { viommu_id: viommu, dev_id: e.devIds[0]!, virt_id: 1n }).rc).toBe(0);
    const last = expectErrorOrder(e, iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, { viommu_id: parent, dev_id: 99, virt_id: 2n }, [
      { check: 'vIOMMU lookup (a HWPT id)', errno: ENOENT, fix: { viommu_id: viommu } },
      { check: 'device lookup', errno: ENOENT, fix: { dev_id: e.devIds[0]! } },
      // virt_id 2 is free: only the one-vDEVICE-per-device rule can refuse this.
      { check: 'the device already has a vDEVICE', errno: EEXIST, fix: { dev_id: e.devIds[1]!, virt_id: 1n } },
      { check: 'virt_id taken (the new vDEVICE is aborted)', errno: EEXIST, fix: { virt_id: 2n } },
    ]);
    expect(e.ioctl(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, last).rc).toBe(0);
  });
});
