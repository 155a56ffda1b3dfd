/**
 * VT-d in-memory translation structures, each declared once as bit fields: root entries
 * (legacy and scalable), context entries (legacy 128-bit and scalable 256-bit), PASID
 * directory and table entries, and first-/second-stage paging entries.
 */
import { addr, defineFieldLayout, num } from './vtd-bitfields.js';

/** Legacy root entry (128 bit), indexed by bus. */
export const VtdRootEntry = defineFieldLayout('root_entry', 2, [num('P', 0, 0), addr('CTP', 0, 63, 12)]);

/** Scalable-mode root entry: lower half for devfn 0..127, upper half for devfn 128..255. */
export const VtdSmRootEntry = defineFieldLayout('sm_root_entry', 2, [
  num('LP', 0, 0),
  addr('LCTP', 0, 63, 12),
  num('UP', 1, 0),
  addr('UCTP', 1, 63, 12),
]);

/** Legacy context entry (128 bit). TT: 0 multi-level, 1 multi-level + device-TLB, 2 pass-through. */
export const VtdContextEntry = defineFieldLayout(
  'context_entry',
  2,
  [num('P', 0, 0), num('FPD', 0, 1), num('TT', 0, 3, 2), addr('SSPTPTR', 0, 63, 12), num('AW', 1, 2, 0), num('DID', 1, 23, 8)],
  { ignored: [[1, 6, 3]] },
);

/** Scalable-mode context entry (256 bit). */
export const VtdSmContextEntry = defineFieldLayout('sm_context_entry', 4, [
  num('P', 0, 0),
  num('FPD', 0, 1),
  num('DTE', 0, 2),
  num('PASIDE', 0, 3),
  num('PRE', 0, 4),
  num('PDTS', 0, 11, 9),
  addr('PASIDDIRPTR', 0, 63, 12),
  num('RID_PASID', 1, 19, 0),
  num('RID_PRIV', 1, 20),
]);

/** PASID directory entry (64 bit). */
export const VtdPasidDirEntry = defineFieldLayout('pasid_dir_entry', 1, [num('P', 0, 0), num('FPD', 0, 1), addr('PASIDPTPTR', 0, 63, 12)]);

/** Scalable-mode PASID table entry (512 bit). */
export const VtdPasidEntry = defineFieldLayout(
  'pasid_entry',
  8,
  [
    num('P', 0, 0),
    num('FPD', 0, 1),
    num('AW', 0, 4, 2),
    num('PGTT', 0, 8, 6),
    num('SSADE', 0, 9),
    addr('SSPTPTR', 0, 63, 12),
    num('DID', 1, 15, 0),
    num('PWSNP', 1, 23),
    num('PGSNP', 1, 24),
    num('SRE', 2, 0),
    num('ERE', 2, 1),
    num('FSPM', 2, 3, 2),
    num('WPE', 2, 4),
    num('NXE', 2, 5),
    num('EAFE', 2, 7),
    addr('FSPTPTR', 2, 63, 12),
  ],
  // qw1[63:25] holds memory-type fields (PAT, EMT, CD …) the model does not interpret.
  { ignored: [[1, 63, 25]] },
);

/** PASID-table entry PGTT values. */
export const VTD_PGTT = { FIRST_STAGE: 1, SECOND_STAGE: 2, NESTED: 3, PASS_THROUGH: 4 } as const;

/** First-stage paging entry (x86-64 format). */
export const VtdFsPte = defineFieldLayout(
  'fs_pte',
  1,
  [
    num('P', 0, 0),
    num('RW', 0, 1),
    num('US', 0, 2),
    num('PWT', 0, 3),
    num('PCD', 0, 4),
    num('A', 0, 5),
    num('D', 0, 6),
    num('PS', 0, 7),
    num('G', 0, 8),
    num('EA', 0, 10),
    addr('ADDR', 0, 51, 12),
    num('XD', 0, 63),
  ],
  // Bits 9, 11 and 62:52 are ignored by the x86 paging format.
  { ignored: [[0, 9, 9], [0, 11, 11], [0, 62, 52]] },
);

/** Second-stage paging entry (VT-d native format). */
export const VtdSsPte = defineFieldLayout(
  'ss_pte',
  1,
  [
    num('R', 0, 0),
    num('W', 0, 1),
    num('X', 0, 2),
    num('EMT', 0, 5, 3),
    num('IPAT', 0, 6),
    num('PS', 0, 7),
    num('A', 0, 8),
    num('D', 0, 9),
    num('SNP', 0, 11),
    addr('ADDR', 0, 51, 12),
    num('TM', 0, 62),
  ],
  { ignored: [[0, 10, 10], [0, 61, 52], [0, 63, 63]] },
);

/** Bits of `addr`-type fields above a host address width (reserved in every entry). */
export function aboveWidthMask(width: number): bigint {
  let m = ABOVE_WIDTH.get(width);
  if (m === undefined) {
    m = ((1n << 52n) - 1n) & ~((1n << BigInt(width)) - 1n);
    ABOVE_WIDTH.set(width, m);
  }
  return m;
}

const ABOVE_WIDTH = new Map<number, bigint>();
