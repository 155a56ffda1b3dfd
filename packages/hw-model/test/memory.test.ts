import { describe, expect, it } from 'vitest';
import { PhysicalMemory, PhysicalMemoryError, type MmioDevice } from '../src/index.js';

class RegFile implements MmioDevice {
  readonly log: string[] = [];
  value = 0x1122334455667788n;
  mmioRead(offset: number, size: 1 | 2 | 4 | 8): bigint {
    this.log.push(`r${size}@${offset}`);
    return this.value >> BigInt(8 * (offset & 7));
  }
  mmioWrite(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    this.log.push(`w${size}@${offset}=${value.toString(16)}`);
  }
}

describe('PhysicalMemory', () => {
  it('reads and writes RAM little-endian at every width', () => {
    const m = new PhysicalMemory();
    m.addRam(0x4000_0000n, 1n << 30n);
    m.write64(0x4000_1000n, 0x0102030405060708n);
    expect(m.read8(0x4000_1000n)).toBe(0x08);
    expect(m.read16(0x4000_1000n)).toBe(0x0708);
    expect(m.read32(0x4000_1004n)).toBe(0x01020304);
    expect(m.read64(0x4000_1000n)).toBe(0x0102030405060708n);
    m.write16(0x4000_1ffen, 0xbeef);
    m.write32(0x4000_1fffn, 0xaabbccdd); // crosses a page
    expect([...m.read(0x4000_1ffen, 5)]).toEqual([0xef, 0xdd, 0xcc, 0xbb, 0xaa]);
    expect(m.read64(0x7fff_f000n)).toBe(0n);
  });

  it('dispatches MMIO to the device with the region offset and size', () => {
    const m = new PhysicalMemory();
    const dev = new RegFile();
    m.addMmio(0x900_0000n, 0x2_0000n, dev);
    expect(m.read32(0x900_0004n)).toBe(0x11223344);
    m.write64(0x900_0010n, 0xabcn);
    m.write8(0x900_0001n, 0x1ff);
    expect(dev.log).toEqual(['r4@4', 'w8@16=abc', 'w1@1=ff']);
  });

  it('counts unclaimed accesses: reads zero, writes dropped', () => {
    const m = new PhysicalMemory();
    m.addRam(0n, 0x1000n);
    expect(m.read32(0x10_0000n)).toBe(0);
    m.write32(0x10_0000n, 5);
    expect(m.read32(0x10_0000n)).toBe(0);
    expect(m.unclaimedAccesses).toBe(3);
  });

  it('rejects overlapping or misaligned regions', () => {
    const m = new PhysicalMemory();
    m.addRam(0x1000n, 0x2000n);
    expect(() => m.addRam(0x2000n, 0x1000n)).toThrow(PhysicalMemoryError);
    expect(() => m.addRam(0x8000n, 0x800n)).toThrow(/4 KiB aligned/);
    expect(() => m.addMmio(0x2800n, 0x10n, new RegFile())).toThrow(/overlaps ram/);
  });

  it('allocates zeroed, aligned, contiguous pages and frees them', () => {
    const m = new PhysicalMemory();
    m.addRam(0x4000_0000n, 0x10_0000n);
    const [a] = m.allocPages(1);
    expect(a).toBe(0x4000_0000n);
    m.write32(a!, 0xdead);
    const b = m.allocPages(4, { align: 0x4000n });
    expect(b).toEqual([0x4000_4000n, 0x4000_5000n, 0x4000_6000n, 0x4000_7000n]);
    m.freePages([a!]);
    const [c] = m.allocPages(1);
    expect(c).toBe(a);
    expect(m.read32(c!)).toBe(0);
    expect(m.allocatedPages).toBe(5);
    expect(() => m.allocPages(0x101)).toThrow(/no 257 free contiguous/);
    expect(() => m.freePages([0x4008_0000n])).toThrow(/not allocated/);
    const scattered = m.allocPages(3, { contiguous: false });
    expect(scattered).toEqual([0x4000_1000n, 0x4000_2000n, 0x4000_3000n]);
  });

  it('tells whether the page of an address is allocated now', () => {
    const m = new PhysicalMemory();
    m.addRam(0x4000_0000n, 0x10_000n);
    const [a, b] = m.allocPages(2);
    expect([m.isAllocated(a!), m.isAllocated(b! + 0xfffn), m.isAllocated(b! + 0x1000n), m.isAllocated(0x1000n), m.isAllocated(-1n)]).toEqual([true, true, false, false, false]);
    m.freePages([a!]);
    expect([m.isAllocated(a!), m.isAllocated(a! + 8n), m.isAllocated(b!)]).toEqual([false, false, true]);
  });

  it('keeps free pages skipped by a contiguous allocation allocatable', () => {
    const m = new PhysicalMemory();
    m.addRam(0x1000n, 0x10_000n);
    const [a, b, c] = m.allocPages(3);
    m.freePages([a!, c!]);
    expect(m.allocPages(2)).toEqual([c, 0x4000n]); // a is free but alone
    expect(m.allocPages(1)).toEqual([a]);
    expect(m.allocPages(1)).toEqual([0x5000n]);
    expect(b).toBe(0x2000n);
  });

  it('stays first fit for multi-page runs: a freed page reopens the runs it completes', () => {
    const m = new PhysicalMemory();
    m.addRam(0x1000n, 0x20_000n);
    const [hole] = m.allocPages(1);
    const r1 = m.allocPages(4);
    const r2 = m.allocPages(4);
    const r3 = m.allocPages(4);
    m.freePages([hole!]); // a 1-page hole below every 4-page run: not enough for 4
    expect(m.allocPages(4)[0]).toBe(r3[3]! + 0x1000n);
    // Freeing the middle run makes it the first fit again, even below the hint.
    m.freePages(r2);
    expect(m.allocPages(4)).toEqual(r2);
    // A run completed by one freed page that is not its first: the last page of r1 plus
    // three pages of a freed r2-sized block starting at it.
    m.freePages(r2.slice(0, 3));
    m.freePages([r1[3]!]);
    expect(m.allocPages(4)).toEqual([r1[3]!, r2[0]!, r2[1]!, r2[2]!]);
    expect(m.allocPages(1)).toEqual([hole]);
  });

  it('keeps a single-page hole below a multi-page hint allocatable', () => {
    const m = new PhysicalMemory();
    m.addRam(0n, 0x100_000n);
    const singles = Array.from({ length: 10 }, () => m.allocPages(1)[0]!);
    expect(m.allocPages(2)).toEqual([0xa000n, 0xb000n]);
    m.freePages([singles[5]!]);
    expect(m.allocPages(2)).toEqual([0xc000n, 0xd000n]);
    expect(m.allocPages(2)).toEqual([0xe000n, 0xf000n]);
    expect(m.allocPages(1)).toEqual([0x5000n]);
  });
});
