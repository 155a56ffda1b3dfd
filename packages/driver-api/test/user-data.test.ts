import { describe, expect, it } from 'vitest';
import { defineStruct, u32, u64, E2BIG, EFAULT, EINVAL, ENOMEM } from '@iommufd/uapi';
import {
  copyStructFromUser,
  copyStructToUser,
  iommuCopyFullUserArrayBytes,
  iommuCopyStructFromFullUserArray,
  KMALLOC_MAX_SIZE,
  iommuCopyStructFromUser,
  iommuCopyStructFromUserArray,
  iommuCopyStructToUser,
  type UserMemory,
} from '../src/index.js';

/** A flat user address space at VA 0x1000 .. 0x2000; anything else faults. */
function userMemory(): UserMemory & { mem: Uint8Array } {
  const mem = new Uint8Array(0x1000);
  const base = 0x1000n;
  const inRange = (va: bigint, len: number) => va >= base && va + BigInt(len) <= base + 0x1000n;
  return {
    mem,
    copyFromUser(va, len) {
      if (!inRange(va, len)) return EFAULT;
      const o = Number(va - base);
      return mem.slice(o, o + len);
    },
    copyToUser(va, bytes) {
      if (!inRange(va, bytes.byteLength)) return EFAULT;
      mem.set(bytes, Number(va - base));
      return 0;
    },
  };
}

// Like iommu_viommu_selftest: in_data is the first-version minimum.
const drvData = defineStruct('drv_data', [u32('in_data'), u32('out_data'), u64('out_mmap_offset')]);
const TYPE = 0xdeadbeef;

describe('copyStructFromUser (top-level ioctl rule)', () => {
  it('zero-extends a short struct and accepts a long one with a zero tail', () => {
    const u = userMemory();
    u.mem.set([1, 2, 3, 4, 0, 0, 0, 0], 0);
    expect(copyStructFromUser(u, 8, 0x1000n, 4)).toEqual(new Uint8Array([1, 2, 3, 4, 0, 0, 0, 0]));
    expect(copyStructFromUser(u, 4, 0x1000n, 8)).toEqual(new Uint8Array([1, 2, 3, 4]));
  });
  it('rejects a non-zero tail with E2BIG and an unmapped byte with EFAULT', () => {
    const u = userMemory();
    u.mem[6] = 9;
    expect(copyStructFromUser(u, 4, 0x1000n, 8)).toBe(E2BIG);
    expect(copyStructFromUser(u, 8, 0x1ffcn, 8)).toBe(EFAULT);
  });
  it('copyStructToUser writes min(usize, ksize) and zeroes the rest', () => {
    const u = userMemory();
    u.mem.fill(0xff, 0, 8);
    expect(copyStructToUser(u, 0x1000n, 8, new Uint8Array([7, 7, 7, 7]))).toBe(0);
    expect([...u.mem.subarray(0, 9)]).toEqual([7, 7, 7, 7, 0, 0, 0, 0, 0]);
  });
});

