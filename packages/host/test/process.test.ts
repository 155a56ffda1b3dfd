import { describe, expect, it } from 'vitest';
import { AddressSpace } from '../src/address-space.js';
import { EBADF, EFAULT, EINVAL, ENOENT } from '@iommufd/uapi';
import type { KernelFile } from '../src/kernel-types.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE } from '@iommufd/uapi';
import { PageRefs, ramMemory } from '../src/physical.js';
import { makeProcess } from './process-helpers.js';

const P = 4096n;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;


describe('address space', () => {
  it('anonymous memory reads zero, keeps writes, and allocates RAM only when touched', () => {
    const { p, memory } = makeProcess();
    const va = p.mmap(4n * P, RW, ANON);
    expect(va > 0n).toBe(true);
    expect(p.peek(va, 8)).toEqual(new Uint8Array(8));
    expect(memory.pagesInUse).toBe(0);
    expect(p.poke(va + P - 2n, Uint8Array.of(1, 2, 3, 4))).toBe(0);
    expect(memory.pagesInUse).toBe(2);
    expect(p.peek(va + P - 2n, 4)).toEqual(Uint8Array.of(1, 2, 3, 4));
  });

  it('returns -errno for bad mmap arguments and faults outside mappings', () => {
    const { p } = makeProcess();
    expect(p.mmap(0n, RW, ANON)).toBe(BigInt(-EINVAL));
    expect(p.mmap(P, RW, MAP_ANONYMOUS)).toBe(BigInt(-EINVAL));
    expect(p.mmap(P, RW, MAP_SHARED, 42)).toBe(BigInt(-EBADF));
    // Both MAP_SHARED and MAP_PRIVATE is MAP_SHARED_VALIDATE, which maps.
    expect(p.mmap(P, RW, MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS)).toBeGreaterThan(0n);
    expect(p.mmap(P, RW, ANON, -1, 5n)).toBe(BigInt(-EINVAL));
    expect(p.peek(0x1000n, 1)).toBe(-EFAULT);
    expect(p.poke(0x1000n, Uint8Array.of(1))).toBe(-EFAULT);
    expect(p.munmap(0x1001n, P)).toBe(-EINVAL);
  });

  it('enforces protection on the process and on kernel copies', () => {
    const { p } = makeProcess();
    const ro = p.mmap(P, PROT_READ, ANON);
    const none = p.mmap(P, PROT_NONE, ANON);
    expect(p.poke(ro, Uint8Array.of(1))).toBe(-EFAULT);
    expect(p.peek(none, 1)).toBe(-EFAULT);
    expect(p.kernel.copyToUser(ro, Uint8Array.of(1))).toBe(EFAULT);
    expect(p.kernel.copyFromUser(ro, 4)).toEqual(new Uint8Array(4));
    expect(p.kernel.pinPages(ro, 1, true)).toBe(EFAULT);
    expect(p.kernel.pinPages(none, 1, false)).toBe(EFAULT);
  });

  it('partial munmap splits a mapping and frees only the unmapped pages', () => {
    const { p, memory } = makeProcess();
    const va = p.mmap(4n * P, RW, ANON);
    for (let i = 0n; i < 4n; i++) p.poke(va + i * P, Uint8Array.of(Number(i) + 1));
    expect(p.munmap(va + P, 2n * P)).toBe(0);
    expect(p.mappings().map((m) => [m.start - va, m.end - va])).toEqual([
      [0n, P],
      [3n * P, 4n * P],
    ]);
    expect(memory.pagesInUse).toBe(2);
    expect(p.peek(va + P, 1)).toBe(-EFAULT);
    expect(p.peek(va + 3n * P, 1)).toEqual(Uint8Array.of(4));
  });

  it('a pinned page outlives munmap until it is unpinned', () => {
    const { p, memory, refs } = makeProcess();
    const va = p.mmap(2n * P, RW, ANON);
    const pin = p.kernel.pinPages(va, 2, true);
    if (typeof pin === 'number') throw new Error('pin failed');
    expect(pin.pfns.map((f) => refs.pinCount(f))).toEqual([1, 1]);
    p.munmap(va, 2n * P);
    expect(memory.pagesInUse).toBe(2);
    p.kernel.unpinPages(pin.pfns);
    expect(memory.pagesInUse).toBe(0);
  });

  it('MAP_FIXED replaces what was there', () => {
    const { p } = makeProcess();
    const va = p.mmap(2n * P, RW, ANON);
    p.poke(va, Uint8Array.of(9));
    expect(p.mmap(P, PROT_READ, ANON | MAP_FIXED, -1, 0n, va)).toBe(va);
    expect(p.peek(va, 1)).toEqual(Uint8Array.of(0));
    expect(p.poke(va, Uint8Array.of(1))).toBe(-EFAULT);
  });
});

