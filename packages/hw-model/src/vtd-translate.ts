/**
 * The VT-d DMA translation path (§2.10 of the reference): root → context (legacy or
 * scalable) → PASID directory/table → first-stage / second-stage / nested / pass-through
 * walk, through the context-cache, PASID-cache and IOTLB, with the architecture's fault
 * reasons. Fault recording itself belongs to the unit ({@link VtdTranslateUnit.fault}).
 */
import { offsetIn, pageOf, POW2 } from './address.js';
import type { StructureMemory } from './vtd-bitfields.js';
import { readable, readWords } from './vtd-bitfields.js';
import type { VtdCaches, VtdContextCacheEntry, VtdIotlbEntry, VtdPasidCacheEntry, VtdPasidFields, VtdTranslationKind } from './vtd-caches.js';
import { VTD_FAULT, vtdFaultName } from './vtd-faults.js';
import type { HardwareObserver } from './observer.js';
import type { ResolvedVtdOptions } from './vtd-registers.js';
import {
  aboveWidthMask,
  VTD_PGTT,
  VtdContextEntry,
  VtdPasidDirEntry,
  VtdPasidEntry,
  VtdRootEntry,
  VtdSmContextEntry,
  VtdSmRootEntry,
  VtdFsPte,
  VtdSsPte,
} from './vtd-tables.js';
import { secondStageFaultCode, walkFirstStagePage, walkSecondStagePage, type VtdLeafNumbers, type VtdSsWalkParams } from './vtd-walk.js';
import type { DmaRequest, DmaTranslation } from './translator.js';

/** What the translation path needs from its unit. */
export interface VtdTranslateUnit {
  /** Memory holding the tables. */
  readonly mem: StructureMemory;
  /** Resolved capabilities. */
  readonly options: ResolvedVtdOptions;
  /** The unit's caches. */
  readonly caches: VtdCaches;
  /** Root table latched by the last SRTP. */
  readonly rootTable: bigint;
  /** RTADDR.TTM latched by the last SRTP (0 legacy, 1 scalable, others invalid). */
  readonly ttm: number;
  /** Records (or, under FPD, suppresses) a fault and returns the failed translation. */
  fault(code: number, req: DmaRequest, fpd: boolean, pasid: number | undefined): DmaTranslation;
  /** Called for a recoverable fault of a device whose context has PRE=1: issue a page request instead. */
  pageRequestFault?(code: number, req: DmaRequest, pasid: number | undefined): DmaTranslation;
  /** Told of every walk (tracing); undefined: one null check per walk. */
  readonly observer?: HardwareObserver | undefined;
}

/** Entries read from the top of a `levels`-deep table to a leaf mapping `size` bytes (level 1 maps 4 KiB). */
const levelsRead = (levels: number, size: number): number => levels - (Math.log2(size) - 12) / 9;

const PGTT_NAMES: Readonly<Record<number, string>> = { 1: 'first-stage', 2: 'second-stage', 3: 'nested', 4: 'pass-through' };

function observeWalk(o: HardwareObserver, req: DmaRequest, pasid: number | undefined, stage: string, levels: number, result: { pa: bigint; size: bigint } | number): void {
  o.walk({
    streamId: req.requesterId,
    ...(pasid !== undefined ? { pasid } : {}),
    iova: req.iova,
    stage,
    ...(typeof result === 'number' ? {} : { levels }),
    result: typeof result === 'number' ? { ok: false, fault: vtdFaultName(result) } : { ok: true, pa: result.pa, size: result.size },
  });
}

/** A failed table lookup: the fault reason and whether FPD applies to it. */
export interface VtdLookupFailure {
  /** Fault reason code. */
  readonly fail: number;
  /** Fault processing is disabled by an entry on the path. */
  readonly fpd: boolean;
}

/** PASIDs a context's PASID directory covers: 2^(PDTS+7) directory entries of 64 PASIDs. */
const PASID_LIMIT = Array.from({ length: 8 }, (_, pdts) => 2 ** (pdts + 7) * 64);
const INTERRUPT_BASE = 0xfee0_0000n;
const INTERRUPT_END = 0xfef0_0000n;
const RECOVERABLE: ReadonlySet<number> = new Set<number>([
  VTD_FAULT.SM_FS_NOT_PRESENT,
  VTD_FAULT.SM_SS_NOT_PRESENT,
  VTD_FAULT.SM_US_CLEAR,
  VTD_FAULT.SM_NO_EXECUTE,
  VTD_FAULT.SM_NO_WRITE,
  VTD_FAULT.SM_NO_READ,
]);

