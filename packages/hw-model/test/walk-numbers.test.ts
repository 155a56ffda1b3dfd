// The Number-based walk plumbing: PhysicalMemory.readRamWord, the VT-d fallback for memories
// without it, and the BigInt wrappers of the walkers.
import { describe, expect, it } from 'vitest';
import { PhysicalStore } from '@iommufd/queue-engine';
import { ARM_PTE, PhysicalMemory, VtdSsPte, walk, walkSecondStage, type MmioDevice, type StructureMemory, type Word64 } from '../src/index.js';

const regs: MmioDevice = { mmioRead: () => 0xffff_ffffn, mmioWrite: () => {} };

describe('PhysicalMemory.readRamWord', () => {
  it('reads RAM words as halves, zero from untouched RAM, and refuses MMIO, holes and a word past the end of RAM', () => {
    const m = new PhysicalMemory();
    m.addRam(0x1000n, 0x2000n);
    m.addMmio(0x10_0000n, 0x1000n, regs);
    m.write64(0x1ff8n, 0x8877_6655_4433_2211n);
    const out: Word64 = { lo: -1, hi: -1 };
    expect(m.readRamWord(0x1ff8, out)).toBe(true);
    expect(out).toEqual({ lo: 0x4433_2211, hi: 0x8877_6655 });
    expect(m.readRamWord(0x2000, out)).toBe(true); // RAM never written
    expect(out).toEqual({ lo: 0, hi: 0 });
    out.lo = 7;
    for (const pa of [0x10_0000, 0x3000, 0x0, 0x2ffc + 8]) expect(m.readRamWord(pa, out)).toBe(false);
    expect(out.lo).toBe(7); // untouched when not RAM
    expect(m.readRamWord(0x2ff8, out)).toBe(true);
  });

  it('sees writes made after the backing memory grew (the old buffer is detached)', () => {
    const m = new PhysicalMemory(new PhysicalStore({ reservedBytes: 0, initialFrames: 1 }));
    m.addRam(0n, 0x100_0000n);
    const out: Word64 = { lo: 0, hi: 0 };
    m.write64(0x0n, 5n);
    expect(m.readRamWord(0, out)).toBe(true);
    for (let i = 1; i < 4096; i++) m.write64(BigInt(i) * 0x1000n, BigInt(i)); // grows the WebAssembly memory
    m.write64(0x0n, 0x1_0000_0006n);
    expect(m.readRamWord(0, out)).toBe(true);
    expect(out).toEqual({ lo: 6, hi: 1 });
    expect(m.readRamWord(4095 * 0x1000, out)).toBe(true);
    expect(out).toEqual({ lo: 4095, hi: 0 });
  });
});

describe('walk wrappers', () => {
  it('the SMMUv3 walk refuses address sizes VMSAv8-64 does not have', () => {
    const m = new PhysicalMemory();
    m.addRam(0n, 0x10_0000n);
    const p = { stage: 2 as const, ttb: 0n, iaBits: 48, startLevel: 0, oaBits: 56, affd: false };
    expect(() => walk(m, p, 0n, (a) => ({ ok: true, pa: a }))).toThrow(/52 address bits/);
    expect(() => walk(m, { ...p, iaBits: 53, oaBits: 48 }, 0n, (a) => ({ ok: true, pa: a }))).toThrow(RangeError);
  });

  it('the SMMUv3 walk returns BigInt leaves and faults an input beyond iaBits (also one beyond 2^53)', () => {
    const m = new PhysicalMemory();
    m.addRam(0n, 0x10_0000n);
    // Level-1 block at index 1 of a level-1 table (start level 1, 39-bit input); AP = 0b01: read/write, EL0 too.
    m.write64(0x1008n, ARM_PTE.encode({ VALID: 1, AF: 1, AP: 1, OA: 0x8_0000_0000n >> 12n })[0]!);
    const p = { stage: 1 as const, ttb: 0x1000n, iaBits: 39, startLevel: 1, oaBits: 48, affd: false };
    const id = (a: bigint) => ({ ok: true as const, pa: a });
    expect(walk(m, p, 0x4000_1234n, id)).toEqual({ ok: true, leaf: { oa: 0x8_0000_0000n, size: 0x4000_0000n, perm: 31, global: true, level: 1 } });
    for (const ia of [1n << 39n, (1n << 60n) + 0x4000_1234n, -1n]) expect(walk(m, p, ia, id)).toEqual({ ok: false, fault: { id: 0x10, stage2: false } });
  });

  it('VT-d walks give the same leaf through a memory without readRamWord (isRam + read64)', () => {
    const m = new PhysicalMemory();
    m.addRam(0n, 0x10_0000n);
    const leaf = VtdSsPte.encode({ R: 1, W: 1, ADDR: 0x5_6000n })[0]!;
    for (const [at, v] of [[0x1000n, 0x2003n], [0x2000n, 0x3003n], [0x3000n, 0x4003n], [0x4000n + 8n * 5n, leaf]] as const) m.write64(at, v);
    const plain: StructureMemory = { read64: (pa) => m.read64(pa), write64: (pa, v) => m.write64(pa, v), write32: (pa, v) => m.write32(pa, v), isRam: (pa, len) => m.isRam(pa, len) };
    const params = (mem: StructureMemory) => ({ mem, haw: 48, root: 0x1000n, levels: 4, largePages: 3, accessDirty: true });
    const viaWords = walkSecondStage(params(m), 0x5abcn);
    expect(viaWords).toMatchObject({ ok: true, pa: 0x5_6000n, size: 0x1000n, read: true, write: true, leafAddr: 0x4028n });
    expect(walkSecondStage(params(plain), 0x5abcn)).toEqual(viaWords);
    // Beyond the 48-bit width, and a table outside RAM: the same failures both ways.
    for (const gpa of [1n << 48n, 1n << 63n]) expect(walkSecondStage(params(plain), gpa)).toEqual({ ok: false, why: 'beyond-width', level: 4 });
    expect(walkSecondStage({ ...params(plain), root: 0x20_0000n }, 0n)).toEqual(walkSecondStage({ ...params(m), root: 0x20_0000n }, 0n));
    expect(walkSecondStage({ ...params(m), root: 0x20_0000n }, 0n)).toEqual({ ok: false, why: 'access', level: 4 });
  });
});
