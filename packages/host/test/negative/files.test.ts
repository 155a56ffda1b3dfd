// §3.4-§3.6 the uAPI beyond ioctls: read()/write() of the FAULT and vEVENTQ fds and mmap()
// of a driver MMIO region on /dev/iommu. Rejected calls change nothing.
import { PAGE, table, U, type Env, type Row } from './harness.js';

type F = { fd: number; offset: bigint; length: bigint };
const RW = U.PROT_READ | U.PROT_WRITE;

const faultFd = (e: Env): F => ({ fd: e.fault().fd, offset: 0n, length: 0n });

table('FAULT fd read/write', 0, [
  { name: '§3.5 read of a count that is not a multiple of 40 → ESPIPE', setup: faultFd, call: (e, s) => e.p.read(s.fd, new Uint8Array(39)), errno: U.ESPIPE },
  { name: '§3.5/§5.7 read with nothing pending → 0 (never blocks)', setup: faultFd, call: (e, s) => e.p.read(s.fd, new Uint8Array(40)), errno: 0 },
  { name: '§3.5 write of a size that is not a multiple of 8 → ESPIPE', setup: faultFd, call: (e, s) => e.p.write(s.fd, new Uint8Array(12)), errno: U.ESPIPE },
  {
    name: '§3.5 a response code other than SUCCESS/INVALID → EINVAL',
    setup: faultFd,
    call: (e, s) => e.p.write(s.fd, U.iommu_hwpt_page_response.encode({ cookie: 1, code: 2 })),
    errno: U.EINVAL,
  },
  {
    name: '§3.5 an unknown cookie → EINVAL',
    setup: faultFd,
    call: (e, s) => e.p.write(s.fd, U.iommu_hwpt_page_response.encode({ cookie: 77, code: 0 })),
    errno: U.EINVAL,
  },
  { name: '§3.5 an empty write → 0 (not an error, not -0)', setup: faultFd, call: (e, s) => e.p.write(s.fd, new Uint8Array(0)), errno: 0 },
] satisfies Row<F>[]);

table('vEVENTQ fd read/write', 0, [
  {
    name: '§3.4/§5.7 read of an empty queue → 0 (never blocks)',
    needsViommu: true,
    setup: (e) => ({ fd: e.veventq(e.viommu().viommu).fd, offset: 0n, length: 0n }),
    call: (e, s) => e.p.read(s.fd, new Uint8Array(64)),
    errno: 0,
  },
  {
    name: '§3.4 the fd has no write op → EINVAL',
    needsViommu: true,
    setup: (e) => ({ fd: e.veventq(e.viommu().viommu).fd, offset: 0n, length: 0n }),
    call: (e, s) => e.p.write(s.fd, new Uint8Array(8)),
    errno: U.EINVAL,
  },
] satisfies Row<F>[]);

const region = (e: Env): F => {
  const r = e.viommuWithRegion();
  return { fd: e.fd, offset: r.offset, length: r.length };
};
const mmap = (e: Env, length: bigint, prot: number, flags: number, offset: bigint) => Number(e.p.mmap(length, prot, flags, e.fd, offset));

table('mmap of /dev/iommu', 0, [
  { name: '§3.6 not MAP_SHARED → EINVAL', presets: ['mock'], setup: region, call: (e, s) => mmap(e, s.length, RW, U.MAP_PRIVATE, s.offset), errno: U.EINVAL },
  { name: '§3.6 PROT_EXEC → EPERM', presets: ['mock'], setup: region, call: (e, s) => mmap(e, s.length, RW | U.PROT_EXEC, U.MAP_SHARED, s.offset), errno: U.EPERM },
  {
    name: '§3.6 MAP_PRIVATE is checked before PROT_EXEC → EINVAL',
    presets: ['mock'],
    setup: region,
    call: (e, s) => mmap(e, s.length, RW | U.PROT_EXEC, U.MAP_PRIVATE, s.offset),
    errno: U.EINVAL,
  },
  { name: '§3.6/§5.5 offset 0 is never handed out → ENXIO', presets: ['mock'], setup: region, call: (e, s) => mmap(e, s.length, RW, U.MAP_SHARED, 0n), errno: U.ENXIO },
  { name: '§3.6 no region at all (no vIOMMU) → ENXIO', call: (e) => mmap(e, PAGE, RW, U.MAP_SHARED, PAGE), errno: U.ENXIO },
  { name: '§3.6 an offset inside the region (no partial maps) → ENXIO', presets: ['mock'], setup: region, call: (e, s) => mmap(e, PAGE, RW, U.MAP_SHARED, s.offset + PAGE), errno: U.ENXIO },
  { name: '§3.6 a length other than the registered one → ENXIO', presets: ['mock'], setup: region, call: (e, s) => mmap(e, PAGE, RW, U.MAP_SHARED, s.offset), errno: U.ENXIO },
  { name: 'mmap(2): an offset that is not page aligned → EINVAL', presets: ['mock'], setup: region, call: (e, s) => mmap(e, s.length, RW, U.MAP_SHARED, s.offset + 1n), errno: U.EINVAL },
] satisfies Row<F>[]);