/** CAP.SAGAW has the bit of `aw` (AW 1/2/3 = 39/48/57-bit, 3/4/5 levels, up to the unit's width). */
function sagawHas(o: ResolvedVtdOptions, aw: number): boolean {
  return aw >= 1 && aw <= 3 && 30 + 9 * aw <= o.addressWidth;
}

/** Resolves the context entry of `sid`, through the context-cache. */
export function lookupContext(u: VtdTranslateUnit, sid: number): VtdContextCacheEntry | VtdLookupFailure {
  const hit = u.caches.context.get(sid);
  if (hit !== undefined) return hit;
  const scalable = u.ttm === 1;
  const above = aboveWidthMask(u.options.addressWidth);
  if ((u.rootTable & above) !== 0n || u.ttm > 1) return { fail: scalable || u.ttm > 1 ? VTD_FAULT.SM_ROOT_ACCESS : VTD_FAULT.ROOT_ADDR_INVALID, fpd: false };
  const bus = sid >> 8;
  const devfn = sid & 0xff;
  const rootAt = u.rootTable + BigInt(bus) * 16n;
  if (!readable(u.mem, rootAt, 16)) return { fail: scalable ? VTD_FAULT.SM_ROOT_ACCESS : VTD_FAULT.ROOT_ADDR_INVALID, fpd: false };
  const root = readWords(u.mem, rootAt, 2);
  let ctp: bigint;
  if (scalable) {
    if (VtdSmRootEntry.hasReservedBits(root)) return { fail: VTD_FAULT.SM_ROOT_RESERVED, fpd: false };
    const upper = devfn >= 128;
    const present = upper ? VtdSmRootEntry.f.UP.get(root) : VtdSmRootEntry.f.LP.get(root);
    if (present === 0) return { fail: VTD_FAULT.SM_ROOT_NOT_PRESENT, fpd: false };
    ctp = upper ? VtdSmRootEntry.f.UCTP.get(root) : VtdSmRootEntry.f.LCTP.get(root);
    const at = ctp + BigInt(devfn & 0x7f) * 32n;
    if ((ctp & above) !== 0n || !readable(u.mem, at, 32)) return { fail: VTD_FAULT.SM_CONTEXT_ACCESS, fpd: false };
    const words = readWords(u.mem, at, 4);
    const c = VtdSmContextEntry.decode(words);
    const fpd = c.FPD === 1;
    if (c.P === 0) return { fail: VTD_FAULT.SM_CONTEXT_NOT_PRESENT, fpd };
    if (VtdSmContextEntry.hasReservedBits(words) || (c.PASIDDIRPTR & above) !== 0n) return { fail: VTD_FAULT.SM_CONTEXT_RESERVED, fpd };
    const o = u.options;
    if ((c.DTE === 1 && !o.deviceTlb) || (c.PRE === 1 && !o.pageRequests) || (c.PASIDE === 1 && o.pasidBits === 0)) {
      return { fail: VTD_FAULT.SM_CONTEXT_INVALID, fpd };
    }
    const e: VtdContextCacheEntry = { sid, scalable: true, did: 0, words, sm: c };
    u.caches.context.set(sid, e);
    return e;
  }
  if (VtdRootEntry.hasReservedBits(root)) return { fail: VTD_FAULT.ROOT_RESERVED, fpd: false };
  if (VtdRootEntry.f.P.get(root) === 0) return { fail: VTD_FAULT.ROOT_NOT_PRESENT, fpd: false };
  ctp = VtdRootEntry.f.CTP.get(root);
  const at = ctp + BigInt(devfn) * 16n;
  if ((ctp & above) !== 0n || !readable(u.mem, at, 16)) return { fail: VTD_FAULT.CONTEXT_PTR_INVALID, fpd: false };
  const words = readWords(u.mem, at, 2);
  const l = VtdContextEntry.decode(words);
  const fpd = l.FPD === 1;
  if (l.P === 0) return { fail: VTD_FAULT.CONTEXT_NOT_PRESENT, fpd };
  if (VtdContextEntry.hasReservedBits(words) || (l.SSPTPTR & above) !== 0n) return { fail: VTD_FAULT.CONTEXT_RESERVED, fpd };
  const tt = l.TT;
  if (tt === 3 || (tt === 1 && !u.options.deviceTlb) || (tt === 2 && !u.options.passThrough) || (tt !== 2 && !sagawHas(u.options, l.AW))) {
    return { fail: VTD_FAULT.CONTEXT_INVALID, fpd };
  }
  const e: VtdContextCacheEntry = { sid, scalable: false, did: l.DID, words, legacy: l };
  u.caches.context.set(sid, e);
  return e;
}

