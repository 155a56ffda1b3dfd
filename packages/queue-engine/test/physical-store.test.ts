import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PAGE_SIZE, PhysicalStore } from '../src/index.js';

describe('PhysicalStore', () => {
  it('reads untouched memory as zero without allocating', () => {
    const s = new PhysicalStore();
    expect(s.read64(0x1234_5678_0000n)).toBe(0n);
    expect(Array.from(s.read(0x10_0000_0000n, 8))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(s.framesInUse).toBe(0);
  });

  it('writes little-endian across a page boundary and allocates two frames', () => {
    const s = new PhysicalStore();
    const pa = 5n * BigInt(PAGE_SIZE) - 3n;
    s.write(pa, Uint8Array.of(1, 2, 3, 4, 5, 6));
    expect(s.framesInUse).toBe(2);
    expect(Array.from(s.read(pa, 6))).toEqual([1, 2, 3, 4, 5, 6]);
    s.write64(0x2000n, 0x0102030405060708n);
    expect(Array.from(s.read(0x2000n, 8))).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    expect(s.read32(0x2004n)).toBe(0x01020304);
  });

  it('keeps frame offsets stable across growth and reuses freed frames zeroed', () => {
    const s = new PhysicalStore({ initialFrames: 1 });
    const first = s.ensureFrame(7);
    s.write32(7 * PAGE_SIZE, 0xdeadbeef);
    for (let pfn = 100; pfn < 2100; pfn++) s.ensureFrame(pfn);
    expect(s.frameOffset(7)).toBe(first);
    expect(s.read32(7 * PAGE_SIZE)).toBe(0xdeadbeef);
    s.freeFrame(7);
    expect(s.read32(7 * PAGE_SIZE)).toBe(0);
    expect(s.ensureFrame(9)).toBe(first);
    expect(s.read32(9 * PAGE_SIZE)).toBe(0);
  });

  it('writes 32/64-bit values to a new page even when that grows the memory', () => {
    const s = new PhysicalStore({ reservedBytes: 0, initialFrames: 1 });
    s.ensureFrame(0);
    const grownBefore = s.memory.buffer.byteLength;
    // Fill the initial memory so the next frame forces grow().
    for (let pfn = 1; s.memory.buffer.byteLength === grownBefore && pfn < 64; pfn++) {
      if ((pfn + 1) * PAGE_SIZE > grownBefore) {
        s.write32(pfn * PAGE_SIZE, 0xcafef00d);
        expect(s.read32(pfn * PAGE_SIZE)).toBe(0xcafef00d);
        s.write64((pfn + 1) * PAGE_SIZE, 0x1122334455667788n);
        expect(s.read64((pfn + 1) * PAGE_SIZE)).toBe(0x1122334455667788n);
        break;
      }
      s.ensureFrame(pfn);
    }
    expect(s.memory.buffer.byteLength).toBeGreaterThan(grownBefore);
  });

  it('agrees with a Map model over random writes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ addr: fc.nat(1 << 24), value: fc.nat(255) }), { maxLength: 200 }),
        (writes) => {
          const s = new PhysicalStore({ initialFrames: 1 });
          const model = new Map<number, number>();
          for (const w of writes) {
            s.write(w.addr, Uint8Array.of(w.value));
            model.set(w.addr, w.value);
          }
          for (const [addr, value] of model) expect(s.read(addr, 1)[0]).toBe(value);
        },
      ),
    );
  });

  it('rejects a misaligned reserved area', () => {
    expect(() => new PhysicalStore({ reservedBytes: 100 })).toThrow(RangeError);
  });
});

describe('PhysicalStore.ensureContiguous', () => {
  it('places an untouched range back to back and keeps it stable', () => {
    const s = new PhysicalStore();
    const off = s.ensureContiguous(0x1000, 3);
    expect([s.frameOffset(0x1000), s.frameOffset(0x1001), s.frameOffset(0x1002)]).toEqual([off, off + PAGE_SIZE, off + 2 * PAGE_SIZE]);
    expect(s.ensureContiguous(0x1000, 3)).toBe(off);
    expect(s.ensureContiguous(0x1001, 2)).toBe(off + PAGE_SIZE);
  });

  it('returns -1 when frames already exist out of order', () => {
    const s = new PhysicalStore();
    s.ensureFrame(0x2001);
    s.ensureFrame(0x2000);
    expect(s.ensureContiguous(0x2000, 2)).toBe(-1);
    expect(() => s.ensureContiguous(0x2000, 0)).toThrow(RangeError);
  });
});