describe('iommuCopyStructFromUser (driver data rule)', () => {
  it('rejects a type mismatch, a short and a LONG struct with EINVAL', () => {
    const u = userMemory();
    const d = (type: number, len: number) => ({ type, uptr: 0x1000n, len, user: u });
    expect(iommuCopyStructFromUser(drvData, d(1, 16), TYPE, 'in_data')).toBe(EINVAL);
    expect(iommuCopyStructFromUser(drvData, d(TYPE, 3), TYPE, 'in_data')).toBe(EINVAL);
    // Larger than the kernel struct is EINVAL even with a zero tail (unlike the ioctl rule).
    expect(iommuCopyStructFromUser(drvData, d(TYPE, 24), TYPE, 'in_data')).toBe(EINVAL);
  });
  it('copies a first-version struct and zero-fills the rest', () => {
    const u = userMemory();
    u.mem.set([0x78, 0x56, 0x34, 0x12, 0xaa], 0);
    expect(iommuCopyStructFromUser(drvData, { type: TYPE, uptr: 0x1000n, len: 4, user: u }, TYPE, 'in_data')).toEqual({
      in_data: 0x12345678,
      out_data: 0,
      out_mmap_offset: 0n,
    });
    expect(iommuCopyStructFromUser(drvData, { type: TYPE, uptr: 0x1ff8n, len: 16, user: u }, TYPE, 'in_data')).toBe(EFAULT);
  });
  it('copy-to-user applies the same length rules and writes the user length', () => {
    const u = userMemory();
    const d = { type: TYPE, uptr: 0x1000n, len: 8, user: u };
    expect(iommuCopyStructToUser(d, drvData, { in_data: 1, out_data: 2, out_mmap_offset: 3n }, TYPE, 'out_data')).toBe(0);
    expect([...u.mem.subarray(0, 12)]).toEqual([1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    expect(iommuCopyStructToUser({ ...d, len: 4 }, drvData, {}, TYPE, 'out_data')).toBe(EINVAL);
    expect(iommuCopyStructToUser({ ...d, len: 17 }, drvData, {}, TYPE, 'out_data')).toBe(EINVAL);
    expect(iommuCopyStructToUser({ ...d, type: 0 }, drvData, {}, TYPE, 'out_data')).toBe(EINVAL);
  });
});

describe('user arrays', () => {
  const entry = defineStruct('entry', [u32('flags'), u32('id'), u32('extra')], { minField: 'id' });
  it('per-index copy: index out of range and entry_num 0 are EINVAL', () => {
    const u = userMemory();
    u.mem.set([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0], 0);
    const arr = { type: TYPE, uptr: 0x1000n, entryLen: 8, entryNum: 2, user: u };
    expect(iommuCopyStructFromUserArray(entry, arr, TYPE, 1, 'id')).toEqual({ flags: 3, id: 4, extra: 0 });
    expect(iommuCopyStructFromUserArray(entry, arr, TYPE, 2, 'id')).toBe(EINVAL);
    expect(iommuCopyStructFromUserArray(entry, { ...arr, entryNum: 0 }, TYPE, 0, 'id')).toBe(EINVAL);
    expect(iommuCopyStructFromUserArray(entry, { ...arr, entryLen: 16 }, TYPE, 0, 'id')).toBe(EINVAL);
  });
  it('full-array copy: longer entries need zero tails (E2BIG), entry_num 0 and type mismatch EINVAL', () => {
    const u = userMemory();
    // Two 16-byte entries; the second has a non-zero byte past the kernel's 12.
    u.mem.set([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0], 0);
    u.mem.set([5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0], 16);
    const arr = { type: TYPE, uptr: 0x1000n, entryLen: 16, entryNum: 1, user: u };
    expect(iommuCopyStructFromFullUserArray(entry, arr, TYPE)).toEqual([{ flags: 1, id: 2, extra: 3 }]);
    expect(iommuCopyStructFromFullUserArray(entry, { ...arr, entryNum: 2 }, TYPE)).toBe(E2BIG);
    expect(iommuCopyStructFromFullUserArray(entry, { ...arr, entryNum: 0 }, TYPE)).toBe(EINVAL);
    expect(iommuCopyStructFromFullUserArray(entry, { ...arr, type: 5 }, TYPE)).toBe(EINVAL);
    // The caller's kcalloc of entry_num kernel entries fails first beyond KMALLOC_MAX_SIZE
    // (also for a wrong type), before any user byte is read.
    const reads: number[] = [];
    const counted = { ...arr, user: { copyFromUser: (va: bigint, len: number) => (reads.push(len), u.copyFromUser(va, len)), copyToUser: u.copyToUser } };
    expect(iommuCopyStructFromFullUserArray(entry, { ...counted, entryNum: 0xffff_ffff }, TYPE)).toBe(ENOMEM);
    expect(iommuCopyStructFromFullUserArray(entry, { ...counted, entryLen: 12, entryNum: 0x8000_0000, type: 5 }, TYPE)).toBe(ENOMEM);
    expect(reads).toEqual([]);
    // The largest array that fits is allocated: the copy runs (and faults past the mapping).
    expect(iommuCopyStructFromFullUserArray(entry, { ...counted, entryLen: 12, entryNum: Math.floor(KMALLOC_MAX_SIZE / 12) }, TYPE)).toBe(EFAULT);
    expect(reads).toEqual([Math.floor(KMALLOC_MAX_SIZE / 12) * 12]);
    expect(iommuCopyStructFromFullUserArray(entry, { ...arr, entryLen: 8, entryNum: 2 }, TYPE)).toEqual([
      { flags: 1, id: 2, extra: 0 },
      { flags: 3, id: 0, extra: 0 },
    ]);
  });
  it('full-array copy: entry_len == sizeof reads the whole array with one copy, same errno rules', () => {
    const u = userMemory();
    const calls: [bigint, number][] = [];
    const counted: UserMemory = {
      copyFromUser: (va, len) => (calls.push([va, len]), u.copyFromUser(va, len)),
      copyToUser: (va, bytes) => u.copyToUser(va, bytes),
    };
    for (let i = 0; i < 3; i++) u.mem.set([i + 1, 0, 0, 0, i + 10, 0, 0, 0, i + 20, 0, 0, 0], 0xff4 - 36 + 12 * i);
    const arr = { type: TYPE, uptr: 0x1fd0n, entryLen: 12, entryNum: 3, user: counted };
    expect(iommuCopyStructFromFullUserArray(entry, arr, TYPE)).toEqual([
      { flags: 1, id: 10, extra: 20 },
      { flags: 2, id: 11, extra: 21 },
      { flags: 3, id: 12, extra: 22 },
    ]);
    expect(calls).toEqual([[0x1fd0n, 36]]);
    // The last entry crosses the end of the mapping: EFAULT, as for the per-entry copies.
    expect(iommuCopyStructFromFullUserArray(entry, { ...arr, entryNum: 5 }, TYPE)).toBe(EFAULT);
    expect(iommuCopyStructFromFullUserArray(entry, { ...arr, uptr: 0xff8n }, TYPE)).toBe(EFAULT);
    calls.length = 0;
    expect(iommuCopyStructFromFullUserArray(entry, { ...arr, entryNum: 0 }, TYPE)).toBe(EINVAL);
    expect(iommuCopyStructFromFullUserArray(entry, { ...arr, type: 5 }, TYPE)).toBe(EINVAL);
    expect(calls).toEqual([]);
    // Longer entries still go entry by entry (each tail checked, E2BIG).
    u.mem.fill(0);
    u.mem.set([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 9], 0);
    expect(iommuCopyStructFromFullUserArray(entry, { ...arr, uptr: 0x1000n, entryLen: 16, entryNum: 2 }, TYPE)).toBe(E2BIG);
    expect(calls).toEqual([[0x1000n, 16]]);
  });
  it('full-array bytes: the kernel buffer (entry_num × sizeof), zero-extended or tail-checked, a copy the driver may rewrite', () => {
    const u = userMemory();
    const calls: [bigint, number][] = [];
    const aliasing: UserMemory = {
      // A user memory that hands out views of itself: the helper must still return its own copy.
      copyFromUser: (va, len) => (calls.push([va, len]), va >= 0x1000n && va + BigInt(len) <= 0x2000n ? u.mem.subarray(Number(va - 0x1000n), Number(va - 0x1000n) + len) : EFAULT),
      copyToUser: (va, bytes) => u.copyToUser(va, bytes),
    };
    u.mem.set([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0], 0);
    const arr = { type: TYPE, uptr: 0x1000n, entryLen: 12, entryNum: 2, user: aliasing };
    const same = iommuCopyFullUserArrayBytes(entry, arr, TYPE);
    expect(same).toEqual(new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0]));
    expect(calls).toEqual([[0x1000n, 24]]);
    (same as Uint8Array).fill(0xee);
    expect(u.mem[0]).toBe(1);
    // Shorter entries are zero-extended to sizeof, one copy per entry.
    calls.length = 0;
    expect(iommuCopyFullUserArrayBytes(entry, { ...arr, entryLen: 8 }, TYPE)).toEqual(new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]));
    expect(calls).toEqual([[0x1000n, 8], [0x1008n, 8]]);
    // Longer entries: a zero tail is dropped, a non-zero tail is E2BIG.
    expect(iommuCopyFullUserArrayBytes(entry, { ...arr, entryLen: 16, entryNum: 1 }, TYPE)).toBe(E2BIG);
    u.mem.fill(0, 12, 16);
    expect(iommuCopyFullUserArrayBytes(entry, { ...arr, entryLen: 16, entryNum: 1 }, TYPE)).toEqual(new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]));
    expect(iommuCopyFullUserArrayBytes(entry, { ...arr, uptr: 0x1ff0n }, TYPE)).toBe(EFAULT);
    calls.length = 0;
    expect(iommuCopyFullUserArrayBytes(entry, { ...arr, entryNum: 0 }, TYPE)).toBe(EINVAL);
    expect(iommuCopyFullUserArrayBytes(entry, { ...arr, type: 5 }, TYPE)).toBe(EINVAL);
    expect(calls).toEqual([]);
  });
});