/** Resolves the PASID-table entry of (`sid`, `pasid`), through the PASID-cache. */
export function lookupPasidEntry(u: VtdTranslateUnit, ctx: VtdContextCacheEntry, pasid: number, ctxFpd: boolean): VtdPasidCacheEntry | VtdLookupFailure {
  // SID (16 bits) above PASID (20 bits): one exact Number.
  const key = ctx.sid * 2 ** 20 + pasid;
  const hit = u.caches.pasid.get(key);
  if (hit !== undefined) return hit;
  const above = aboveWidthMask(u.options.addressWidth);
  const dirBase = ctx.sm!.PASIDDIRPTR;
  // PASID[19:6] indexes the directory, PASID[5:0] the 64-entry table.
  const dirAt = dirBase + BigInt(pasid >> 6) * 8n;
  if (!readable(u.mem, dirAt, 8)) return { fail: VTD_FAULT.SM_PASID_DIR_ACCESS, fpd: ctxFpd };
  const dir = [u.mem.read64(dirAt)];
  const dirFpd = VtdPasidDirEntry.f.FPD.get(dir) === 1;
  if (VtdPasidDirEntry.f.P.get(dir) === 0) return { fail: VTD_FAULT.SM_PASID_DIR_NOT_PRESENT, fpd: ctxFpd || dirFpd };
  const table = VtdPasidDirEntry.f.PASIDPTPTR.get(dir);
  if (VtdPasidDirEntry.hasReservedBits(dir) || (table & above) !== 0n) return { fail: VTD_FAULT.SM_PASID_DIR_RESERVED, fpd: ctxFpd || dirFpd };
  const entryAt = table + BigInt(pasid & 0x3f) * 64n;
  if (!readable(u.mem, entryAt, 64)) return { fail: VTD_FAULT.SM_PASID_ACCESS, fpd: ctxFpd || dirFpd };
  const words = readWords(u.mem, entryAt, 8);
  const p = VtdPasidEntry.decode(words);
  const fpd = ctxFpd || dirFpd || p.FPD === 1;
  if (p.P === 0) return { fail: VTD_FAULT.SM_PASID_NOT_PRESENT, fpd };
  if (VtdPasidEntry.hasReservedBits(words)) return { fail: VTD_FAULT.SM_PASID_RESERVED, fpd };
  const o = u.options;
  const pgtt = p.PGTT;
  const ssUsed = pgtt === VTD_PGTT.SECOND_STAGE || pgtt === VTD_PGTT.NESTED;
  const fsUsed = pgtt === VTD_PGTT.FIRST_STAGE || pgtt === VTD_PGTT.NESTED;
  const invalid =
    (pgtt === VTD_PGTT.FIRST_STAGE && !o.firstStage) ||
    (pgtt === VTD_PGTT.SECOND_STAGE && !o.secondStage) ||
    (pgtt === VTD_PGTT.NESTED && !o.nested) ||
    (pgtt === VTD_PGTT.PASS_THROUGH && !o.passThrough) ||
    pgtt === 0 ||
    pgtt > 4 ||
    (ssUsed && !sagawHas(o, p.AW)) ||
    (ssUsed && (p.SSPTPTR & above) !== 0n) ||
    (ssUsed && p.SSADE === 1 && !o.secondStageAccessDirty) ||
    (fsUsed && p.FSPM > 1) ||
    (fsUsed && p.FSPM === 1 && !o.firstStage5Level);
  if (invalid) return { fail: VTD_FAULT.SM_PASID_INVALID, fpd };
  const e: VtdPasidCacheEntry = { sid: ctx.sid, pasid, did: p.DID, dirFpd, words, fields: p };
  u.caches.pasid.set(key, e);
  return e;
}

function ssParams(u: VtdTranslateUnit, root: bigint, aw: number, accessDirty: boolean): VtdSsWalkParams {
  return { mem: u.mem, haw: u.options.addressWidth, root, levels: aw + 2, largePages: u.options.secondStageLargePages, accessDirty };
}

