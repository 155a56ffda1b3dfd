/**
 * Decoded hardware state for `inspect`: what the IOMMU model holds in its registers and in
 * the in-memory structures they point to, read through the machine's physical memory (the
 * same bytes the hardware reads) and decoded with hw-model's layouts: SMMUv3 queue/stream
 * table registers and valid STEs; VT-d registers, root/context entries of bus 0 and the
 * RID_PASID entry of each present context.
 */
import {
  SMMU_PAGE1,
  SMMU_REG,
  SMMU_STE,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
  VTD_REG,
  VtdContextEntry,
  VtdPasidDirEntry,
  VtdPasidEntry,
  VtdRootEntry,
  VtdRtaddr,
  VtdSmContextEntry,
  VtdSmRootEntry,
} from '@iommufd/hw-model';
import type { Host } from '../host.js';

/** One table of decoded hardware state. */
export interface HardwareTable {
  readonly caption: string;
  readonly head: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** MMIO base of each preset's IOMMU (the platforms' fixed machine layout). */
const SMMU_BASE = 0x0900_0000n;
const VTD_BASE = 0x7fd9_0000n;
/** Most stream-table entries / context entries shown (a guard against huge tables). */
const MAX_ROWS = 256;

const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

function words(host: Host, pa: bigint, count: number): bigint[] {
  const b = host.memory.read(pa, 8 * count);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return Array.from({ length: count }, (_, i) => v.getBigUint64(8 * i, true));
}
const reg32 = (host: Host, pa: bigint): bigint => {
  const b = host.memory.read(pa, 4);
  return BigInt(new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true));
};
const reg64 = (host: Host, pa: bigint): bigint => words(host, pa, 1)[0]!;

function smmuTables(host: Host): HardwareTable[] {
  const r = (name: keyof typeof SMMU_REG, page = 0) => SMMU_BASE + BigInt(page + SMMU_REG[name]);
  const regs: [string, bigint][] = [
    ['CR0', reg32(host, r('CR0'))],
    ['GERROR', reg32(host, r('GERROR'))],
    ['STRTAB_BASE', reg64(host, r('STRTAB_BASE'))],
    ['STRTAB_BASE_CFG', reg32(host, r('STRTAB_BASE_CFG'))],
    ['CMDQ_BASE', reg64(host, r('CMDQ_BASE'))],
    ['CMDQ_PROD', reg32(host, r('CMDQ_PROD'))],
    ['CMDQ_CONS', reg32(host, r('CMDQ_CONS'))],
    ['EVTQ_BASE', reg64(host, r('EVTQ_BASE'))],
    ['EVTQ_PROD', reg32(host, r('EVTQ_PROD', SMMU_PAGE1))],
    ['EVTQ_CONS', reg32(host, r('EVTQ_CONS', SMMU_PAGE1))],
  ];
  const base = SMMU_STRTAB_BASE.get([regs[2]![1]], 'ADDR') << 6n;
  const cfg = regs[3]![1];
  const fmt = Number(SMMU_STRTAB_BASE_CFG.get([cfg], 'FMT'));
  const log2 = Number(SMMU_STRTAB_BASE_CFG.get([cfg], 'LOG2SIZE'));
  const split = Number(SMMU_STRTAB_BASE_CFG.get([cfg], 'SPLIT'));
  const stes: string[][] = [];
  let aborting = 0;
  const addSte = (sid: number, pa: bigint) => {
    const w = words(host, pa, 8);
    if (SMMU_STE.get(w, 'V') === 0n) return;
    // V=1 CONFIG=0 is the abort STE the driver fills unused L2 slots with: counted, not listed.
    if (SMMU_STE.get(w, 'CONFIG') === 0n) {
      aborting++;
      return;
    }
    stes.push([String(sid), hex(pa), SMMU_STE.format(w)]);
  };
  if (base !== 0n) {
    if (fmt === 0) {
      for (let sid = 0; sid < Math.min(1 << log2, MAX_ROWS); sid++) addSte(sid, base + BigInt(64 * sid));
    } else {
      // Two-level: L1 descriptors (SPAN 4:0, L2PTR 51:6) each covering 2^SPLIT StreamIDs.
      for (let l1 = 0; l1 < 1 << Math.max(0, log2 - split) && stes.length < MAX_ROWS; l1++) {
        const d = reg64(host, base + BigInt(8 * l1));
        const span = Number(d & 0x1fn);
        if (span === 0) continue;
        const l2 = d & 0x000f_ffff_ffff_ffc0n;
        for (let i = 0; i < Math.min(1 << (span - 1), MAX_ROWS); i++) addSte((l1 << split) + i, l2 + BigInt(64 * i));
      }
    }
  }
  return [
    { caption: 'SMMUv3 registers', head: ['register', 'value'], rows: regs.map(([n, v]) => [n, hex(v)]) },
    { caption: `SMMUv3 STEs that translate or bypass (stream table at ${hex(base)}, ${fmt === 0 ? 'linear' : '2-level'}; ${aborting} more valid STE(s) abort)`, head: ['StreamID', 'address', 'STE'], rows: stes },
  ];
}

