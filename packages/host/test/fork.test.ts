// fork(2) and exit(2) of a HostProcess: what the child shares and copies, what exit tears
// down, and how a dead process's handle answers.
import { describe, expect, it } from 'vitest';
import {
  EBADF,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  iommu_ioas_alloc,
  iommu_ioas_map,
  MAP_ANONYMOUS,
  MOCK_APERTURE_START,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  VFIO_DEVICE_BIND_IOMMUFD,
  vfio_device_bind_iommufd,
} from '@iommufd/uapi';
import { createHost, HostError, type HostProcess } from '../src/index.js';
import { ProcessImpl } from '../src/process.js';
import { makeProcess } from './process-helpers.js';
import { Iommufd } from './selftest/helpers.js';

const P = 4096n;
const RW = PROT_READ | PROT_WRITE;


const byte = (p: HostProcess, va: bigint): number => (p.peek(va, 1) as Uint8Array)[0]!;

describe('fork: memory', () => {
  it('MAP_SHARED anonymous memory is the same pages in both, touched before or after the fork', () => {
    const { p } = makeProcess();
    const va = p.mmap(2n * P, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.poke(va, Uint8Array.of(1));
    const child = p.fork();
    expect(byte(child, va)).toBe(1);
    child.poke(va, Uint8Array.of(2));
    expect(byte(p, va)).toBe(2);
    // A page first touched after the fork is shared too (the shmem object is).
    p.poke(va + P, Uint8Array.of(3));
    expect(byte(child, va + P)).toBe(3);
    expect(p.kernel.pinPages(va, 2, false)).toEqual((child as ProcessImpl).kernel.pinPages(va, 2, false));
    expect(child.mappings()).toEqual(p.mappings());
    expect(p.mappings()).toEqual([{ start: va, end: va + 2n * P, prot: RW, shared: true, kind: 'anon' }]);
  });

  it('private memory is copied at fork: later writes stay in their process', () => {
    const { p, memory } = makeProcess();
    const va = p.mmap(P, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    p.poke(va, Uint8Array.of(5));
    const before = memory.pagesInUse;
    const child = p.fork();
    expect(memory.pagesInUse).toBe(before + 1);
    expect(byte(child, va)).toBe(5);
    child.poke(va, Uint8Array.of(6));
    p.poke(va, Uint8Array.of(7));
    expect([byte(p, va), byte(child, va)]).toEqual([7, 6]);
  });

  it('memfd mappings: shared ones share the file, private copies are copied', () => {
    const { p } = makeProcess();
    const fd = p.memfdCreate('ram', P);
    const shared = p.mmap(P, RW, MAP_SHARED, fd);
    const priv = p.mmap(P, RW, MAP_PRIVATE, fd);
    p.poke(priv, Uint8Array.of(9));
    const child = p.fork();
    child.poke(shared, Uint8Array.of(4));
    expect(byte(p, shared)).toBe(4);
    expect(byte(child, priv)).toBe(9);
    child.poke(priv, Uint8Array.of(8));
    expect(byte(p, priv)).toBe(9);
  });

  it('a driver MMIO mapping is held again by the child (vm_ops open) and closed by each on its own', () => {
    let opened = 0;
    let closed = 0;
    let released = 0;
    const { p } = makeProcess({
      '/dev/mmio': () => ({
        kind: '[mmio]',
        mmap: (length) => {
          opened++;
          return { physAddr: 0x4000_0000n, length, close: () => closed++ };
        },
        release: () => released++,
      }),
    });
    const fd = p.open('/dev/mmio');
    const va = p.mmap(P, RW, MAP_SHARED, fd);
    const child = p.fork();
    expect([opened, child.mappings().length]).toEqual([2, 1]);
    p.close(fd);
    child.close(fd);
    p.munmap(va, P);
    expect([closed, released]).toEqual([1, 0]);
    child.munmap(va, P);
    expect([closed, released]).toEqual([2, 1]);
  });
});

describe('fork: descriptors', () => {
  it('the child has the same fds on the same open files; a file goes with its last holder', () => {
    let released = 0;
    const { p } = makeProcess({ '/dev/x': () => ({ kind: '[x]', release: () => released++ }) });
    const fd = p.open('/dev/x');
    const mfd = p.memfdCreate('m', P);
    const child = p.fork();
    expect(child.fds()).toEqual(p.fds());
    expect(child.pid).toBe(2);
    expect(p.close(fd)).toBe(0);
    expect(released).toBe(0);
    expect(child.close(fd)).toBe(0);
    expect(released).toBe(1);
    // Descriptors are per process from now on.
    expect(child.close(fd)).toBe(-EBADF);
    expect(child.memfdCreate('n', P)).toBe(fd);
    expect(p.fds().map((f) => f.fd)).toEqual([mfd]);
  });
});

describe('exit', () => {
  it('tears down the address space, then closes every fd; the handle then throws PROCESS_EXITED', () => {
    let released = 0;
    const { p, memory } = makeProcess({ '/dev/x': () => ({ kind: '[x]', release: () => released++ }) });
    p.open('/dev/x');
    const va = p.mmap(P, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    p.poke(va, Uint8Array.of(1));
    p.exit();
    expect([released, memory.pagesInUse]).toEqual([1, 0]);
    expect(p.kernel.exited).toBe(true);
    expect(p.status()).toEqual({ pid: 1, state: 'exited', vmPinKiB: 0, vmLckKiB: 0 });
    const calls: (() => unknown)[] = [
      () => p.open('/dev/x'),
      () => p.close(3),
      () => p.ioctl(3, 0),
      () => p.read(3, new Uint8Array(1)),
      () => p.write(3, new Uint8Array(1)),
      () => p.poll(3),
      () => p.mmap(P, RW, MAP_PRIVATE | MAP_ANONYMOUS),
      () => p.munmap(va, P),
      () => p.poke(va, Uint8Array.of(1)),
      () => p.peek(va, 1),
      () => p.memfdCreate('m'),
      () => p.ftruncate(3, 0),
      () => p.fds(),
      () => p.mappings(),
      () => p.fork(),
    ];
    for (const call of calls) {
      expect(call).toThrow(HostError);
      expect(call).toThrow(/process 1 has exited/);
    }
    try {
      p.close(3);
    } catch (e) {
      expect((e as HostError).code).toBe('PROCESS_EXITED');
    }
    // A second exit does nothing.
    p.exit();
    expect(released).toBe(1);
  });

  it('pages the kernel pinned from a process outlive its exit', () => {
    const { p, memory, refs } = makeProcess();
    const va = p.mmap(P, RW, MAP_SHARED | MAP_ANONYMOUS);
    p.poke(va, Uint8Array.of(0x5a));
    const pin = p.kernel.pinPages(va, 1, true);
    if (typeof pin === 'number') throw new Error(`pin ${pin}`);
    p.exit();
    expect(memory.read(pin.pfns[0]! * P, 1)).toEqual(Uint8Array.of(0x5a));
    expect(refs.pinCount(pin.pfns[0]!)).toBe(1);
    p.kernel.unpinPages(pin.pfns);
    expect(memory.pagesInUse).toBe(0);
  });
});

describe('processes of a host', () => {
  it('a forked child issues ioctls on its copy of /dev/iommu: same context, its own memory pinned', async () => {
    const host = await createHost({ platform: 'mock', devices: 1 });
    const parent = host.process;
    const fd = parent.open('/dev/iommu');
    const alloc = new Uint8Array(iommu_ioas_alloc.size);
    iommu_ioas_alloc.encode({ size: iommu_ioas_alloc.size, flags: 0, out_ioas_id: 0 }, alloc);
    expect(parent.ioctl(fd, IOMMU_IOAS_ALLOC, alloc)).toBe(0);
    const ioas = iommu_ioas_alloc.decode(alloc).out_ioas_id;
    parent.credentials.capIpcLock = false;
    const child = parent.fork();
    expect(host.processes.map((p) => p.pid)).toEqual([1, 2]);
    expect(child.credentials.capIpcLock).toBe(false);
    const va = child.mmap(2n * P, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    const map = iommu_ioas_map.encode({
      size: iommu_ioas_map.size,
      flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
      ioas_id: ioas,
      user_va: va,
      length: 2n * P,
      iova: BigInt(MOCK_APERTURE_START),
    });
    expect(child.ioctl(fd, IOMMU_IOAS_MAP, map)).toBe(0);
    expect(host.objects(fd, child)).toEqual(host.objects(fd));
    // A domain the parent attaches pins the child's pages, charged to the child (VmPin) and
    // to the one user both run as.
    expect(new Iommufd(host, fd).mockDomain(ioas).rc).toBe(0);
    expect([parent.status().vmPinKiB, child.status().vmPinKiB]).toEqual([0, 8]);
    expect([parent.lockedPages, child.lockedPages]).toEqual([2, 2]);
    const spawned = host.spawnProcess();
    expect(spawned.pid).toBe(3);
    child.exit();
    expect(() => host.objects(fd, child)).toThrow(/process 2 has exited/);
    expect(host.pinnedPages).toBe(2);
    expect(host.processes.map((p) => p.status().state)).toEqual(['running', 'exited', 'running']);
    expect(parent.close(fd)).toBe(0);
    expect([host.pinnedPages, parent.lockedPages]).toEqual([0, 0]);
    expect(host.contexts().map((c) => c.released)).toEqual([true]);
  });

  it('a forked child binds a VFIO device through its copies of the fds, from its own memory', async () => {
    const host = await createHost({ platform: 'mock', devices: 1 });
    const parent = host.process;
    const iommufd = parent.open('/dev/iommu');
    const vfio = parent.open(host.vfioDevices[0]!);
    const child = parent.fork();
    // A struct only the child's memory holds (the ioctl copies it into a fresh mapping).
    child.mmap(64n * P, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    const bind = vfio_device_bind_iommufd.encode({ argsz: vfio_device_bind_iommufd.size, flags: 0, iommufd, out_devid: 0, token_uuid_ptr: 0n });
    expect(child.ioctl(vfio, VFIO_DEVICE_BIND_IOMMUFD, bind)).toBe(0);
    expect(host.boundDeviceId(host.vfioDevices[0]!)).toBe(vfio_device_bind_iommufd.decode(bind).out_devid);
    child.exit();
    // The parent's copies keep the binding until the last close.
    expect(host.boundDeviceId(host.vfioDevices[0]!)).toBe(1);
    expect(parent.close(vfio)).toBe(0);
    expect(host.boundDeviceId(host.vfioDevices[0]!)).toBeUndefined();
    expect(parent.close(iommufd)).toBe(0);
    expect(host.contexts().map((c) => c.released)).toEqual([true]);
  });

  it('a MAP_FILE mapping holds its memfd open: after its process exited, a new domain still maps the file pages', async () => {
    const host = await createHost({ platform: 'mock', devices: 0 });
    const t = new Iommufd(host, host.process.open('/dev/iommu'));
    const ioas = t.ioasAlloc();
    const child = host.process.fork();
    const c = t.as(child);
    const mfd = child.memfdCreate('guest-ram', P);
    child.poke(child.mmap(P, RW, MAP_SHARED, mfd), Uint8Array.of(0xc0, 0xff, 0xee));
    expect(c.mapFile(ioas, mfd, 0n, P, BigInt(MOCK_APERTURE_START)).rc).toBe(0);
    child.exit();
    // File pages are pinned whoever mapped them, and they are still the file's.
    expect(t.mockDomain(ioas).rc).toBe(0);
    const access = t.createAccess(ioas);
    const out = t.alloc(P);
    expect(t.accessRw(access.fd, BigInt(MOCK_APERTURE_START), out, 3n)).toBe(0);
    expect(t.p.peek(out, 3)).toEqual(Uint8Array.of(0xc0, 0xff, 0xee));
    expect(t.p.close(access.fd)).toBe(0);
    expect(t.close()).toBe(0);
    expect(host.pinnedPages).toBe(0);
  });
});