interface Permissions {
  readonly read: boolean;
  readonly write: boolean;
  /** Nested: second-stage W (supervisor writes without WPE skip the first-stage R/W but not this). */
  readonly stage2Write: boolean;
  readonly exec: boolean;
  readonly user: boolean;
  readonly kind: VtdTranslationKind;
}

/** The fault a request meets on a translation with permissions `p`, or 0 when it is allowed. */
function permissionFault(p: Permissions, req: DmaRequest, wpe: boolean): number {
  return accessFault(p, req.write, req.exec === true, req.priv === true, wpe);
}

/** {@link permissionFault} of an access described by its flags. */
function accessFault(p: Permissions, write: boolean, exec: boolean, priv: boolean, wpe: boolean): number {
  if (p.kind === 'first-stage' || p.kind === 'nested') {
    const user = !priv;
    if (user && !p.user) return VTD_FAULT.SM_US_CLEAR;
    // Supervisor writes ignore R/W unless WPE (x86 CR0.WP semantics).
    if (write && !p.write && (user || wpe || !p.stage2Write)) return VTD_FAULT.SM_NO_WRITE;
    if (exec && !p.exec) return VTD_FAULT.SM_NO_EXECUTE;
    if (!write && !p.read) return VTD_FAULT.SM_NO_READ;
    return 0;
  }
  if (p.kind === 'legacy') {
    if (write && !p.write) return VTD_FAULT.PTE_WRITE;
    if (!write && !p.read) return VTD_FAULT.PTE_READ;
    return 0;
  }
  if (write && !p.write) return VTD_FAULT.SM_NO_WRITE;
  if (!write && !p.read) return VTD_FAULT.SM_NO_READ;
  return 0;
}

function writableFor(p: Permissions, req: DmaRequest, wpe: boolean): boolean {
  return accessFault(p, true, false, req.priv === true, wpe) === 0;
}

function success(e: VtdIotlbEntry, req: DmaRequest, wpe: boolean): DmaTranslation {
  return { ok: true, pa: e.pa + (req.iova - e.iova), pageSize: e.size, writable: writableFor(e, req, wpe) };
}

/** Translates one request (the unit has checked that translation is enabled). */
export function vtdTranslate(u: VtdTranslateUnit, req: DmaRequest): DmaTranslation {
  const sid = req.requesterId;
  const ctx = lookupContext(u, sid);
  if ('fail' in ctx) return u.fault(ctx.fail, req, ctx.fpd, req.pasid);
  return ctx.scalable ? scalableTranslate(u, ctx, req) : legacyTranslate(u, ctx, req);
}

function legacyTranslate(u: VtdTranslateUnit, ctx: VtdContextCacheEntry, req: DmaRequest): DmaTranslation {
  const l = ctx.legacy!;
  const fpd = l.FPD === 1;
  const tt = l.TT;
  if (req.ats === 'translated') {
    if (tt !== 1) return u.fault(VTD_FAULT.TRANSLATION_BLOCKED, req, fpd, undefined);
    return { ok: true, pa: req.iova, pageSize: 4096n, writable: true };
  }
  if (tt === 2) return { ok: true, pa: req.iova, pageSize: 4096n, writable: true };
  const hit = u.caches.iotlb.lookup(ctx.did, 0, req.iova);
  if (hit !== undefined && permissionFault(hit, req, false) === 0 && (!req.write || hit.dirty)) return success(hit, req, false);
  const ss = ssParams(u, l.SSPTPTR, l.AW, false);
  const w = walkSecondStagePage(ss, pageOf(req.iova));
  if (!w.ok) {
    const code =
      w.why === 'beyond-width'
        ? VTD_FAULT.BEYOND_MGAW
        : w.why === 'reserved'
          ? VTD_FAULT.PTE_RESERVED
          : w.why === 'not-present'
            ? req.write
              ? VTD_FAULT.PTE_WRITE
              : VTD_FAULT.PTE_READ
            : VTD_FAULT.NEXT_PTR_INVALID;
    if (u.observer !== undefined) observeWalk(u.observer, req, undefined, 'legacy', 0, code);
    return u.fault(code, req, fpd, undefined);
  }
  if (u.observer !== undefined) observeWalk(u.observer, req, undefined, 'legacy', levelsRead(ss.levels, w.size), { pa: BigInt(w.pa), size: BigInt(w.size) });
  const e = finish(w, req, ctx.did, 0, 'legacy', BigInt(w.pa), BigInt(w.size));
  const pf = permissionFault(e, req, false);
  if (pf !== 0) return u.fault(pf, req, fpd, undefined);
  if (inInterruptRange(e.pa)) return u.fault(VTD_FAULT.INTERRUPT_ADDRESS, req, fpd, undefined);
  u.caches.iotlb.insert(e);
  return success(e, req, false);
}

