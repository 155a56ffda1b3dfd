/**
 * Decoded hardware state for `inspect`: what the IOMMU model holds in its registers and in
 * the in-memory structures they point to, read through the machine's physical memory (the
 * same bytes the hardware reads) and decoded with hw-model's layouts: SMMUv3 queue/stream
 * table registers, valid STEs and the CDs of stage-1 STEs; the Tegra241 CMDQV's VINTF and
 * VCMDQ registers; VT-d registers, root/context entries of bus 0 and every present PASID
 * entry; and the mapped ranges of every I/O page table those point to.
 */
import { deviceAttachedDomain, type CoreDevice } from '@iommufd/core';
import {
  CMDQ_ERR,
  CMDQV_CMDQ_ALLOC,
  CMDQV_PARAM,
  SMMU_CD,
  SMMU_L1CD,
  SMMU_MMIO_SIZE,
  SMMU_PAGE1,
  SMMU_REG,
  SMMU_STE,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
  TEGRA241_CMDQV_REG as CMDQV,
  VCMDQ_BASE,
  VCMDQ_CONS,
  VINTF_CONFIG,
  VINTF_SID_MATCH,
  VINTF_SID_REPLACE,
  VTD_PGTT,
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
import { hex } from '../hex.js';
import { observationPointsOf } from '../platforms/observation.js';
import { armStage1Format, armStage2Format, lookup, mappedRanges, vtdFirstStageFormat, vtdSecondStageFormat, type TableFormat, type TableReader } from './page-tables.js';

/** One table of decoded hardware state. */
export interface HardwareTable {
  /** What the table shows (the HTML caption). */
  readonly caption: string;
  /** Column names. */
  readonly head: readonly string[];
  /** One row per register / entry / mapped range. */
  readonly rows: readonly (readonly string[])[];
}

/** MMIO base of each preset's IOMMU (the platforms' fixed machine layout). */
const SMMU_BASE = 0x0900_0000n;
const VTD_BASE = 0x7fd9_0000n;
/** Most stream-table entries / context entries / mapped ranges shown (a guard against huge tables). */
const MAX_ROWS = 256;
/** Most PASID-table entries and CDs looked at per device. */
const MAX_CONTEXTS = 4096;

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

const tableReader =
  (host: Host): TableReader =>
  (pa, entries) => {
    try {
      return words(host, pa, entries);
    } catch {
      return undefined;
    }
  };

/** A table root and who walks it, collected while decoding the context structures. */
interface PageTableUse {
  readonly format: TableFormat;
  readonly root: bigint;
  /** Where its table addresses are read (a nested stage 1's are IPAs / GPAs). */
  readonly tableAddress?: (addr: bigint) => bigint | undefined;
  /** Who walks it: `StreamID 0x8 SSID 0 (0000:00:01.0, HWPT 5)`. */
  readonly user: string;
}

/** `0000:bb:dd.f` → requester ID (the presets' StreamIDs are requester IDs). */
function requesterId(name: string): number | undefined {
  const m = /^[0-9a-f]{4}:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(name);
  return m ? (parseInt(m[1]!, 16) << 8) | (parseInt(m[2]!, 16) << 3) | Number(m[3]) : undefined;
}

/** `(0000:00:01.0, HWPT 5)`: the device with requester ID `rid` and the HWPT its RID (or `pasid`) is attached to. */
function attachmentLabel(devices: readonly CoreDevice[], rid: number, pasid?: number): string {
  const dev = devices.find((d) => requesterId(d.name) === rid);
  if (!dev) return '';
  const domain = deviceAttachedDomain(dev, pasid);
  const hwpt = (domain?.cookie as { id?: unknown } | undefined)?.id;
  return ` (${dev.name}${typeof hwpt === 'number' ? `, HWPT ${hwpt}` : domain ? `, ${domain.type} domain` : ''})`;
}

/** One table per distinct table root: its mapped ranges. */
function pageTableTables(host: Host, uses: readonly PageTableUse[]): HardwareTable[] {
  const byRoot = new Map<string, { use: PageTableUse; users: string[] }>();
  for (const u of uses) {
    const key = `${u.format.name}@${u.root}`;
    const seen = byRoot.get(key);
    if (seen) seen.users.push(u.user);
    else byRoot.set(key, { use: u, users: [u.user] });
  }
  const read = tableReader(host);
  return [...byRoot.values()].map(({ use, users }) => {
    const ranges = mappedRanges(use.format, use.root, read, MAX_ROWS, use.tableAddress);
    return {
      caption: `I/O page table at ${hex(use.root)} (${use.format.name}${use.tableAddress ? ', tables at guest addresses' : ''}) walked for ${users.join('; ')}: ${ranges.length} mapped range(s)`,
      head: ['IOVA range', 'output range', 'perms', 'level', 'page size'],
      rows: ranges.map((r) => [`${hex(r.iova)}–${hex(r.last)}`, `${hex(r.output)}–${hex(r.output + (r.last - r.iova))}`, r.perms, String(r.level), hex(r.pageSize)]),
    };
  });
}

/** The CDs of a stage-1 STE (linear or 2-level CD table, read through stage 2 when nested). */
function contextDescriptors(host: Host, ste: readonly bigint[], toPa: (ipa: bigint) => bigint | undefined): { ssid: number; pa: bigint; cd: bigint[] }[] {
  const read = tableReader(host);
  const ptr = SMMU_STE.get(ste, 'S1CONTEXTPTR') << 6n;
  const fmt = Number(SMMU_STE.get(ste, 'S1FMT'));
  const count = Math.min(2 ** Number(SMMU_STE.get(ste, 'S1CDMAX')), MAX_CONTEXTS);
  const out: { ssid: number; pa: bigint; cd: bigint[] }[] = [];
  const take = (ssid: number, ipa: bigint) => {
    const pa = toPa(ipa);
    const cd = pa === undefined ? undefined : read(pa, 8);
    if (pa !== undefined && cd && SMMU_CD.get(cd, 'V') === 1n) out.push({ ssid, pa, cd: [...cd] });
  };
  if (fmt === 0) {
    for (let ssid = 0; ssid < count; ssid++) take(ssid, ptr + BigInt(64 * ssid));
    return out;
  }
  // 2-level: L1 descriptors each pointing at a leaf table of 2^6 (4 KiB) or 2^10 (64 KiB) CDs.
  const leafBits = fmt === 1 ? 6 : 10;
  for (let l1 = 0; l1 * 2 ** leafBits < count; l1++) {
    const pa = toPa(ptr + BigInt(8 * l1));
    const d = pa === undefined ? undefined : read(pa, 1);
    if (!d || SMMU_L1CD.get(d, 'V') === 0n) continue;
    const leaf = SMMU_L1CD.get(d, 'L2PTR') << 12n;
    for (let i = 0; i < 2 ** leafBits && l1 * 2 ** leafBits + i < count; i++) take(l1 * 2 ** leafBits + i, leaf + BigInt(64 * i));
  }
  return out;
}

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
  const translating: { sid: number; ste: bigint[] }[] = [];
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
    if (SMMU_STE.get(w, 'CONFIG') >= 5n) translating.push({ sid, ste: w });
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
  const devices = observationPointsOf(host.memory)?.devices ?? [];
  const read = tableReader(host);
  const cds: string[][] = [];
  const uses: PageTableUse[] = [];
  for (const { sid, ste } of translating) {
    const config = Number(SMMU_STE.get(ste, 'CONFIG'));
    // CONFIG 0b1x1 has stage 1, 0b11x stage 2; with both, stage-1 structures sit at IPAs.
    const s2 = (config & 2) !== 0 ? { format: armStage2Format(Number(SMMU_STE.get(ste, 'S2T0SZ')), Number(SMMU_STE.get(ste, 'S2SL0'))), root: SMMU_STE.get(ste, 'S2TTB') << 4n } : undefined;
    const toPa = s2 ? (ipa: bigint) => lookup(s2.format, s2.root, read, ipa) : (ipa: bigint) => ipa;
    if (s2) uses.push({ ...s2, user: `StreamID ${hex(sid)} stage 2${attachmentLabel(devices, sid)}` });
    if ((config & 1) === 0) continue;
    for (const { ssid, pa, cd } of contextDescriptors(host, ste, toPa)) {
      cds.push([hex(sid), String(ssid), hex(pa), SMMU_CD.format(cd)]);
      if (SMMU_CD.get(cd, 'EPD0') === 1n) continue;
      uses.push({
        format: armStage1Format(Number(SMMU_CD.get(cd, 'T0SZ'))),
        root: SMMU_CD.get(cd, 'TTB0') << 4n,
        ...(s2 ? { tableAddress: toPa } : {}),
        user: `StreamID ${hex(sid)} SSID ${ssid} stage 1${attachmentLabel(devices, sid, ssid === 0 ? undefined : ssid)}`,
      });
    }
  }
  return [
    { caption: 'SMMUv3 registers', head: ['register', 'value'], rows: regs.map(([n, v]) => [n, hex(v)]) },
    { caption: `SMMUv3 STEs that translate or bypass (stream table at ${hex(base)}, ${fmt === 0 ? 'linear' : '2-level'}; ${aborting} more valid STE(s) abort)`, head: ['StreamID', 'address', 'STE'], rows: stes },
    { caption: 'SMMUv3 context descriptors of stage-1 STEs (valid CDs)', head: ['StreamID', 'SSID', 'address', 'CD'], rows: cds },
    ...(host.platform === 'tegra241-cmdqv' ? cmdqvTables(host) : []),
    ...pageTableTables(host, uses),
  ];
}

