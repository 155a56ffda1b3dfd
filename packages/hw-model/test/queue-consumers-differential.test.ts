// Differential property: random command / descriptor rings through the TypeScript consumers
// and through the WebAssembly queue engine, on two machines built and driven identically,
// leave the same observable state after every doorbell: CONS / IQH, error registers, error
// maps, interrupts, every cache (TLB, config cache, ATC, context / PASID / IOTLB), page
// responses and the memory the MSI / status writes land in.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CMDQ_OP,
  CMDQV_CMDQ_ALLOC,
  SMMU_CD,
  SMMU_CMD,
  SMMU_CMD_ATC_INV,
  SMMU_CMD_CFGI_RANGE,
  SMMU_CMD_PRI_RESP,
  SMMU_CMD_SYNC,
  SMMU_CMD_TLBI,
  SMMU_REG,
  SMMU_STE,
  TEGRA241_CMDQV_REG as R,
  VINTF_CONFIG,
  VINTF_SID_MATCH,
  createMachine,
  type Tegra241Smmu,
} from '../src/index.js';
import { QUEUE_CONSUMERS, expectQueueConsumer, machineQueueConsumers, withQueueConsumer, type QueueConsumerName } from './support/consumers.js';
import { PageTables } from './support/smmu-driver.js';
import { LinuxVtd, QI, REG, SID, mapFs, req, sidOf } from './vtd-linux.js';

const BASE = 0x900_0000n;
const CMDQV = BASE + 0x20000n;
const IOVA = 0x10_0000n;
const PAGES = 8;
const U64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

// ------------------------------------------------------------------ SMMU + CMDQV

