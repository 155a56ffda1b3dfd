import { EFFECT_KINDS, type Effect } from '@iommufd/queue-engine';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { smmuCommandOfRecord } from '../src/engine-consumers.js';
import {
  CMDQ_ERR,
  IOMMU_FACTORIES,
  PhysicalMemory,
  createVtdIommu,
  queueEngineFor,
  CMDQ_OP,
  EngineCommandQueueConsumer,
  EngineInvalidationQueueConsumer,
  SMMU_CMD_ATC_INV,
  SMMU_CMD_SYNC,
  SMMU_CMD_TLBI,
  SMMU_REG,
  VtdCcDesc,
  VtdDevTlbDesc,
  VtdPgrpRespDesc,
  VtdTsInvalidationQueueConsumer,
  VtdWaitDesc,
  createMachine,
  createMachineWithEngine,
  smmuCommandOfEffect,
  typescriptCommandQueueConsumer,
  vtdDescriptorOfEffect,
  type SmmuV3,
  type VtdIommu,
} from '../src/index.js';
import { QUEUE_CONSUMERS, withQueueConsumer } from './support/consumers.js';
import { SmmuDriver } from './support/smmu-driver.js';

const description = {
  ramBytes: 0x100_0000n,
  iommus: [
    { kind: 'smmuv3' as const, name: 'smmu', base: 0x900_0000n },
    { kind: 'vtd' as const, name: 'dmar', base: 0xfed9_0000n },
  ],
};
/** The VT-d unit's consumer (private: read for the test only). */
const vtdConsumer = (m: { iommus: ReadonlyMap<string, unknown> }) => (m.iommus.get('dmar') as unknown as { consumer: unknown }).consumer;

describe('machines consume their queues with the WebAssembly engine by default', () => {
  it('createMachine: engine consumers over the machine store, TypeScript ones on request', () => {
    const m = createMachine(description);
    expect(m.queueConsumers).toBe('engine');
    expect(m.queueEngine?.impl).toBe('wasm');
    expect(m.queueEngine?.store).toBe(m.memory.store);
    expect((m.iommus.get('smmu') as SmmuV3).commandQueueConsumer).toBeInstanceOf(EngineCommandQueueConsumer);
    expect(vtdConsumer(m)).toBeInstanceOf(EngineInvalidationQueueConsumer);
    const t = createMachine({ ...description, queueConsumers: 'typescript' });
    expect(t.queueConsumers).toBe('typescript');
    expect(t.queueEngine).toBeUndefined();
    expect((t.iommus.get('smmu') as SmmuV3).commandQueueConsumer).toBe(typescriptCommandQueueConsumer);
    expect(vtdConsumer(t)).toBeInstanceOf(VtdTsInvalidationQueueConsumer);
  });

  it('createMachineWithEngine loads the engine through createQueueEngine', async () => {
    const m = await createMachineWithEngine(description);
    expect(m.queueConsumers).toBe('engine');
    expect(m.queueEngine?.impl).toBe('wasm');
    expect((m.iommus.get('smmu') as SmmuV3).commandQueueConsumer).toBeInstanceOf(EngineCommandQueueConsumer);
  });

  it('factories called outside createMachine (as a host does) share the one engine of the memory store', () => {
    const memory = new PhysicalMemory();
    memory.addRam(0x4000_0000n, 0x10_0000n);
    const smmu = IOMMU_FACTORIES.smmuv3!({ memory, description: { kind: 'smmuv3', base: 0x900_0000n }, strict: false, seed: 0 }) as SmmuV3;
    const vtd = createVtdIommu({ memory, description: { kind: 'vtd', base: 0xfed9_0000n }, strict: false, seed: 0 });
    const engine = queueEngineFor(memory.store);
    expect(engine?.impl).toBe('wasm');
    expect((smmu.commandQueueConsumer as EngineCommandQueueConsumer).engine).toBe(engine);
    expect((vtdConsumer({ iommus: new Map([['dmar', vtd]]) }) as EngineInvalidationQueueConsumer).engine).toBe(engine);
    const ts = IOMMU_FACTORIES.smmuv3!({ memory, description: { kind: 'smmuv3', base: 0x900_0000n }, strict: false, seed: 0, queueConsumers: 'typescript' }) as SmmuV3;
    expect(ts.commandQueueConsumer).toBe(typescriptCommandQueueConsumer);
  });

  it('a consumer named in the IOMMU options wins over the machine engine', () => {
    const m = createMachine({
      ramBytes: 0x100_0000n,
      iommus: [
        { kind: 'smmuv3', name: 'smmu', base: 0x900_0000n, options: { commandQueueConsumer: typescriptCommandQueueConsumer } },
        { kind: 'vtd', name: 'dmar', base: 0xfed9_0000n, options: { queueConsumer: (c) => new VtdTsInvalidationQueueConsumer(c) } },
      ],
    });
    expect((m.iommus.get('smmu') as SmmuV3).commandQueueConsumer).toBe(typescriptCommandQueueConsumer);
    expect(vtdConsumer(m)).toBeInstanceOf(VtdTsInvalidationQueueConsumer);
    expect((m.iommus.get('dmar') as VtdIommu).kind).toBe('vtd');
  });
});

