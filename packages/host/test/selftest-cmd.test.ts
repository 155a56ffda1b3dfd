// IOMMU_TEST_CMD framing on the mock platform: the ioctl-table rules for its struct and the
// errno of ops that do not exist or name the wrong object.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { createHost } from '../src/index.js';

async function open() {
  const host = await createHost({ platform: 'mock', devices: 0 });
  const fd = host.process.open('/dev/iommu');
  const cmd = (op: number, id = 0, size: number = U.iommu_test_cmd.size, extra = 0) => {
    const b = new Uint8Array(U.iommu_test_cmd.size + extra);
    U.iommu_test_cmd.encode({ size, op, id }, b);
    return { bytes: b, rc: () => host.process.ioctl(fd, U.IOMMU_TEST_CMD, b) };
  };
  return { host, fd, cmd };
}

describe('IOMMU_TEST_CMD', () => {
  it('follows the size rules: below offsetofend(last) EINVAL, non-zero tail E2BIG, zero tail accepted', async () => {
    const { cmd } = await open();
    expect(U.iommu_test_cmd.minSize).toBe(68);
    expect(cmd(U.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, 67).rc()).toBe(-U.EINVAL);
    const long = cmd(U.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, 0, U.iommu_test_cmd.size + 8, 8);
    U.IOMMU_TEST_CMD_LAYOUTS.memory_limit.set(long.bytes, 'limit', 100);
    long.bytes[U.iommu_test_cmd.size + 3] = 1;
    expect(long.rc()).toBe(-U.E2BIG);
    long.bytes[U.iommu_test_cmd.size + 3] = 0;
    expect(long.rc()).toBe(0);
  });

  it('rejects unknown ops, small memory limits and IDs of the wrong type', async () => {
    const { host, fd, cmd } = await open();
    expect(cmd(0).rc()).toBe(-U.EOPNOTSUPP);
    expect(cmd(22).rc()).toBe(-U.EOPNOTSUPP);
    const limit = cmd(U.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT);
    U.IOMMU_TEST_CMD_LAYOUTS.memory_limit.set(limit.bytes, 'limit', 11);
    expect(limit.rc()).toBe(-U.EINVAL);
    // MOCK_DOMAIN on a missing pt_id: nothing is left behind.
    expect(cmd(U.IOMMU_TEST_OP_MOCK_DOMAIN, 7).rc()).toBe(-U.ENOENT);
    expect(host.objects(fd)).toEqual([]);
    const flags = cmd(U.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, 7);
    U.IOMMU_TEST_CMD_LAYOUTS.mock_domain_flags.set(flags.bytes, 'dev_flags', 1 << 3);
    expect(flags.rc()).toBe(-U.EINVAL);
    // Access ops take an access fd: anything else is EBADFD.
    expect(cmd(U.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, fd).rc()).toBe(-U.EBADFD);
    expect(cmd(U.IOMMU_TEST_OP_ACCESS_RW, 99).rc()).toBe(-U.EBADFD);
    expect(cmd(U.IOMMU_TEST_OP_MD_CHECK_MAP, 1).rc()).toBe(-U.ENOENT);
    expect(cmd(U.IOMMU_TEST_OP_DEV_CHECK_CACHE, 1).rc()).toBe(-U.ENOENT);
  });

  it('MOCK_DOMAIN reports stdev, hwpt and idev IDs in allocation order and destroys cleanly', async () => {
    const { host, fd, cmd } = await open();
    const a = U.iommu_ioas_alloc.encode({ size: U.iommu_ioas_alloc.size });
    expect(host.process.ioctl(fd, U.IOMMU_IOAS_ALLOC, a)).toBe(0);
    const md = cmd(U.IOMMU_TEST_OP_MOCK_DOMAIN, 1);
    expect(md.rc()).toBe(0);
    const out = U.IOMMU_TEST_CMD_LAYOUTS.mock_domain.decode(md.bytes);
    expect([out.out_stdev_id, out.out_idev_id, out.out_hwpt_id]).toEqual([2, 3, 4]);
    expect(host.objects(fd).map((o) => o.type)).toEqual(['IOAS', 'SELFTEST', 'DEVICE', 'HWPT_PAGING']);
    const d = U.iommu_destroy.encode({ size: U.iommu_destroy.size, id: 2 });
    expect(host.process.ioctl(fd, U.IOMMU_DESTROY, d)).toBe(0);
    expect(host.objects(fd).map((o) => o.type)).toEqual(['IOAS']);
  });
});