/** A Tegra241 SMMU with the main CMDQ, a host-owned VCMDQ (VINTF 0) and a guest VCMDQ (VINTF 1, VMID 5, vSID 1→8, 2→16). */
function smmuWorld() {
  const m = createMachine({
    ramBytes: 0x1000_0000n,
    queueConsumers: machineQueueConsumers(),
    iommus: [{ kind: 'tegra241-cmdqv', name: 's', base: BASE }],
    devices: [
      { bdf: { bus: 0, dev: 1, fn: 0 }, iommu: 's', capabilities: { ats: true, pri: true, pasid: { maxPasidLog2: 20, exec: false, priv: false } } },
      { bdf: { bus: 0, dev: 2, fn: 0 }, iommu: 's', capabilities: { ats: true } },
    ],
  });
  expectQueueConsumer(m);
  const mem = m.memory;
  const smmu = m.iommus.get('s') as Tegra241Smmu;
  const reg = (off: number) => BASE + BigInt(off);
  const cw32 = (off: number, v: number) => mem.write32(CMDQV + BigInt(off), v);
  const cr32 = (off: number) => mem.read32(CMDQV + BigInt(off));
  const alloc = () => mem.allocPages(1)[0]!;
  const strtab = alloc();
  mem.write64(reg(SMMU_REG.STRTAB_BASE), strtab);
  mem.write32(reg(SMMU_REG.STRTAB_BASE_CFG), 6);
  const cmdq = alloc();
  mem.write64(reg(SMMU_REG.CMDQ_BASE), cmdq | 8n);
  mem.write32(reg(SMMU_REG.CR0), 0b1001); // CMDQEN | SMMUEN
  const pt = new PageTables(mem, 1, 0, alloc);
  for (let i = 0; i < PAGES; i++) pt.map(IOVA + BigInt(i) * 0x1000n, alloc());
  for (const [sid, asid] of [[8, 1], [16, 2]] as const) {
    const cd = alloc();
    mem.write(cd, SMMU_CD.toBytes(SMMU_CD.encode({ T0SZ: 16, V: 1, IPS: 5, AA64: 1, R: 1, A: 1, ASID: asid, EPD1: 1, TTB0: pt.root >> 4n })));
    mem.write(strtab + BigInt(sid) * 64n, SMMU_STE.toBytes(SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cd >> 6n, S2VMID: 5, EATS: 1 })));
  }
  const msiPage = alloc();
  for (const d of m.devices) d.atsEnabled = true;
  // VCMDQ 0 = VINTF 0 LVCMDQ 0 (host-owned), VCMDQ 4 = VINTF 1 LVCMDQ 0 (guest).
  const vintf = (v: number, off: number) => R.VINTF_BASE + R.VINTF_STRIDE * v + off;
  cw32(vintf(0, R.VINTF_CONFIG), Number(VINTF_CONFIG.encode({ EN: 1, HYP_OWN: 1 })[0]));
  cw32(vintf(1, R.VINTF_CONFIG), Number(VINTF_CONFIG.encode({ EN: 1, VMID: 5 })[0]));
  [[1, 8], [2, 16]].forEach(([vsid, psid], slot) => {
    cw32(vintf(1, R.VINTF_SID_MATCH + 4 * slot), Number(VINTF_SID_MATCH.encode({ ENABLE: 1, VIRT_SID: vsid })[0]));
    cw32(vintf(1, R.VINTF_SID_REPLACE + 4 * slot), psid!);
  });
  cw32(R.CONFIG, 1);
  const vcmdq = (q: number, v: number) => {
    cw32(R.CMDQ_ALLOC + 4 * q, Number(CMDQV_CMDQ_ALLOC.encode({ ALLOCATED: 1, VINTF: v, LVCMDQ: 0 })[0]));
    const ring = alloc();
    const page0 = R.VINTF_PAGE0 + R.VINTF_PAGE_STRIDE * v;
    mem.write64(CMDQV + BigInt(page0 + 0x10000), ring | 8n);
    cw32(page0 + R.VCMDQ_CONFIG, 1);
    return {
      ring,
      prod: () => cr32(page0 + R.VCMDQ_PROD),
      setProd: (p: number) => cw32(page0 + R.VCMDQ_PROD, p),
      cons: () => cr32(page0 + R.VCMDQ_CONS),
      stopped: () => ((cr32(page0 + R.VCMDQ_GERROR) ^ cr32(page0 + R.VCMDQ_GERRORN)) & 1) === 1,
      ack: () => cw32(page0 + R.VCMDQ_GERRORN, cr32(page0 + R.VCMDQ_GERROR)),
    };
  };
  const queues = [
    {
      ring: cmdq,
      prod: () => mem.read32(reg(SMMU_REG.CMDQ_PROD)),
      setProd: (p: number) => mem.write32(reg(SMMU_REG.CMDQ_PROD), p),
      cons: () => mem.read32(reg(SMMU_REG.CMDQ_CONS)),
      stopped: () => ((mem.read32(reg(SMMU_REG.GERROR)) ^ mem.read32(reg(SMMU_REG.GERRORN))) & 1) === 1,
      ack: () => mem.write32(reg(SMMU_REG.GERRORN), mem.read32(reg(SMMU_REG.GERROR))),
    },
    vcmdq(0, 0),
    vcmdq(4, 1),
  ];
  /** Writes commands at PROD and rings the doorbell. */
  const issue = (q: number, cmds: readonly (readonly [bigint, bigint])[]) => {
    const queue = queues[q]!;
    let prod = queue.prod();
    for (const [a, b] of cmds) {
      mem.write64(queue.ring + BigInt((prod & 0xff) * 16), a);
      mem.write64(queue.ring + BigInt((prod & 0xff) * 16) + 8n, b);
      prod = (prod + 1) & 0x1ff;
    }
    queue.setProd(prod);
  };
  /** Linux's skip-err: the failed entry becomes a CMD_SYNC (CS = NONE), then GERRORN acknowledges. */
  const recover = (q: number) => {
    const queue = queues[q]!;
    if (!queue.stopped()) return;
    const at = queue.ring + BigInt((queue.cons() & 0xff) * 16);
    mem.write64(at, BigInt(CMDQ_OP.CMD_SYNC));
    mem.write64(at + 8n, 0n);
    queue.ack();
  };
  const probe = () =>
    m.devices.flatMap((d) => Array.from({ length: PAGES }, (_, i) => d.dma({ iova: IOVA + BigInt(i) * 0x1000n, length: 4, write: false })));
  const snapshot = () => ({
    cmdq: [mem.read32(reg(SMMU_REG.CMDQ_CONS)), mem.read32(reg(SMMU_REG.GERROR)), mem.read32(reg(SMMU_REG.GERRORN))],
    vcmdqs: queues.slice(1).map((q) => [q.cons(), q.stopped()]),
    errorMaps: [R.CMDQ_ERR_MAP, R.VINTF_ERR_MAP, vintf(0, R.VINTF_LVCMDQ_ERR_MAP), vintf(1, R.VINTF_LVCMDQ_ERR_MAP)].map(cr32),
    tlb: smmu.tlb.entries(),
    config: smmu.configCache.entries(),
    atc: m.devices.map((d) => d.atc?.entries()),
    pageResponses: m.devices.map((d) => [...d.pageResponses]),
    interrupts: { ...smmu.interrupts, cmdqv: smmu.cmdqv.interrupts },
    commandCounts: [...smmu.commandCounts].sort((a, b) => a[0] - b[0]),
    msi: [...mem.read(msiPage, 256)],
    unclaimed: mem.unclaimedAccesses,
  });
  return { m, msiPage, issue, recover, probe, snapshot };
}