describe('engine ring mapping follows the memory', () => {
  const TLBI_ALL: [bigint, bigint] = [BigInt(CMDQ_OP.TLBI_NSNH_ALL), 0n];
  const SYNC_SEV: [bigint, bigint] = [SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: 2 })[0]!, 0n];

  it.each([0, 1])('a ring page (%i of 2) freed and allocated again is re-mapped, not read from its old frame', (page) => {
    const d = new SmmuDriver({ cmdqLog2: 9 });
    d.bringUp();
    d.issue(Array.from({ length: 10 }, () => SYNC_SEV));
    // allocPages hands out zeroed pages by dropping their frames: the ring page's frame goes away.
    const pa = d.cmdq + BigInt(page) * 0x1000n;
    d.mem.freePages([pa]);
    // Another page takes the freed frame (filled with illegal opcodes), then the ring page comes back in a new one.
    const elsewhere = 0x4fff_0000n;
    for (let i = 0n; i < 0x1000n; i += 16n) d.mem.write64(elsewhere + i, 0x7fn);
    expect(d.mem.allocPages(1)[0]).toBe(pa);
    const before = d.smmu.interrupts.sev;
    d.issue(Array.from({ length: 300 }, () => SYNC_SEV));
    expect(d.smmu.interrupts.sev).toBe(before + 300);
    expect(d.reg32(SMMU_REG.CMDQ_CONS)).toBe(d.reg32(SMMU_REG.CMDQ_PROD));
  });

  it('rings the engine cannot map (one entry; smaller than a page and not aligned to its size) are consumed all the same', () => {
    for (const [log2, offset] of [[0, 0n], [2, 0x20n]] as const) {
      const d = new SmmuDriver({ cmdqLog2: log2 });
      d.bringUp();
      // Move the ring to `offset` within its page (CMDQ_BASE is 32-byte aligned).
      d.cmdq += offset;
      d.w32(SMMU_REG.CR0, 0x1d & ~8);
      d.w64(SMMU_REG.CMDQ_BASE, d.cmdq | (1n << 62n) | BigInt(log2));
      d.w32(SMMU_REG.CMDQ_PROD, 0);
      d.w32(SMMU_REG.CMDQ_CONS, 0);
      d.w32(SMMU_REG.CR0, 0x1f);
      const before = d.smmu.commandCounts.get(CMDQ_OP.TLBI_NSNH_ALL) ?? 0;
      d.issue([TLBI_ALL]);
      expect(d.reg32(SMMU_REG.CMDQ_CONS) & 0x7f00_0000).toBe(0);
      expect(d.reg32(SMMU_REG.CMDQ_CONS) & ((2 << log2) - 1)).toBe(d.reg32(SMMU_REG.CMDQ_PROD));
      expect(d.smmu.commandCounts.get(CMDQ_OP.TLBI_NSNH_ALL)).toBe(before + 1);
    }
  });
});