describe('memfd', () => {
  it('shares pages between mappings and pins by file offset', () => {
    const { p } = makeProcess();
    const fd = p.memfdCreate('guest-ram', 4n * P);
    expect(fd).toBe(3);
    const a = p.mmap(4n * P, RW, MAP_SHARED, fd);
    const b = p.mmap(2n * P, RW, MAP_SHARED, fd, 2n * P);
    p.poke(a + 2n * P + 5n, Uint8Array.of(0xab));
    expect(p.peek(b + 5n, 1)).toEqual(Uint8Array.of(0xab));
    const file = p.kernel.fileForFd(fd);
    if (typeof file === 'number') throw new Error('no file');
    expect(file.size).toBe(4n * P);
    const pin = file.pinPages(2n, 1, false);
    if (typeof pin === 'number') throw new Error('pin failed');
    const viaVa = p.kernel.pinPages(b, 1, false);
    if (typeof viaVa === 'number') throw new Error('pin failed');
    expect(viaVa.pfns).toEqual(pin.pfns);
    expect(p.kernel.fileForFd(99)).toBe(EBADF);
  });

  it('private file mappings copy on write', () => {
    const { p } = makeProcess();
    const fd = p.memfdCreate('f', P);
    const shared = p.mmap(P, RW, MAP_SHARED, fd);
    const priv = p.mmap(P, RW, MAP_PRIVATE, fd);
    p.poke(shared, Uint8Array.of(7));
    expect(p.peek(priv, 1)).toEqual(Uint8Array.of(7));
    p.poke(priv, Uint8Array.of(8));
    expect(p.peek(shared, 1)).toEqual(Uint8Array.of(7));
    expect(p.peek(priv, 1)).toEqual(Uint8Array.of(8));
  });

  it('ftruncate shrinks the file and mapping beyond the end faults', () => {
    const { p } = makeProcess();
    const fd = p.memfdCreate('f', 2n * P);
    const va = p.mmap(2n * P, RW, MAP_SHARED, fd);
    expect(p.ftruncate(fd, P)).toBe(0);
    expect(p.poke(va + P, Uint8Array.of(1))).toBe(-EFAULT);
    expect(p.ftruncate(42, 0)).toBe(-EBADF);
  });
});

describe('fds', () => {
  it('open/close/ioctl return -errno and Uint8Array ioctl args are copied in and back', () => {
    let released = 0;
    const dev: KernelFile = {
      kind: '[test]',
      ioctl: (_req, arg) => {
        const r = proc.kernel.copyFromUser(arg, 4);
        if (typeof r === 'number') return -r;
        r[0] += 1;
        return proc.kernel.copyToUser(arg, r) === 0 ? 7 : -EFAULT;
      },
      release: () => {
        released++;
      },
    };
    const { p: proc } = makeProcess({ '/dev/test': () => dev });
    expect(proc.open('/dev/none')).toBe(-ENOENT);
    const fd = proc.open('/dev/test');
    expect(fd).toBe(3);
    const buf = Uint8Array.of(41, 0, 0, 0);
    expect(proc.ioctl(fd, 1, buf)).toBe(7);
    expect(buf[0]).toBe(42);
    expect(proc.ioctl(fd, 1, 0n)).toBe(-EFAULT);
    expect(proc.ioctl(99, 1, 0n)).toBe(-EBADF);
    expect(proc.read(fd, new Uint8Array(4))).toBe(-EINVAL);
    expect(proc.mappings()).toEqual([]);
    expect(proc.close(fd)).toBe(0);
    expect(released).toBe(1);
    expect(proc.close(fd)).toBe(-EBADF);
  });

  it('an mmap of a driver region keeps the file open and closes the region with its last piece', () => {
    let closed = 0;
    let released = 0;
    const { p, memory } = makeProcess({
      '/dev/mmio': () => ({
        kind: '[mmio]',
        mmap: (length) => ({ physAddr: 0x4000_0000n, length, close: () => closed++ }),
        release: () => released++,
      }),
    });
    memory.write(0x4000_1000n, Uint8Array.of(0xbe, 0xef));
    const fd = p.open('/dev/mmio');
    const va = p.mmap(2n * P, RW, MAP_SHARED, fd, P);
    expect(p.peek(va + P, 2)).toEqual(Uint8Array.of(0xbe, 0xef));
    expect(p.kernel.pinPages(va, 1, false)).toBe(EFAULT);
    p.close(fd);
    expect(released).toBe(0);
    p.munmap(va, P);
    expect(closed).toBe(0);
    p.munmap(va + P, P);
    expect(closed).toBe(1);
    expect(released).toBe(1);
  });
});

describe('AddressSpace in isolation', () => {
  it('places non-fixed mappings without overlap', () => {
    const memory = ramMemory(0x10_0000n, 1n << 20n);
    const mm = new AddressSpace(memory, new PageRefs(memory));
    const a = mm.mmap(0n, P, RW, ANON, { kind: 'anon' }) as bigint;
    const b = mm.mmap(0n, 3n * P, RW, ANON, { kind: 'anon' }) as bigint;
    expect(b >= a + P).toBe(true);
    const huge = mm.mmap(0n, 2n << 20n, RW, ANON, { kind: 'anon' }) as bigint;
    expect(huge % (2n << 20n)).toBe(0n);
  });
});