type SmmuWorld = ReturnType<typeof smmuWorld>;

const SMMU_OPS = [...Object.values(CMDQ_OP), 0x00, 0x7f];
const TLBI_OPS: ReadonlySet<number> = new Set(Object.entries(CMDQ_OP).filter(([n]) => n.startsWith('TLBI_')).map(([, v]) => v));

const smmuCommand = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constantFrom(...SMMU_OPS),
      ssec: fc.nat(15).map((n) => n === 0),
      sid: fc.constantFrom(8, 16, 1, 2, 3),
      ssid: fc.nat(3),
      ssv: fc.boolean(),
      global: fc.boolean(),
      vmid: fc.constantFrom(0, 5, 6),
      asid: fc.constantFrom(1, 2, 3),
      page: fc.nat(PAGES + 1),
      tg: fc.nat(3),
      num: fc.nat(7),
      scale: fc.nat(3),
      ttl: fc.nat(3),
      leaf: fc.nat(1),
      range: fc.nat(31),
      size: fc.nat(53),
      cs: fc.nat(3),
      msiTarget: fc.constantFrom('ram', 'hole'),
      msiOffset: fc.nat(63),
      msiData: fc.nat(0xffff_ffff),
      prgi: fc.nat(511),
      resp: fc.nat(3),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom(...SMMU_OPS), dw0: U64, dw1: U64 }) },
);
type SmmuCommandSpec = typeof smmuCommand extends fc.Arbitrary<infer T> ? T : never;

function encodeSmmu(w: SmmuWorld, c: SmmuCommandSpec): [bigint, bigint] {
  if ('dw0' in c) return [(c.dw0 & ~0xffn) | BigInt(c.op), c.dw1];
  const addr = (IOVA + BigInt(c.page) * 0x1000n) >> 12n;
  let words: bigint[];
  if (TLBI_OPS.has(c.op)) {
    words = SMMU_CMD_TLBI.encode({ OPCODE: c.op, VMID: c.vmid, ASID: c.asid, ADDR: addr, TG: c.tg, NUM: c.num, SCALE: c.scale, TTL: c.ttl, LEAF: c.leaf });
  } else if (c.op === CMDQ_OP.ATC_INV) {
    words = SMMU_CMD_ATC_INV.encode({ OPCODE: c.op, SID: c.sid, SSID: c.ssid, SSV: c.ssv, GLOBAL: c.global, SIZE: c.size, ADDR: addr });
  } else if (c.op === CMDQ_OP.CMD_SYNC) {
    const msi = c.msiTarget === 'ram' ? w.msiPage + BigInt(c.msiOffset * 4) : 0x1000n;
    words = SMMU_CMD_SYNC.encode({ OPCODE: c.op, CS: c.cs, MSIDATA: c.msiData, MSIADDR: msi >> 2n });
  } else if (c.op === CMDQ_OP.CFGI_STE_RANGE) {
    words = SMMU_CMD_CFGI_RANGE.encode({ OPCODE: c.op, SID: c.sid, RANGE: c.range });
  } else if (c.op === CMDQ_OP.PRI_RESP) {
    words = SMMU_CMD_PRI_RESP.encode({ OPCODE: c.op, SID: c.sid, SSID: c.ssid, SSV: c.ssv, PRGI: c.prgi, RESP: c.resp });
  } else {
    words = SMMU_CMD.encode({ OPCODE: c.op, SID: c.sid, SSID: c.ssid, SSV: c.ssv, LEAF: c.leaf, ADDR: addr });
  }
  return [words[0]! | (c.ssec ? 1n << 10n : 0n), words[1]!];
}

const smmuStep = fc.record({
  queue: fc.nat(2),
  commands: fc.array(smmuCommand, { minLength: 1, maxLength: 12 }),
  // Often end with ATC_INV of device 0 (vSID 1 on the guest queue) + CMD_SYNC, so that time-outs meet a SYNC.
  atcThenSync: fc.nat(2).map((n) => n === 0),
  atcTimeout: fc.boolean(),
  probe: fc.boolean(),
});

/** ATC_INV of the whole ATC of StreamID `sid` followed by a CMD_SYNC without completion signal. */
const atcThenSync = (sid: number): [bigint, bigint][] => [
  SMMU_CMD_ATC_INV.encode({ OPCODE: CMDQ_OP.ATC_INV, SID: sid, SIZE: 52 }) as [bigint, bigint],
  [BigInt(CMDQ_OP.CMD_SYNC), 0n],
];

// ------------------------------------------------------------------ VT-d

