// §3.8 the VFIO device cdev: VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_ATTACH_IOMMUFD_PT and
// VFIO_DEVICE_DETACH_IOMMUFD_PT, each check in the kernel's order, sent to /dev/vfio/devices/vfioN.
import { expect } from 'vitest';
import { PAGE, table, U, UNMAPPED, type Env, type Row } from './harness.js';

type C = { pt: number; other: number; memfd: number };
const dev0 = (e: Env) => e.devFds[0]!;
const bind = (value: Record<string, number | bigint>) => ({ layout: U.vfio_device_bind_iommufd, value: { argsz: U.vfio_device_bind_iommufd.size, ...value } });
const BIND = U.vfio_device_bind_iommufd;

table(
  'VFIO_DEVICE_BIND_IOMMUFD',
  U.VFIO_DEVICE_BIND_IOMMUFD,
  [
    { name: '§3.8 argsz unreadable → EFAULT', bind: false, target: dev0, arg: () => ({ va: UNMAPPED }), errno: U.EFAULT },
    { name: '§3.8 argsz < 16 → EINVAL', bind: false, target: dev0, arg: (e) => bind({ argsz: 15, iommufd: e.fd }), errno: U.EINVAL },
    {
      name: '§3.8 argsz past the struct with a non-zero byte there → E2BIG',
      bind: false,
      target: dev0,
      arg: (e) => ({ layout: BIND, value: { argsz: BIND.size + 8, iommufd: e.fd }, tail: Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 0) }),
      errno: U.E2BIG,
    },
    { name: '§3.8 iommufd < 0 → EINVAL', bind: false, target: dev0, arg: () => bind({ iommufd: -1 }), errno: U.EINVAL },
    { name: '§3.8 an unknown flag → EINVAL (wins over a bad fd)', bind: false, target: dev0, arg: () => bind({ iommufd: 999, flags: 2 }), errno: U.EINVAL },
    { name: '§3.8 already bound → EINVAL', target: dev0, arg: (e) => bind({ iommufd: e.fd }), errno: U.EINVAL },
    {
      name: '§3.8 FLAG_TOKEN with the UUID unreadable → EFAULT',
      bind: false,
      target: dev0,
      arg: (e) => bind({ iommufd: e.fd, flags: U.VFIO_DEVICE_BIND_FLAG_TOKEN, token_uuid_ptr: UNMAPPED }),
      errno: U.EFAULT,
    },
    {
      name: '§3.8 FLAG_TOKEN on a device that is neither PF nor VF (vfio-pci) → EINVAL',
      bind: false,
      target: dev0,
      arg: (e) => bind({ iommufd: e.fd, flags: U.VFIO_DEVICE_BIND_FLAG_TOKEN, token_uuid_ptr: e.put(new Uint8Array(16).fill(7)) }),
      errno: U.EINVAL,
    },
    { name: '§3.8 iommufd not an open fd → EBADF', bind: false, target: dev0, arg: () => bind({ iommufd: 999 }), errno: U.EBADF },
    {
      name: '§3.8 iommufd is not an iommufd (a memfd) → EBADFD',
      bind: false,
      target: dev0,
      setup: (e) => ({ pt: 0, other: 0, memfd: e.p.memfdCreate('x', PAGE) }),
      arg: (_e, s) => bind({ iommufd: s.memfd }),
      errno: U.EBADFD,
    },
    {
      name: '§3.8 the device is already bound through another open of its cdev → EINVAL',
      target: (e, s) => s.other,
      setup: (e) => ({ pt: 0, other: e.p.open(e.host.vfioDevices[0]!), memfd: 0 }),
      arg: (e) => bind({ iommufd: e.fd }),
      errno: U.EINVAL,
    },
    {
      name: '§3.8 out_devid cannot be written → EFAULT, the bind is undone (no DEVICE left)',
      bind: false,
      target: dev0,
      arg: (e) => {
        const bytes = BIND.encode({ argsz: BIND.size, iommufd: e.fd });
        return { va: e.readOnly(bytes), bytes };
      },
      errno: U.EFAULT,
      after: (e, _s, before) => {
        expect(e.host.objects(e.fd)).toEqual(before.objects);
        expect(e.host.boundDeviceId(e.host.vfioDevices[0]!)).toBeUndefined();
        e.bind(dev0(e));
      },
    },
  ] satisfies Row<C>[],
);

const ATTACH = U.vfio_device_attach_iommufd_pt;
const attach = (value: Record<string, number | bigint>) => ({ layout: ATTACH, value: { argsz: ATTACH.size, ...value } });
const withHwpt = (e: Env): C => ({ pt: e.hwpt(e.ioas()), other: 0, memfd: 0 });
const attachedHwpt = (e: Env): C => {
  const s = withHwpt(e);
  e.attach(0, s.pt);
  return s;
};