describe('engine memory exhaustion', () => {
  it('queues beyond the engine reserve stay with the TypeScript consumer and still work', () => {
    const units = 120;
    const base = (i: number) => 0xf000_0000n + BigInt(i) * 0x1000n;
    const m = createMachine({ ramBytes: 0x100_0000n, iommus: Array.from({ length: units }, (_, i) => ({ kind: 'vtd' as const, base: base(i) })) });
    for (let i = 0; i < units; i++) {
      const ring = m.memory.allocPages(1)[0]!;
      const status = ring + 0x800n;
      m.memory.write64(base(i) + 0x90n, ring); // IQA: 128-bit descriptors, one page
      m.memory.write32(base(i) + 0x18n, 1 << 26); // GCMD.QIE
      m.memory.write64(ring, 0x5n | (1n << 5n) | (BigInt(i + 1) << 32n)); // wait, SW, data i + 1
      m.memory.write64(ring + 8n, status);
      m.memory.write64(base(i) + 0x88n, 0x10n); // IQT
      expect(m.memory.read32(status)).toBe(i + 1);
      expect(m.memory.read64(base(i) + 0x80n)).toBe(0x10n); // IQH
    }
  });
});

describe('consumption longer than one effect batch (256 records)', () => {
  it('a 400-command ring with an ATC_INV time-out after the first batch ends the same on both consumers', () => {
    const run = (consumer: (typeof QUEUE_CONSUMERS)[number]) =>
      withQueueConsumer(consumer, () => {
        const d = new SmmuDriver({ cmdqLog2: 9 });
        d.bringUp();
        const tlbi = (asid: number) => SMMU_CMD_TLBI.encode({ OPCODE: CMDQ_OP.TLBI_NH_ASID, ASID: asid }) as [bigint, bigint];
        const cmds: [bigint, bigint][] = Array.from({ length: 300 }, (_, i) => tlbi(i));
        cmds.push(SMMU_CMD_ATC_INV.encode({ OPCODE: CMDQ_OP.ATC_INV, SID: 8, SIZE: 52 }) as [bigint, bigint], ...Array.from({ length: 50 }, (_, i) => tlbi(i)));
        cmds.push([SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: 2 })[0]!, 0n]);
        d.machine.devices[0]!.atcInvalidationTimeout = true;
        d.issue(cmds);
        return { cons: d.reg32(SMMU_REG.CMDQ_CONS), gerror: d.reg32(SMMU_REG.GERROR), counts: [...d.smmu.commandCounts], sev: d.smmu.interrupts.sev };
      });
    const wasm = run('wasm');
    expect(wasm).toEqual(run('typescript'));
    // CONS stops on the CMD_SYNC (bring-up used 4 entries) with CERROR_ATC_INV_SYNC.
    expect(wasm.cons).toBe((4 + 351) | (CMDQ_ERR.ATC_INV_SYNC << 24));
  });
});

