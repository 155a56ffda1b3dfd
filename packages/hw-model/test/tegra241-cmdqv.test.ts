import { describe, expect, it } from 'vitest';
import {
  CMD_SYNC_CS,
  CMDQ_ERR,
  CMDQ_OP,
  CMDQV_CMDQ_ALLOC,
  CMDQV_PARAM,
  SMMU_CD,
  SMMU_CMD,
  SMMU_CMD_ATC_INV,
  SMMU_CMD_SYNC,
  SMMU_CMD_TLBI,
  SMMU_REG,
  SMMU_STE,
  TEGRA241_CMDQV_REG as R,
  Tegra241Smmu,
  VINTF_CONFIG,
  VINTF_SID_MATCH,
  createMachine,
} from '../src/index.js';
import { QUEUE_CONSUMERS, expectQueueConsumer, machineQueueConsumers, useQueueConsumer } from './support/consumers.js';
import { PageTables } from './support/smmu-driver.js';


const BASE = 0x900_0000n;
const CMDQV = BASE + 0x20000n;

function setup() {
  const m = createMachine({
    ramBytes: 0x1000_0000n,
    queueConsumers: machineQueueConsumers(),
    iommus: [{ kind: 'tegra241-cmdqv', name: 's', base: BASE }],
    devices: [{ bdf: { bus: 0, dev: 1, fn: 0 }, iommu: 's', capabilities: { ats: true } }],
  });
  expectQueueConsumer(m);
  const mem = m.memory;
  const smmu = m.iommus.get('s') as Tegra241Smmu;
  const w32 = (off: number, v: number) => mem.write32(CMDQV + BigInt(off), v);
  const r32 = (off: number) => mem.read32(CMDQV + BigInt(off));
  // Minimal SMMU bring-up: linear stream table, CMDQ, SMMUEN.
  const strtab = mem.allocPages(1)[0]!;
  mem.write64(BASE + BigInt(SMMU_REG.STRTAB_BASE), strtab);
  mem.write32(BASE + BigInt(SMMU_REG.STRTAB_BASE_CFG), 6);
  mem.write32(BASE + BigInt(SMMU_REG.CR0), 1);
  // One S1 STE on SID 8, ASID 1, VMID 5 tag.
  const alloc = () => mem.allocPages(1)[0]!;
  const pt = new PageTables(mem, 1, 0, alloc);
  const page = alloc();
  pt.map(0x1000n, page);
  const cd = alloc();
  mem.write(cd, SMMU_CD.toBytes(SMMU_CD.encode({ T0SZ: 16, V: 1, IPS: 5, AA64: 1, R: 1, A: 1, ASID: 1, EPD1: 1, TTB0: pt.root >> 4n })));
  mem.write(strtab + 8n * 64n, SMMU_STE.toBytes(SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cd >> 6n, S2VMID: 5, EATS: 1 })));
  // Static global↔logical assignment (2 VCMDQs per VINTF here: 16 queues / 4 VINTFs = 4).
  for (let q = 0; q < 16; q++) w32(R.CMDQ_ALLOC + 4 * q, Number(CMDQV_CMDQ_ALLOC.encode({ VINTF: q >> 2, LVCMDQ: q & 3 })[0]));
  w32(R.CONFIG, 1);
  const queue = (v: number, lidx: number) => {
    const q = v * 4 + lidx;
    w32(R.CMDQ_ALLOC + 4 * q, r32(R.CMDQ_ALLOC + 4 * q) | 1);
    const ring = mem.allocPages(1)[0]!;
    mem.write64(CMDQV + BigInt(R.VINTF_PAGE0 + R.VINTF_PAGE_STRIDE * v + 0x10000 + R.VCMDQ_STRIDE * lidx), ring | 8n);
    const page0 = R.VINTF_PAGE0 + R.VINTF_PAGE_STRIDE * v + R.VCMDQ_STRIDE * lidx;
    let prod = 0;
    return {
      ring,
      page0,
      q,
      enable: () => w32(page0 + R.VCMDQ_CONFIG, 1),
      push: (...cmds: (readonly [bigint, bigint])[]) => {
        for (const [a, b] of cmds) {
          mem.write64(ring + BigInt((prod & 0xff) * 16), a);
          mem.write64(ring + BigInt((prod & 0xff) * 16) + 8n, b);
          prod = (prod + 1) & 0x1ff;
        }
        w32(page0 + R.VCMDQ_PROD, prod);
      },
      cons: () => r32(page0 + R.VCMDQ_CONS),
    };
  };
  const t = () => smmu.translate({ requesterId: 8, streamId: 8, iova: 0x1000n, write: false });
  return { m, mem, smmu, w32, r32, queue, pt, t };
}

const SYNC: [bigint, bigint] = [BigInt(CMDQ_OP.CMD_SYNC), 0n];