const SID3 = sidOf(0, 3, 0);

/** A scalable-mode VT-d with two ATS endpoints, first-stage tables for PASIDs 0 and 1, and every cache warm. */
function vtdWorld(wide: boolean) {
  const v = new LinuxVtd({}, [
    { bus: 0, dev: 2, fn: 0, capabilities: { ats: true, pri: true, pasid: { maxPasidLog2: 20, exec: false, priv: false } } },
    { bus: 0, dev: 3, fn: 0, capabilities: { ats: true } },
  ], false, wide);
  v.bringUp();
  v.smContext(0, 0x10, { dte: true });
  v.smContext(0, 0x18, { dte: true });
  const root = v.page();
  for (let i = 0; i < PAGES; i++) mapFs(v, root, IOVA + BigInt(i) * 0x1000n, v.page(), { levels: 4 });
  v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 3, fsptptr: root }));
  v.setPasidEntry(SID, 1, LinuxVtd.pasidEntry({ pgtt: 1, did: 4, fsptptr: root }));
  v.setPasidEntry(SID3, 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 4, fsptptr: root }));
  for (const d of v.machine.devices) d.atsEnabled = true;
  const probe = () => [
    ...v.machine.devices.flatMap((d) => Array.from({ length: PAGES }, (_, i) => d.dma({ iova: IOVA + BigInt(i) * 0x1000n, length: 4, write: false }))),
    ...Array.from({ length: PAGES }, (_, i) => v.iommu.translate(req(IOVA + BigInt(i) * 0x1000n, false, { pasid: 1 }))),
  ];
  probe();
  /** The kernel's qi_check_fault recovery: a bad descriptor is overwritten by a wait; then FSTS is cleared. */
  const recover = () => {
    for (let guard = 0; guard < 512; guard++) {
      const fsts = v.r32(REG.FSTS);
      if ((fsts & 0x70) === 0) return;
      if (fsts & 0x10) {
        const at = v.iq + v.r64(REG.IQH);
        v.mem.write(at, new Uint8Array(32));
        v.mem.write64(at, 0x5n);
      }
      v.w32(REG.FSTS, fsts & 0x70);
    }
    throw new Error('the queue never recovered');
  };
  const snapshot = () => ({
    regs: [REG.IQH, REG.IQT, REG.IQER].map((r) => v.r64(r)),
    regs32: [REG.FSTS, REG.ICS, REG.FECTL, REG.IECTL].map((r) => v.r32(r)),
    interrupts: [...v.iommu.interrupts],
    context: v.iommu.caches.context.entries(),
    pasid: v.iommu.caches.pasid.entries(),
    iotlb: v.iommu.caches.iotlb.entries(),
    pageResponses: [...v.iommu.pageResponses],
    atc: v.machine.devices.map((d) => d.atc?.entries()),
    status: [...v.mem.read(v.statusPage, 256)],
    frcd: [0, 1, 2, 3].map((i) => v.frcd(i)),
  });
  return { v, probe, recover, snapshot };
}

const did = fc.constantFrom(3, 4, 9);
const pasid = fc.constantFrom(0, 1, 7);
const sid = fc.constantFrom(SID, SID3, 0x300);
const page = fc.nat(PAGES + 1).map((p) => IOVA + BigInt(p) * 0x1000n);
const am = fc.nat(4);
const vtdDescriptor = fc.oneof(
  fc.constant(QI.ccGlobal()),
  fc.tuple(did, sid, fc.nat(3)).map(([d, s, fm]) => QI.ccDevice(d, s, fm)),
  fc.constant(QI.iotlbGlobal()),
  did.map(QI.iotlbDsi),
  fc.tuple(did, page, am, fc.boolean()).map(([d, a, m, ih]) => QI.iotlbPsi(d, a, m, ih)),
  fc.tuple(did, pasid).map(([d, p]) => QI.piotlbAll(d, p)),
  fc.tuple(did, pasid, page, am).map(([d, p, a, m]) => QI.piotlbPsi(d, p, a, m)),
  fc.tuple(did, pasid).map(([d, p]) => QI.pcPasid(d, p)),
  did.map(QI.pcDomain),
  fc.constant(QI.pcGlobal()),
  fc.tuple(sid, page, am).map(([s, a, m]) => QI.devTlb(s, a, m)),
  fc.tuple(sid, pasid, page, am).map(([s, p, a, m]) => QI.pdevTlb(s, p, a, m)),
  fc.tuple(sid, fc.option(pasid), fc.constantFrom(0, 1, 0xf), fc.nat(511)).map(([r, p, code, prgi]) => QI.pageResponse(r, p ?? undefined, code, prgi)),
  fc.tuple(fc.nat(7), fc.nat(63), fc.nat(0xffff_ffff)).map(([flags, slot, data]) => [0x5n | (BigInt(flags) << 4n) | (BigInt(data) << 32n), BigInt(slot * 4)]),
  fc.constant([0x4n, 0n]),
  fc.tuple(fc.constantFrom(1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 0xan), U64, U64, fc.nat(7).map((n) => (n === 0 ? 1n : 0n))).map(([t, a, b, hi]) => [(a & ~0xfn) | t, b, hi, 0n]),
);