describe('effect records rebuild the commands and descriptors the engine executed', () => {
  const effect = (kind: number, fields: Record<string, bigint>): Effect => ({ kind, name: EFFECT_KINDS.get(kind)!.name, position: 0, fields });

  it('every effect kind of the engine has a rebuild rule', () => {
    for (const k of EFFECT_KINDS.values()) {
      const fields = Object.fromEntries(k.fields.map((f) => [f.name, /addr/i.test(f.name) ? 0x1000n : 1n]));
      const words = k.kind < 0x100 ? smmuCommandOfEffect(effect(k.kind, fields)) : vtdDescriptorOfEffect(effect(k.kind, fields));
      expect(Number(words[0]! & (k.kind < 0x100 ? 0xffn : 0xfn))).toBe(k.kind & 0xff);
    }
  });

  it('SMMU: addresses go back to their fields, VMID / SID as substituted', () => {
    const [dw0, dw1] = smmuCommandOfEffect(effect(CMDQ_OP.TLBI_NH_VA, { vmid: 5n, asid: 7n, addr: 0x1234_5000n, leaf: 1n, ttl: 2n, tg: 1n, num: 3n, scale: 4n }));
    expect(SMMU_CMD_TLBI.decode([dw0, dw1])).toMatchObject({ OPCODE: BigInt(CMDQ_OP.TLBI_NH_VA), VMID: 5n, ASID: 7n, ADDR: 0x12345n, LEAF: 1n, TTL: 2n, TG: 1n, NUM: 3n, SCALE: 4n });
    const atc = smmuCommandOfEffect(effect(CMDQ_OP.ATC_INV, { sid: 8n, ssid: 3n, ssv: 1n, global: 0n, addr: 0x8000n, size: 2n }));
    expect(SMMU_CMD_ATC_INV.decode(atc)).toMatchObject({ SID: 8n, SSID: 3n, SSV: 1n, ADDR: 8n, SIZE: 2n });
    const sync = smmuCommandOfEffect(effect(CMDQ_OP.CMD_SYNC, { cs: 1n, msh: 3n, msiAttr: 0xfn, msiData: 0xdead_beefn, msiAddr: 0x4000_0104n }));
    expect(SMMU_CMD_SYNC.decode(sync)).toMatchObject({ CS: 1n, MSH: 3n, MSIATTR: 0xfn, MSIDATA: 0xdead_beefn, MSIADDR: 0x4000_0104n >> 2n });
  });

  it('VT-d: split PFSID, in-place addresses, page-group private data', () => {
    const dev = vtdDescriptorOfEffect(effect(0x103, { sid: 0x10n, pfsid: 0xabcn, mip: 3n, addr: 0x7000n, size: 1n }));
    expect(VtdDevTlbDesc.decode(dev)).toMatchObject({ TYPE: 3, SID: 0x10, PFSID_LO: 0xc, PFSID_HI: 0xab, MIP: 3, S: 1, ADDR: 0x7000n });
    const wait = vtdDescriptorOfEffect(effect(0x105, { interruptFlag: 1n, statusWrite: 1n, fence: 0n, pageDrain: 0n, statusData: 2n, statusAddr: 0x4000_0008n }));
    expect(VtdWaitDesc.decode(wait)).toMatchObject({ TYPE: 5, IF: 1, SW: 1, SDATA: 2, SADDR: 0x4000_0008n });
    const cc = vtdDescriptorOfEffect(effect(0x101, { granularity: 3n, fm: 2n, did: 9n, sid: 0x18n }));
    expect(VtdCcDesc.decode(cc)).toMatchObject({ TYPE: 1, G: 3, FM: 2, DID: 9, SID: 0x18 });
    const resp = vtdDescriptorOfEffect(
      effect(0x109, { rid: 0x10n, code: 0xfn, pasidPresent: 1n, privatePresent: 1n, lpig: 1n, prgi: 0x55n, pasid: 4n, private0: 0x11n, private1: 0x22n }),
    );
    expect(VtdPgrpRespDesc.decode(resp)).toMatchObject({ TYPE: 9, RID: 0x10, RC: 0xf, P: 1, PDP: 1, LPIG: 1, PRGI: 0x55, PASID: 4, PRIV0: 0x11n, PRIV1: 0x22n });
    expect(resp).toHaveLength(4);
  });
});

describe('the consumer rebuilds each SMMU command from its effect record exactly', () => {
  it('matches smmuCommandOfEffect for every SMMU kind and any field values (32-bit-halves fast path)', () => {
    const kinds = [...EFFECT_KINDS.values()].filter((k) => k.kind < 0x100);
    const field = (width: number) => fc.bigInt({ min: 0n, max: (1n << BigInt(width)) - 1n });
    const effect = fc.constantFrom(...kinds).chain((k) =>
      fc.record({
        kind: fc.constant(k),
        position: fc.integer({ min: 0, max: 0xffff_ffff }),
        values: fc.tuple(...k.fields.map((f) => field(f.width))),
      }),
    );
    fc.assert(
      fc.property(effect, fc.integer({ min: 0, max: 3 }), ({ kind, position, values }, slot) => {
        const fields = Object.fromEntries(kind.fields.map((f, i) => [f.name, values[i]!]));
        const e: Effect = { kind: kind.kind, name: kind.name, position, fields };
        const words = [BigInt(kind.kind) | (BigInt(position) << 32n), 0n, 0n, 0n];
        kind.fields.forEach((f, i) => (words[f.word]! |= values[i]! << BigInt(f.lo)));
        const view = new DataView(new ArrayBuffer(32 * 4));
        words.forEach((w, i) => view.setBigUint64(32 * slot + 8 * i, w, true));
        expect(smmuCommandOfRecord(view, 32 * slot)).toEqual(smmuCommandOfEffect(e));
      }),
      { numRuns: 2000 },
    );
  });
  it('has no command for a VT-d kind', () => {
    const view = new DataView(new ArrayBuffer(32));
    view.setUint16(0, 0x101, true);
    expect(smmuCommandOfRecord(view, 0)).toBeUndefined();
  });
});