/** The IOTLB entry of a walk: `size` bytes of input from the page containing the IOVA to `paBase`. */
function finish(p: Omit<Permissions, 'kind' | 'stage2Write'> & { global: boolean; stage2Write?: boolean }, req: DmaRequest, did: number, pasid: number, kind: VtdTranslationKind, paBase: bigint, size: bigint): VtdIotlbEntry {
  return {
    did,
    pasid,
    kind,
    iova: req.iova & ~(size - 1n),
    size,
    pa: paBase,
    read: p.read,
    write: p.write,
    exec: p.exec,
    user: p.user,
    global: p.global,
    stage2Write: p.stage2Write ?? true,
    dirty: req.write,
  };
}

function inInterruptRange(pa: bigint): boolean {
  return pa >= INTERRUPT_BASE && pa < INTERRUPT_END;
}

function scalableTranslate(u: VtdTranslateUnit, ctx: VtdContextCacheEntry, req: DmaRequest): DmaTranslation {
  const c = ctx.sm!;
  const ctxFpd = c.FPD === 1;
  if (req.ats === 'translated') {
    if (c.DTE === 0) return u.fault(VTD_FAULT.SM_DTE_CLEAR, req, ctxFpd, req.pasid);
    return { ok: true, pa: req.iova, pageSize: 4096n, writable: true };
  }
  if (req.pasid !== undefined && c.PASIDE === 0) return u.fault(VTD_FAULT.SM_PASIDE_CLEAR, req, ctxFpd, req.pasid);
  const pasid = req.pasid ?? c.RID_PASID;
  const reportPasid = req.pasid;
  if (pasid >= PASID_LIMIT[c.PDTS]!) return u.fault(VTD_FAULT.SM_PASID_TOO_LARGE, req, ctxFpd, reportPasid);
  const pe = lookupPasidEntry(u, ctx, pasid, ctxFpd);
  if ('fail' in pe) return u.fault(pe.fail, req, pe.fpd, reportPasid);
  const p = pe.fields;
  const fpd = ctxFpd || pe.dirFpd || p.FPD === 1;
  if (req.priv === true && p.SRE === 0) return u.fault(VTD_FAULT.SM_SRE_CLEAR, req, fpd, reportPasid);
  if (req.exec === true && p.ERE === 0) return u.fault(VTD_FAULT.SM_ERE_CLEAR, req, fpd, reportPasid);
  const wpe = p.WPE === 1;
  const did = pe.did;
  const hit = u.caches.iotlb.lookup(did, pasid, req.iova);
  if (hit !== undefined && permissionFault(hit, req, wpe) === 0 && (!req.write || hit.dirty)) return success(hit, req, wpe);
  const r = walkPasid(u, p, req, did, pasid);
  if (u.observer !== undefined) observeWalk(u.observer, req, pasid, PGTT_NAMES[p.PGTT] ?? `PGTT ${p.PGTT}`, typeof r === 'number' ? 0 : r.levels, typeof r === 'number' ? r : r.entry);
  const failWith = (code: number): DmaTranslation => {
    // Only an ATS translation request gets a failed completion the function may follow with a
    // PRI page request; an untranslated request that faults is recorded, PRE or not.
    if (req.translationRequest === true && c.PRE === 1 && RECOVERABLE.has(code) && u.pageRequestFault !== undefined) return u.pageRequestFault(code, req, reportPasid);
    return u.fault(code, req, fpd, reportPasid);
  };
  if (typeof r === 'number') return failWith(r);
  const pf = permissionFault(r.entry, req, wpe);
  if (pf !== 0) return failWith(pf);
  if (req.write) {
    const d = r.setDirty();
    if (d !== 0) return u.fault(d, req, fpd, reportPasid);
  }
  if (inInterruptRange(r.entry.pa)) return u.fault(VTD_FAULT.SM_INTERRUPT_ADDRESS, req, fpd, reportPasid);
  u.caches.iotlb.insert(r.entry);
  return success(r.entry, req, wpe);
}

interface WalkOutcome {
  readonly entry: VtdIotlbEntry;
  /** Leaf-path entries read (first stage then second stage when nested). */
  readonly levels: number;
  /** Sets the dirty bit(s) of the leaf(s) for a write; returns a fault code or 0. */
  setDirty(): number;
}