function vtdTables(host: Host): HardwareTable[] {
  const regs: [string, bigint][] = [
    ['CAP', reg64(host, VTD_BASE + BigInt(VTD_REG.CAP))],
    ['ECAP', reg64(host, VTD_BASE + BigInt(VTD_REG.ECAP))],
    ['GSTS', reg32(host, VTD_BASE + BigInt(VTD_REG.GSTS))],
    ['RTADDR', reg64(host, VTD_BASE + BigInt(VTD_REG.RTADDR))],
    ['FSTS', reg32(host, VTD_BASE + BigInt(VTD_REG.FSTS))],
    ['IQA', reg64(host, VTD_BASE + BigInt(VTD_REG.IQA))],
    ['IQH', reg64(host, VTD_BASE + BigInt(VTD_REG.IQH))],
    ['IQT', reg64(host, VTD_BASE + BigInt(VTD_REG.IQT))],
  ];
  const rtaddr = regs[3]![1];
  const scalable = VtdRtaddr.get([rtaddr], 'TTM') === 1;
  const root = VtdRtaddr.get([rtaddr], 'RTA');
  const contexts: string[][] = [];
  const pasids: string[][] = [];
  if (root !== 0n) {
    const re = words(host, root, 2); // bus 0
    for (let devfn = 0; devfn < 256 && contexts.length < MAX_ROWS; devfn++) {
      const bdf = `00:${(devfn >> 3).toString(16).padStart(2, '0')}.${devfn & 7}`;
      if (scalable) {
        const half = devfn < 128 ? 'L' : 'U';
        if (VtdSmRootEntry.get(re, half === 'L' ? 'LP' : 'UP') === 0) continue;
        const table = VtdSmRootEntry.get(re, half === 'L' ? 'LCTP' : 'UCTP');
        const pa = table + BigInt(32 * (devfn & 127));
        const ce = words(host, pa, 4);
        if (VtdSmContextEntry.get(ce, 'P') === 0) continue;
        contexts.push([bdf, hex(pa), VtdSmContextEntry.format(ce)]);
        const rid = Number(VtdSmContextEntry.get(ce, 'RID_PASID'));
        const dir = VtdSmContextEntry.get(ce, 'PASIDDIRPTR');
        const de = words(host, dir + BigInt(8 * (rid >> 6)), 1);
        if (VtdPasidDirEntry.get(de, 'P') === 0) continue;
        const pe = words(host, VtdPasidDirEntry.get(de, 'PASIDPTPTR') + BigInt(64 * (rid & 63)), 8);
        pasids.push([bdf, String(rid), VtdPasidEntry.format(pe)]);
      } else {
        if (VtdRootEntry.get(re, 'P') === 0) continue;
        const pa = VtdRootEntry.get(re, 'CTP') + BigInt(16 * devfn);
        const ce = words(host, pa, 2);
        if (VtdContextEntry.get(ce, 'P') === 0) continue;
        contexts.push([bdf, hex(pa), VtdContextEntry.format(ce)]);
      }
    }
  }
  return [
    { caption: 'VT-d registers', head: ['register', 'value'], rows: regs.map(([n, v]) => [n, hex(v)]) },
    { caption: `VT-d ${scalable ? 'scalable-mode' : 'legacy'} context entries of bus 0 (root table at ${hex(root)})`, head: ['BDF', 'address', 'context entry'], rows: contexts },
    ...(scalable ? [{ caption: 'VT-d RID_PASID entries', head: ['BDF', 'PASID', 'PASID entry'], rows: pasids }] : []),
  ];
}

/** The decoded hardware state of the host's IOMMU (none for the mock platform, which has no hardware model). */
export function hardwareTables(host: Host): HardwareTable[] {
  if (host.platform === 'arm-smmuv3' || host.platform === 'tegra241-cmdqv') return smmuTables(host);
  if (host.platform === 'intel-vtd') return vtdTables(host);
  return [];
}

/**
 * The IOMMU's command-queue consumer position and the size of its index space (SMMUv3
 * CMDQ_CONS index + wrap bit; VT-d IQH in descriptors), or undefined for the mock platform.
 * The tracer samples it to count the commands the hardware consumed per ioctl.
 */
export function commandQueueConsumer(host: Host): { readonly queue: string; readonly index: number; readonly modulus: number } | undefined {
  if (host.platform === 'arm-smmuv3' || host.platform === 'tegra241-cmdqv') {
    const log2 = Number(reg64(host, SMMU_BASE + BigInt(SMMU_REG.CMDQ_BASE)) & 0x1fn);
    const modulus = 2 << log2; // index bits plus the wrap bit; CONS.ERR (30:24) is masked off
    return { queue: 'CMDQ', index: Number(reg32(host, SMMU_BASE + BigInt(SMMU_REG.CMDQ_CONS))) & (modulus - 1), modulus };
  }
  if (host.platform === 'intel-vtd') {
    const iqa = reg64(host, VTD_BASE + BigInt(VTD_REG.IQA));
    // IQH counts 128-bit units; a 256-bit descriptor (IQA.DW) takes two.
    const unitsPerDesc = (iqa >> 11n) & 1n ? 2 : 1;
    const units = (4096 << Number(iqa & 7n)) / 16;
    return { queue: 'IQ', index: Number(reg64(host, VTD_BASE + BigInt(VTD_REG.IQH)) >> 4n) / unitsPerDesc, modulus: units / unitsPerDesc };
  }
  return undefined;
}
