import { describe, expect, it } from 'vitest';
import {
  DmaError,
  PAGE_RESPONSE_LOG_LENGTH,
  PciDevice,
  PhysicalMemory,
  createMachine,
  requesterIdOf,
  type DmaRequest,
  type DmaTranslation,
  type DmaTranslator,
} from '../src/index.js';

/** Maps IOVA page n to PA 0x4010_0000 + n * 4 KiB for n < 4, faults above. */
class TableTranslator implements DmaTranslator {
  readonly requests: DmaRequest[] = [];
  translate(req: DmaRequest): DmaTranslation {
    this.requests.push(req);
    if (req.ats === 'translated') return { ok: true, pa: req.iova, pageSize: 0x1000n, writable: true };
    const page = req.iova >> 12n;
    if (page >= 4n) return { ok: false, fault: { kind: 'F_TRANSLATION', code: 0x10, iova: req.iova, write: req.write, recorded: true } };
    return { ok: true, pa: 0x4010_0000n + page * 0x1000n + (req.iova & 0xfffn), pageSize: 0x1000n, writable: page !== 2n };
  }
}

function setup(ats = false) {
  const mem = new PhysicalMemory();
  mem.addRam(0x4000_0000n, 0x100_0000n);
  const t = new TableTranslator();
  const dev = new PciDevice(mem, t, { bdf: { bus: 1, dev: 2, fn: 3 }, capabilities: { ats, pasid: { maxPasidLog2: 4, exec: false, priv: false } } });
  return { mem, t, dev };
}

describe('PciDevice', () => {
  it('encodes the requester ID and defaults the StreamID to it', () => {
    const { dev } = setup();
    expect(dev.requesterId).toBe(0x0113);
    expect(requesterIdOf({ bus: 0xff, dev: 31, fn: 7 })).toBe(0xffff);
    expect(dev.streamId).toBe(0x113);
    expect(dev.name).toBe('01:02.3');
  });

  it('splits transfers at page boundaries and moves data through memory', () => {
    const { mem, t, dev } = setup();
    const data = Uint8Array.from({ length: 0x20 }, (_, i) => i);
    expect(dev.dma({ iova: 0xff0n, length: 0x20, write: true, data, pasid: 3 })).toEqual({ ok: true });
    expect(t.requests.map((r) => [r.iova, r.pasid, r.streamId])).toEqual([
      [0xff0n, 3, 0x113],
      [0x1000n, 3, 0x113],
    ]);
    expect([...mem.read(0x4010_0ff0n, 0x10)]).toEqual([...data.subarray(0, 0x10)]);
    expect([...mem.read(0x4010_1000n, 0x10)]).toEqual([...data.subarray(0x10)]);
    const r = dev.dma({ iova: 0xff0n, length: 0x20, write: false });
    expect(r.ok && [...r.data!]).toEqual([...data]);
  });

  it('aborts at the first fault and reports bytes done', () => {
    const { dev } = setup();
    const r = dev.dma({ iova: 0x3800n, length: 0x1000, write: false });
    expect(r).toEqual({ ok: false, bytesDone: 0x800, fault: { kind: 'F_TRANSLATION', code: 0x10, iova: 0x4000n, write: false, recorded: true } });
  });

  it('keeps the last PAGE_RESPONSE_LOG_LENGTH page-group responses, oldest first (a bounded log)', () => {
    const { dev } = setup();
    for (let i = 0; i < PAGE_RESPONSE_LOG_LENGTH + 6; i++) dev.pageResponse(undefined, i & 0x1ff, i % 3);
    expect(dev.pageResponses).toHaveLength(PAGE_RESPONSE_LOG_LENGTH);
    expect(dev.pageResponses[0]).toEqual({ pasid: undefined, prgi: 6, code: 0 });
    expect(dev.pageResponses.at(-1)).toEqual({ pasid: undefined, prgi: (PAGE_RESPONSE_LOG_LENGTH + 5) & 0x1ff, code: (PAGE_RESPONSE_LOG_LENGTH + 5) % 3 });
  });

  it('rejects malformed operations with typed errors', () => {
    const { dev } = setup();
    expect(() => dev.dma({ iova: 0n, length: 4, write: true, data: new Uint8Array(3) })).toThrow(DmaError);
    expect(() => dev.dma({ iova: 0n, length: 4, write: false, pasid: 16 })).toThrow(/4-bit PASID width/);
    expect(() => new PciDevice(new PhysicalMemory(), new TableTranslator(), { bdf: { bus: 0, dev: 32, fn: 0 } })).toThrow(/invalid BDF/);
  });

  it('caches translations in the ATC when ATS is enabled until invalidated', () => {
    const { t, dev } = setup(true);
    dev.atsEnabled = true;
    const lookups = () => t.requests.filter((r) => r.ats !== 'translated');
    expect(dev.dma({ iova: 0x1000n, length: 8, write: false }).ok).toBe(true);
    expect(dev.dma({ iova: 0x1008n, length: 8, write: false }).ok).toBe(true);
    expect(lookups()).toEqual([{ requesterId: 0x113, streamId: 0x113, iova: 0x1000n, write: false, translationRequest: true }]);
    // The hit goes out as a translated transaction carrying the PA.
    expect(t.requests[1]).toEqual({ requesterId: 0x113, streamId: 0x113, iova: 0x4010_1008n, write: false, ats: 'translated' });
    expect(dev.atc!.entries()).toEqual([{ pasid: undefined, iova: 0x1000n, size: 0x1000n, pa: 0x4010_1000n, writable: true }]);
    dev.atcInvalidate(undefined, 0x1000n, 0x1000n);
    dev.dma({ iova: 0x1000n, length: 8, write: false });
    expect(lookups()).toHaveLength(2);
  });
});

describe('createMachine', () => {
  it('builds RAM and identity-mapped devices and validates names', () => {
    const m = createMachine({ ramBytes: 0x10_0000n, devices: [{ bdf: { bus: 0, dev: 1, fn: 0 } }] });
    m.memory.write32(0x4000_0010n, 0x12345678);
    const r = m.devices[0]!.dma({ iova: 0x4000_0010n, length: 4, write: false });
    expect(r.ok && [...r.data!]).toEqual([0x78, 0x56, 0x34, 0x12]);
    expect(() => createMachine({ ramBytes: 0x1000n, devices: [{ bdf: { bus: 0, dev: 1, fn: 0 }, iommu: 'nope' }] })).toThrow(/unknown IOMMU 'nope'/);
    expect(() => createMachine({ ramBytes: 0x1000n, iommus: [{ kind: 'vtd', base: 0xfed9_0000n }] }, {})).toThrow(/has no model/);
    // Options are typed by kind.
    // @ts-expect-error asidBits is 8 or 16
    expect(() => createMachine({ ramBytes: 0x1000n, iommus: [{ kind: 'smmuv3', base: 0x900_0000n, options: { asidBits: 12 } }] })).toThrow(/asidBits must be 8 or 16/);
  });
});