const vtdStep = fc.record({
  descriptors: fc.array(vtdDescriptor, { minLength: 1, maxLength: 10 }),
  inject: fc.option(fc.tuple(fc.constantFrom(SID, SID3), fc.constantFrom('timeout' as const, 'completion-error' as const)), { freq: 4 }),
  probe: fc.boolean(),
});

// ------------------------------------------------------------------ the properties

function pair<T>(build: () => T): Record<QueueConsumerName, T> {
  const [ts, wasm] = QUEUE_CONSUMERS.map((c) => withQueueConsumer(c, build));
  return { typescript: ts!, wasm: wasm! };
}

describe('TypeScript consumers and the WebAssembly queue engine agree (fast-check differential)', () => {
  it('SMMU CMDQ, host-owned and guest VCMDQs: same CONS, GERROR, error maps, caches, ATC, MSI writes after every doorbell', () => {
    // CONS.ERR codes and GERROR bits met on the way: the runs must reach every error path.
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.array(smmuStep, { minLength: 1, maxLength: 8 }), (steps) => {
        const w = pair(smmuWorld);
        for (const s of Object.values(w)) s.probe();
        for (const step of steps) {
          for (const s of Object.values(w)) {
            s.m.devices[0]!.atcInvalidationTimeout = step.atcTimeout;
            const tail = step.atcThenSync ? atcThenSync(step.queue === 2 ? 1 : 8) : [];
            s.issue(step.queue, [...step.commands.map((c) => encodeSmmu(s, c)), ...tail]);
            s.m.devices[0]!.atcInvalidationTimeout = false;
          }
          const after = w.wasm.snapshot();
          expect(after).toEqual(w.typescript.snapshot());
          for (const cons of [after.cmdq[0]!, ...after.vcmdqs.map((q) => q[0] as number)]) seen.add(`ERR${cons >>> 24}`);
          if ((after.cmdq[1]! ^ after.cmdq[2]!) & 0x10) seen.add('MSI_CMDQ_ABT');
          for (const s of Object.values(w)) s.recover(step.queue);
          expect(w.wasm.snapshot()).toEqual(w.typescript.snapshot());
          if (step.probe) expect(w.wasm.probe()).toEqual(w.typescript.probe());
        }
      }),
      { numRuns: 120 },
    );
    expect([...seen].sort()).toEqual(['ERR0', 'ERR1', 'ERR3', 'MSI_CMDQ_ABT']);
  });

  it.each([
    ['256-bit', true],
    ['128-bit', false],
  ])('VT-d invalidation queue (%s descriptors): same IQH, FSTS, IQER, ICS, interrupts, caches, device-TLBs, status writes after every IQT write', (_, wide) => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.array(vtdStep, { minLength: 1, maxLength: 8 }), (steps) => {
        const w = pair(() => vtdWorld(wide));
        for (const step of steps) {
          for (const s of Object.values(w)) {
            if (step.inject !== null) s.v.iommu.injectDeviceTlbError(...step.inject);
            // Wait status addresses are offsets into the status page.
            s.v.enqueue(step.descriptors.map((d) => ((d[0]! & 0xfn) === 5n && (d[0]! & 0xe00n) === 0n && d[1]! < 256n ? [d[0]!, s.v.statusPage + d[1]!, ...d.slice(2)] : d)));
          }
          const after = w.wasm.snapshot();
          expect(after).toEqual(w.typescript.snapshot());
          for (const [bit, name] of [[0x10, 'IQE'], [0x20, 'ICE'], [0x40, 'ITE']] as const) if (after.regs32[0]! & bit) seen.add(name);
          if (after.regs32[1]! & 1) seen.add('IWC');
          for (const s of Object.values(w)) s.recover();
          expect(w.wasm.snapshot()).toEqual(w.typescript.snapshot());
          if (step.probe) expect(w.wasm.probe()).toEqual(w.typescript.probe());
        }
      }),
      { numRuns: 120 },
    );
    expect([...seen].sort()).toEqual(['ICE', 'IQE', 'ITE', 'IWC']);
  });
});