table('VFIO_DEVICE_ATTACH_IOMMUFD_PT', U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, [
  { name: '§3.8 on a cdev fd that is not bound → EINVAL', bind: false, target: dev0, arg: () => attach({ pt_id: 1 }), errno: U.EINVAL },
  { name: '§3.8 the first 12 bytes unreadable → EFAULT', target: dev0, arg: () => ({ va: UNMAPPED }), errno: U.EFAULT },
  { name: '§3.8 argsz < 12 → EINVAL', target: dev0, arg: () => attach({ argsz: 11, pt_id: 99 }), errno: U.EINVAL },
  { name: '§3.8 an unknown flag → EINVAL', target: dev0, arg: () => attach({ flags: 2, pt_id: 99 }), errno: U.EINVAL },
  { name: '§3.8 ATTACH_PASID with argsz < 16 → EINVAL', target: dev0, arg: () => attach({ argsz: 12, flags: U.VFIO_DEVICE_ATTACH_PASID, pt_id: 99 }), errno: U.EINVAL },
  {
    name: '§3.8 extra argsz bytes are ignored (no E2BIG): an unknown pt_id is ENOENT',
    target: dev0,
    arg: () => ({ layout: ATTACH, value: { argsz: ATTACH.size + 8, pt_id: 99 }, tail: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) }),
    errno: U.ENOENT,
  },
  { name: '§3.8 unknown pt_id → ENOENT', target: dev0, arg: () => attach({ pt_id: 99 }), errno: U.ENOENT },
  { name: '§3.8 pt_id of a DEVICE (other type) → EINVAL', target: dev0, arg: (e) => attach({ pt_id: e.devIds[1]! }), errno: U.EINVAL },
  {
    name: '§3.8 pt_id of a vIOMMU (other type) → EINVAL',
    needsViommu: true,
    target: dev0,
    setup: (e) => ({ pt: e.viommu().viommu, other: 0, memfd: 0 }),
    arg: (_e, s) => attach({ pt_id: s.pt }),
    errno: U.EINVAL,
  },
  {
    name: '§3.8 replace onto an unknown pt_id → ENOENT, still attached to the old HWPT',
    target: dev0,
    setup: attachedHwpt,
    arg: () => attach({ pt_id: 99 }),
    errno: U.ENOENT,
  },
  {
    name: '§3.8 replace onto the HWPT already attached → 0, a no-op',
    target: dev0,
    setup: attachedHwpt,
    arg: (_e, s) => attach({ pt_id: s.pt }),
    errno: 0,
  },
  {
    name: '§3.2 ALLOW_IOVAS: an allowed range outside the aperture makes the automatic-domain attach EADDRINUSE',
    target: dev0,
    setup: (e) => ({ pt: e.ioasAllowedOutsideAperture(), other: 0, memfd: 0 }),
    arg: (_e, s) => attach({ pt_id: s.pt }),
    errno: U.EADDRINUSE,
  },
  {
    name: '§3.8 PASID attach to a HWPT allocated without IOMMU_HWPT_ALLOC_PASID → EINVAL',
    presets: ['mock'],
    target: dev0,
    setup: withHwpt,
    arg: (_e, s) => attach({ flags: U.VFIO_DEVICE_ATTACH_PASID, pt_id: s.pt, pasid: 5 }),
    errno: U.EINVAL,
  },
  {
    name: '§3.8 RID attach of a non-PASID HWPT while a PASID is attached → EINVAL',
    presets: ['mock'],
    target: dev0,
    setup: (e) => {
      const ioas = e.ioas();
      const pasidHwpt = e.hwpt(ioas, U.IOMMU_HWPT_ALLOC_PASID);
      const b = ATTACH.encode({ argsz: ATTACH.size, flags: U.VFIO_DEVICE_ATTACH_PASID, pt_id: pasidHwpt, pasid: 5 });
      expect(e.p.ioctl(dev0(e), U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, b)).toBe(0);
      return { pt: e.hwpt(ioas), other: 0, memfd: 0 };
    },
    arg: (_e, s) => attach({ pt_id: s.pt }),
    errno: U.EINVAL,
  },
  {
    name: '§3.8 pt_id cannot be written back → EFAULT, the attach is undone',
    target: dev0,
    setup: withHwpt,
    arg: (e, s) => {
      const bytes = ATTACH.encode({ argsz: ATTACH.size, pt_id: s.pt });
      return { va: e.readOnly(bytes), bytes };
    },
    errno: U.EFAULT,
  },
  {
    name: '§3.8 an automatic domain that cannot be written back → EFAULT, the new auto HWPT is gone',
    target: dev0,
    setup: (e) => ({ pt: e.ioas(), other: 0, memfd: 0 }),
    arg: (e, s) => {
      const bytes = ATTACH.encode({ argsz: ATTACH.size, pt_id: s.pt });
      return { va: e.readOnly(bytes), bytes };
    },
    errno: U.EFAULT,
  },
] satisfies Row<C>[]);

const DETACH = U.vfio_device_detach_iommufd_pt;
const detach = (value: Record<string, number | bigint>) => ({ layout: DETACH, value: { argsz: DETACH.size, ...value } });

table('VFIO_DEVICE_DETACH_IOMMUFD_PT', U.VFIO_DEVICE_DETACH_IOMMUFD_PT, [
  { name: '§3.8 on a cdev fd that is not bound → EINVAL', bind: false, target: dev0, arg: () => detach({}), errno: U.EINVAL },
  { name: '§3.8 unreadable → EFAULT', target: dev0, arg: () => ({ va: UNMAPPED }), errno: U.EFAULT },
  { name: '§3.8 argsz < 8 → EINVAL', target: dev0, arg: () => detach({ argsz: 7 }), errno: U.EINVAL },
  { name: '§3.8 an unknown flag → EINVAL', target: dev0, arg: () => detach({ flags: 2 }), errno: U.EINVAL },
  { name: '§3.8 DETACH_PASID with argsz < 12 → EINVAL', target: dev0, arg: () => detach({ argsz: 8, flags: U.VFIO_DEVICE_DETACH_PASID, pasid: 5 }), errno: U.EINVAL },
  { name: '§3.8 detach of a device attached to nothing → 0, a no-op', target: dev0, arg: () => detach({}), errno: 0 },
  { name: '§3.8 detach of a PASID attached to nothing → 0, a no-op', target: dev0, arg: () => detach({ flags: U.VFIO_DEVICE_DETACH_PASID, pasid: 9 }), errno: 0 },
  { name: '§3.8 any other ioctl on a bound cdev → ENOTTY', target: dev0, request: 0x3b7f, arg: () => detach({}), errno: U.ENOTTY },
] satisfies Row<C>[]);