const FS_D = VtdFsPte.f.D.mask;
const SS_D = VtdSsPte.f.D.mask;

function setLeafDirty(u: VtdTranslateUnit, w: VtdLeafNumbers, dmask: bigint): boolean {
  // D is bit 6 (first stage) or 9 (second stage): in the low half of the leaf.
  if ((w.leafLo & Number(dmask)) !== 0) return true;
  if (!w.leafWritable) return false;
  const at = BigInt(w.leafAddr);
  u.mem.write64(at, u.mem.read64(at) | dmask);
  return true;
}

function walkPasid(u: VtdTranslateUnit, p: VtdPasidFields, req: DmaRequest, did: number, pasid: number): WalkOutcome | number {
  const o = u.options;
  const pgtt = p.PGTT;
  const ssade = p.SSADE === 1;
  const noop = (): number => 0;
  if (pgtt === VTD_PGTT.PASS_THROUGH) {
    if (req.iova >> BigInt(o.addressWidth) !== 0n) return VTD_FAULT.SM_BEYOND_MAX;
    const all = { read: true, write: true, exec: true, user: true, global: false };
    return { entry: finish(all, req, did, pasid, 'pass-through', req.iova & ~0xfffn, 4096n), levels: 0, setDirty: noop };
  }
  const ss = ssParams(u, p.SSPTPTR, p.AW, ssade);
  const pn = pageOf(req.iova);
  if (pgtt === VTD_PGTT.SECOND_STAGE) {
    const w = walkSecondStagePage(ss, pn);
    if (!w.ok) return secondStageFaultCode(w.why, false);
    return {
      entry: finish(w, req, did, pasid, 'second-stage', BigInt(w.pa), BigInt(w.size)),
      levels: levelsRead(ss.levels, w.size),
      setDirty: () => (ssade ? (setLeafDirty(u, w, SS_D), 0) : 0),
    };
  }
  const levels = p.FSPM === 1 ? 5 : 4;
  const nested = pgtt === VTD_PGTT.NESTED;
  const fs = walkFirstStagePage({ mem: u.mem, haw: o.addressWidth, root: p.FSPTPTR, levels, allow1G: o.firstStage1G, ...(nested ? { stage2: ss } : {}) }, pn);
  if (!fs.ok) return fs.code;
  // The IOVA's offset in the first-stage page (IOVAs are 57 bits at most: from the exact page number).
  const fsOffset = offsetIn(pn, fs.size / 4096) * 4096 + Number(req.iova & 0xfffn);
  const gpa = fs.pa + fsOffset;
  if (!nested) {
    // fs.pa is size-aligned and the width is above any page size: the page base decides.
    if (fs.pa >= POW2[o.addressWidth]!) return VTD_FAULT.SM_FS_RESERVED;
    return {
      entry: finish(fs, req, did, pasid, 'first-stage', BigInt(fs.pa), BigInt(fs.size)),
      levels: levelsRead(levels, fs.size),
      setDirty: () => (setLeafDirty(u, fs, FS_D) ? 0 : VTD_FAULT.SM_FS_WRITE_NESTED),
    };
  }
  // First-stage permissions are checked at the first-stage leaf, before the output GPA is translated.
  const fsFault = permissionFault({ read: true, write: fs.write, exec: fs.exec, user: fs.user, stage2Write: true, kind: 'first-stage' }, req, p.WPE === 1);
  if (fsFault !== 0) return fsFault;
  const s2 = walkSecondStagePage(ss, Math.floor(gpa / 4096));
  if (!s2.ok) return secondStageFaultCode(s2.why, false);
  const size = fs.size < s2.size ? fs.size : s2.size;
  const perms = { read: s2.read, write: fs.write && s2.write, exec: fs.exec && s2.exec, user: fs.user, global: fs.global, stage2Write: s2.write };
  // Output of the IOVA, less its offset in the (smaller) entry size.
  const paBase = s2.pa + offsetIn(gpa, s2.size) - offsetIn(fsOffset, size);
  const entry = finish(perms, req, did, pasid, 'nested', BigInt(paBase), BigInt(size));
  return {
    entry,
    levels: levelsRead(levels, fs.size) + levelsRead(ss.levels, s2.size),
    setDirty: () => {
      if (!setLeafDirty(u, fs, FS_D)) return VTD_FAULT.SM_FS_WRITE_NESTED;
      if (ssade) setLeafDirty(u, s2, SS_D);
      return 0;
    },
  };
}