describe.each(QUEUE_CONSUMERS)('%s queue consumer', (consumer) => {
  useQueueConsumer(consumer);

  describe('Tegra241 CMDQV', () => {
    it('reports PARAM, enable handshake and the VINTF/VCMDQ page map', () => {
      const { r32, w32, smmu, m } = setup();
      expect(CMDQV_PARAM.decode([BigInt(r32(R.PARAM))])).toEqual({ VER: 1n, NUM_VCMDQ_LOG2: 4n, NUM_VINTF_LOG2: 2n, NUM_SID_PER_VM_LOG2: 4n });
      expect(r32(R.STATUS)).toBe(1);
      expect(smmu.cmdqv.mmioSize).toBe(0xb0000n);
      expect(m.memory.regionAt(CMDQV + 0xaffffn)?.kind).toBe('mmio');
      w32(R.VINTF_BASE + R.VINTF_CONFIG, Number(VINTF_CONFIG.encode({ EN: 1, HYP_OWN: 1 })[0]));
      expect(r32(R.VINTF_BASE + R.VINTF_STATUS) & 1).toBe(1);
    });

    it('a host-owned VINTF queue executes any command on the SMMU', () => {
      const { w32, queue, t, pt, r32 } = setup();
      w32(R.VINTF_BASE + R.VINTF_CONFIG, Number(VINTF_CONFIG.encode({ EN: 1, HYP_OWN: 1 })[0]));
      const q = queue(0, 0);
      q.enable();
      expect(r32(q.page0 + R.VCMDQ_STATUS)).toBe(1);
      expect(t().ok).toBe(true);
      pt.map(0x1000n, 0n, 3, { af: false });
      q.push(SMMU_CMD.encode({ OPCODE: CMDQ_OP.CFGI_STE, SID: 8 }) as [bigint, bigint], SMMU_CMD_TLBI.encode({ OPCODE: CMDQ_OP.TLBI_NH_ASID, VMID: 5, ASID: 1 }) as [bigint, bigint], SYNC);
      expect(q.cons()).toBe(3);
      expect(t()).toMatchObject({ ok: false, fault: { kind: 'F_ACCESS' } });
      // The same queue through the global VCMDQ page0 view.
      expect(r32(R.VCMDQ_PAGE0 + R.VCMDQ_CONS)).toBe(3);
      expect(r32(R.VINTF_BASE + R.VINTF_STATUS) >>> 16).toBe(1);
    });

    it('a guest VINTF stamps its VMID into TLBIs and swaps vSID for pSID in ATC_INV', () => {
      const { w32, queue, t, pt, m, smmu } = setup();
      w32(R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_CONFIG, Number(VINTF_CONFIG.encode({ EN: 1, VMID: 5, HYP_OWN: 0 })[0]));
      w32(R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_SID_MATCH, Number(VINTF_SID_MATCH.encode({ ENABLE: 1, VIRT_SID: 0x100 })[0]));
      w32(R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_SID_REPLACE, 8);
      const q = queue(1, 0);
      q.enable();
      expect(t().ok).toBe(true);
      pt.map(0x1000n, 0n, 3, { af: false });
      q.push(SMMU_CMD_TLBI.encode({ OPCODE: CMDQ_OP.TLBI_NH_ASID, VMID: 0x77, ASID: 1 }) as [bigint, bigint], SYNC);
      expect(q.cons()).toBe(2);
      expect(t()).toMatchObject({ ok: false });
      const dev = m.devices[0]!;
      dev.atsEnabled = true;
      dev.atc!.insert({ pasid: undefined, iova: 0x5000n, size: 0x1000n, pa: 0n, writable: true });
      q.push(SMMU_CMD_ATC_INV.encode({ OPCODE: CMDQ_OP.ATC_INV, SID: 0x100, SIZE: 52 }) as [bigint, bigint], SYNC);
      expect(dev.atc!.entries()).toEqual([]);
      expect(smmu.commandCounts.get(CMDQ_OP.ATC_INV)).toBe(1);
    });

    it('a guest queue rejects other commands and unmatched vSIDs with CERROR_ILL and reports its own error maps', () => {
      const { w32, r32, queue, smmu } = setup();
      w32(R.VINTF_BASE + 2 * R.VINTF_STRIDE + R.VINTF_CONFIG, Number(VINTF_CONFIG.encode({ EN: 1, VMID: 9 })[0]));
      queue(2, 0).enable();
      const q = queue(2, 1);
      q.enable();
      q.push(SMMU_CMD.encode({ OPCODE: CMDQ_OP.CFGI_STE, SID: 8 }) as [bigint, bigint], SYNC);
      expect(q.cons()).toBe(CMDQ_ERR.ILL << 24);
      expect(r32(q.page0 + R.VCMDQ_GERROR) ^ r32(q.page0 + R.VCMDQ_GERRORN)).toBe(1);
      expect(r32(R.VINTF_BASE + 2 * R.VINTF_STRIDE + R.VINTF_LVCMDQ_ERR_MAP)).toBe(2);
      expect(r32(R.CMDQ_ERR_MAP)).toBe(1 << q.q);
      expect(r32(R.VINTF_ERR_MAP)).toBe(4);
      expect(r32(R.VINTF_BASE + 2 * R.VINTF_STRIDE + R.VINTF_STATUS) & 0xe).toBe(2);
      expect(smmu.cmdqv.interrupts).toBe(1);
      expect(smmu.commandCounts.get(CMDQ_OP.CFGI_STE)).toBeUndefined();
      // The guest overwrites the entry with a SYNC and acknowledges through its own page.
      const mem = smmu.memory;
      mem.write64(q.ring, SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC })[0]!);
      w32(q.page0 + R.VCMDQ_GERRORN, r32(q.page0 + R.VCMDQ_GERROR));
      expect(q.cons() & 0xfffff).toBe(2);
      expect(r32(R.VINTF_ERR_MAP)).toBe(0);
      expect(r32(R.CMDQ_ERR_MAP)).toBe(0);
      q.push(SMMU_CMD_ATC_INV.encode({ OPCODE: CMDQ_OP.ATC_INV, SID: 0x999, SIZE: 52 }) as [bigint, bigint]);
      expect(q.cons()).toBe(2 | (CMDQ_ERR.ILL << 24));
    });

    it('a guest queue’s CMD_SYNC with CS=IRQ completes without its MSI write; a host-owned queue’s writes MSIData', () => {
      const { w32, queue, mem } = setup();
      const target = mem.allocPages(1)[0]!;
      mem.write32(target, 0x1111_1111);
      const msiSync = SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: CMD_SYNC_CS.IRQ, MSIDATA: 0xdead_beefn, MSIADDR: target >> 2n }) as [bigint, bigint];
      w32(R.VINTF_BASE + R.VINTF_STRIDE + R.VINTF_CONFIG, Number(VINTF_CONFIG.encode({ EN: 1, VMID: 5, HYP_OWN: 0 })[0]));
      const guest = queue(1, 0);
      guest.enable();
      guest.push(msiSync);
      expect(guest.cons()).toBe(1);
      expect(mem.read32(target)).toBe(0x1111_1111);
      w32(R.VINTF_BASE + R.VINTF_CONFIG, Number(VINTF_CONFIG.encode({ EN: 1, HYP_OWN: 1 })[0]));
      const own = queue(0, 0);
      own.enable();
      own.push(msiSync);
      expect(own.cons()).toBe(1);
      expect(mem.read32(target)).toBe(0xdead_beef);
    });

    it('writes CONS back to CONS_INDX_BASE when CONS_DRAM_EN is set', () => {
      const { w32, r32, queue, mem } = setup();
      w32(R.VINTF_BASE + R.VINTF_CONFIG, Number(VINTF_CONFIG.encode({ EN: 1, HYP_OWN: 1 })[0]));
      w32(R.CONFIG, r32(R.CONFIG) | (1 << 20));
      const q = queue(0, 0);
      const shadow = mem.allocPages(1)[0]!;
      mem.write64(CMDQV + BigInt(R.VINTF_PAGE0 + 0x10000 + R.VCMDQ_CONS_INDX_BASE), shadow);
      q.enable();
      q.push(SYNC, SYNC, SYNC);
      expect(mem.read32(shadow)).toBe(3);
    });

    it('CERROR_ABT when a VCMDQ base is not RAM', () => {
      const { w32, queue, mem } = setup();
      w32(R.VINTF_BASE + R.VINTF_CONFIG, Number(VINTF_CONFIG.encode({ EN: 1, HYP_OWN: 1 })[0]));
      const q = queue(0, 1);
      mem.write64(CMDQV + BigInt(R.VINTF_PAGE0 + 0x10000 + R.VCMDQ_STRIDE), 0x7000_0000n | 4n);
      q.enable();
      w32(q.page0 + R.VCMDQ_PROD, 1);
      expect(q.cons()).toBe(CMDQ_ERR.ABT << 24);
    });

    it('unmapped logical queues read as zero and ignore writes; a disabled queue is not consumed', () => {
      const { w32, r32, queue } = setup();
      const off = R.VINTF_PAGE0 + R.VINTF_PAGE_STRIDE * 3 + R.VCMDQ_STRIDE * 2;
      w32(off + R.VCMDQ_PROD, 5);
      expect(r32(off + R.VCMDQ_PROD)).toBe(0);
      w32(R.VINTF_BASE + 3 * R.VINTF_STRIDE + R.VINTF_CONFIG, 1);
      const q = queue(3, 2);
      q.push(SYNC);
      expect(q.cons()).toBe(0);
      q.enable();
      expect(q.cons()).toBe(1);
    });
  });
});