const CMDQ_ERR_NAMES = new Map<bigint, string>(Object.entries(CMDQ_ERR).map(([k, v]) => [BigInt(v), `CERROR_${k}`]));

/** A VCMDQ CONS register: the read index and, when the queue stopped, the CONS.ERR name. */
function consText(cons: bigint): string {
  const err = VCMDQ_CONS.get([cons], 'ERR');
  return `${hex(VCMDQ_CONS.get([cons], 'RD'))}${err !== 0n ? ` ${CMDQ_ERR_NAMES.get(err) ?? `ERR ${err}`}` : ''}`;
}

/** The Tegra241 CMDQV's global, VINTF and (allocated) VCMDQ registers. */
function cmdqvTables(host: Host): HardwareTable[] {
  const base = SMMU_BASE + SMMU_MMIO_SIZE;
  const r32 = (off: number): bigint => reg32(host, base + BigInt(off));
  const param = r32(CMDQV.PARAM);
  const vcmdqs = 2 ** Number(CMDQV_PARAM.get([param], 'NUM_VCMDQ_LOG2'));
  const vintfs = 2 ** Number(CMDQV_PARAM.get([param], 'NUM_VINTF_LOG2'));
  const sids = 2 ** Number(CMDQV_PARAM.get([param], 'NUM_SID_PER_VM_LOG2'));
  const global: [string, bigint][] = [
    ['CONFIG', r32(CMDQV.CONFIG)],
    ['PARAM', param],
    ['STATUS', r32(CMDQV.STATUS)],
    ['VINTF_ERR_MAP', r32(CMDQV.VINTF_ERR_MAP) | (r32(CMDQV.VINTF_ERR_MAP + 4) << 32n)],
    ['CMDQ_ERR_MAP', r32(CMDQV.CMDQ_ERR_MAP) | (r32(CMDQV.CMDQ_ERR_MAP + 4) << 32n)],
  ];
  const vintfRows: string[][] = [];
  for (let v = 0; v < vintfs; v++) {
    const at = (reg: number) => CMDQV.VINTF_BASE + CMDQV.VINTF_STRIDE * v + reg;
    const config = r32(at(CMDQV.VINTF_CONFIG));
    const streams: string[] = [];
    for (let slot = 0; slot < sids; slot++) {
      const match = r32(at(CMDQV.VINTF_SID_MATCH + 4 * slot));
      if (VINTF_SID_MATCH.get([match], 'ENABLE') === 0n) continue;
      const replace = r32(at(CMDQV.VINTF_SID_REPLACE + 4 * slot));
      streams.push(`${hex(VINTF_SID_MATCH.get([match], 'VIRT_SID'))}→${hex(VINTF_SID_REPLACE.get([replace], 'PHYS_SID'))}`);
    }
    if (config === 0n && streams.length === 0) continue;
    vintfRows.push([String(v), VINTF_CONFIG.format([config]), hex(r32(at(CMDQV.VINTF_STATUS))), streams.join(', ') || '—']);
  }
  const queueRows: string[][] = [];
  for (let q = 0; q < vcmdqs; q++) {
    const alloc = r32(CMDQV.CMDQ_ALLOC + 4 * q);
    if (CMDQV_CMDQ_ALLOC.get([alloc], 'ALLOCATED') === 0n) continue;
    const page0 = (reg: number) => r32(CMDQV.VCMDQ_PAGE0 + CMDQV.VCMDQ_STRIDE * q + reg);
    const qbase = r32(CMDQV.VCMDQ_PAGE1 + CMDQV.VCMDQ_STRIDE * q + CMDQV.VCMDQ_BASE) | (r32(CMDQV.VCMDQ_PAGE1 + CMDQV.VCMDQ_STRIDE * q + CMDQV.VCMDQ_BASE + 4) << 32n);
    queueRows.push([
      String(q),
      String(CMDQV_CMDQ_ALLOC.get([alloc], 'VINTF')),
      String(CMDQV_CMDQ_ALLOC.get([alloc], 'LVCMDQ')),
      `ring at ${hex(VCMDQ_BASE.get([qbase], 'ADDR') << 5n)}, 2^${VCMDQ_BASE.get([qbase], 'LOG2SIZE')} entries`,
      hex(page0(CMDQV.VCMDQ_PROD)),
      consText(page0(CMDQV.VCMDQ_CONS)),
      hex(page0(CMDQV.VCMDQ_CONFIG)),
      hex(page0(CMDQV.VCMDQ_STATUS)),
      hex(page0(CMDQV.VCMDQ_GERROR)),
    ]);
  }
  return [
    { caption: 'Tegra241 CMDQV registers', head: ['register', 'value'], rows: global.map(([n, v]) => [n, hex(v)]) },
    { caption: 'Tegra241 VINTFs in use', head: ['VINTF', 'CONFIG', 'STATUS', 'SID_MATCH → SID_REPLACE'], rows: vintfRows },
    { caption: 'Tegra241 VCMDQs allocated', head: ['VCMDQ', 'VINTF', 'LVCMDQ', 'BASE', 'PROD', 'CONS', 'CONFIG', 'STATUS', 'GERROR'], rows: queueRows },
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
  const uses: PageTableUse[] = [];
  const devices = observationPointsOf(host.memory)?.devices ?? [];
  const read = tableReader(host);
  /** The page tables a PASID entry (or legacy context) points to, by PGTT. */
  const usePasidEntry = (rid: number, bdf: string, pasid: number, ridPasid: number, pe: readonly bigint[]) => {
    const pgtt = VtdPasidEntry.get(pe, 'PGTT');
    const user = `${bdf} PASID ${pasid}${attachmentLabel(devices, rid, pasid === ridPasid ? undefined : pasid)}`;
    const ss = { format: vtdSecondStageFormat(VtdPasidEntry.get(pe, 'AW') + 2), root: VtdPasidEntry.get(pe, 'SSPTPTR') };
    if (pgtt === VTD_PGTT.SECOND_STAGE || pgtt === VTD_PGTT.NESTED) uses.push({ ...ss, user: `${user} second stage` });
    if (pgtt === VTD_PGTT.FIRST_STAGE || pgtt === VTD_PGTT.NESTED) {
      uses.push({
        format: vtdFirstStageFormat(VtdPasidEntry.get(pe, 'FSPM') === 1 ? 5 : 4),
        root: VtdPasidEntry.get(pe, 'FSPTPTR'),
        // Nested: the first-stage tables sit at GPAs, read through the second stage.
        ...(pgtt === VTD_PGTT.NESTED ? { tableAddress: (gpa: bigint) => lookup(ss.format, ss.root, read, gpa) } : {}),
        user: `${user} first stage`,
      });
    }
  };
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
        const ridPasid = Number(VtdSmContextEntry.get(ce, 'RID_PASID'));
        const dir = VtdSmContextEntry.get(ce, 'PASIDDIRPTR');
        // PDTS: the directory has 2^(PDTS + 7) entries, each for a table of 64 PASIDs.
        const dirEntries = Math.min(2 ** (VtdSmContextEntry.get(ce, 'PDTS') + 7), MAX_CONTEXTS);
        const dirWords = read(dir, dirEntries) ?? [];
        for (let d = 0; d < dirWords.length && pasids.length < MAX_ROWS; d++) {
          const de = [dirWords[d]!];
          if (VtdPasidDirEntry.get(de, 'P') === 0) continue;
          const table = read(VtdPasidDirEntry.get(de, 'PASIDPTPTR'), 8 * 64) ?? [];
          for (let i = 0; 8 * i < table.length && pasids.length < MAX_ROWS; i++) {
            const pe = table.slice(8 * i, 8 * i + 8);
            if (VtdPasidEntry.get(pe, 'P') === 0) continue;
            const pasid = 64 * d + i;
            pasids.push([bdf, String(pasid), pasid === ridPasid ? 'RID_PASID' : '', VtdPasidEntry.format(pe)]);
            usePasidEntry(devfn, bdf, pasid, ridPasid, pe);
          }
        }
      } else {
        if (VtdRootEntry.get(re, 'P') === 0) continue;
        const pa = VtdRootEntry.get(re, 'CTP') + BigInt(16 * devfn);
        const ce = words(host, pa, 2);
        if (VtdContextEntry.get(ce, 'P') === 0) continue;
        contexts.push([bdf, hex(pa), VtdContextEntry.format(ce)]);
        // TT 0/1: translated through the second-stage table (AW + 2 levels); 2 is pass-through.
        if (VtdContextEntry.get(ce, 'TT') !== 2) {
          uses.push({ format: vtdSecondStageFormat(VtdContextEntry.get(ce, 'AW') + 2), root: VtdContextEntry.get(ce, 'SSPTPTR'), user: `${bdf}${attachmentLabel(devices, devfn)}` });
        }
      }
    }
  }
  return [
    { caption: 'VT-d registers', head: ['register', 'value'], rows: regs.map(([n, v]) => [n, hex(v)]) },
    { caption: `VT-d ${scalable ? 'scalable-mode' : 'legacy'} context entries of bus 0 (root table at ${hex(root)})`, head: ['BDF', 'address', 'context entry'], rows: contexts },
    ...(scalable ? [{ caption: 'VT-d PASID entries (present)', head: ['BDF', 'PASID', 'role', 'PASID entry'], rows: pasids }] : []),
    ...pageTableTables(host, uses),
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
