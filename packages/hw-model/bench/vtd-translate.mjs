// `translate` benchmark (shared/design/BENCH.md), Intel VT-d part: DMA translations per second
// through a nested VT-d unit (PASID entry PGTT=3), on an IOTLB hit and on an IOTLB miss (full
// two-stage walk: every first-stage table GPA and the output GPA go through the second stage;
// the context- and PASID-caches stay warm, as on hardware), next to a C walker over the same
// tables (tools/bench/translate-vtd.c, built with `cc -O2`) in the same run.
// Usage: node bench/vtd-translate.mjs [NAME] (or `pnpm bench translate`)  — runs only when NAME is absent or `translate`.
import { benchSelected, measureTranslator, runCWalker, TRANSLATE_OPS } from './c-walker.mjs';
import { VTD_GCMD, VTD_REG, VtdFsPte, VtdPasidEntry, VtdSmContextEntry, VtdSmRootEntry, VtdSsPte, createMachine } from '../dist/index.js';

if (!benchSelected('translate')) process.exit(0);
const BASE = 0xfed9_0000n;
const DID = 0x2a;
const SID = 0x10; // 00:02.0
const G = 0x8000_0000n; // guest-physical base
const GUEST_PAGES = 2048;
const IOVA_PAGES = 1024;

const m = createMachine({ ramBytes: 0x400_0000n, strict: true, iommus: [{ kind: 'vtd', name: 'dmar', base: BASE }] });
const mem = m.memory;
const vtd = m.iommus.get('dmar');
const page = () => mem.allocPages(1)[0];

/** Writes a 4-level mapping: `entry(next)` builds a non-leaf entry, `leaf` the leaf. */
function map(root, ia, leaf, nonLeaf, present, alloc, toPa) {
  let t = root;
  for (let level = 4; level > 1; level--) {
    const at = toPa(t) + ((ia >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n;
    let d = mem.read64(at);
    if (!present(d)) {
      d = nonLeaf(alloc());
      mem.write64(at, d);
    }
    t = d & 0x000f_ffff_ffff_f000n;
  }
  mem.write64(toPa(t) + ((ia >> 12n) & 511n) * 8n, leaf);
}

// Second stage: GPA G + i·4K ↦ scattered host pages.
const ssRoot = page();
const ssNonLeaf = (next) => VtdSsPte.encode({ R: 1, W: 1, ADDR: next })[0];
const ssPresent = (d) => VtdSsPte.f.R.of(d) === 1 || VtdSsPte.f.W.of(d) === 1;
const guest = mem.allocPages(GUEST_PAGES, { contiguous: false });
guest.forEach((pa, i) => map(ssRoot, G + BigInt(i) * 0x1000n, VtdSsPte.encode({ R: 1, W: 1, ADDR: pa })[0], ssNonLeaf, ssPresent, page, (x) => x));
const toPa = (gpa) => guest[Number((gpa - G) >> 12n)] + (gpa & 0xfffn);
// Guest first stage in guest memory: IOVA 0x1000_0000 + j·4K ↦ guest data pages.
let nextGuest = 0;
const galloc = () => G + BigInt(nextGuest++) * 0x1000n;
const fsRoot = galloc();
const fsNonLeaf = (next) => VtdFsPte.encode({ P: 1, RW: 1, US: 1, A: 1, ADDR: next })[0];
const fsPresent = (d) => VtdFsPte.f.P.of(d) === 1;
const iovas = [];
for (let j = 0; j < IOVA_PAGES; j++) {
  const iova = 0x1000_0000n + BigInt(j) * 0x1000n + BigInt((j * 64) & 0xfff);
  const leaf = VtdFsPte.encode({ P: 1, RW: 1, US: 1, A: 1, D: 1, ADDR: G + BigInt(1024 + ((j * 7) % 1000)) * 0x1000n })[0];
  map(fsRoot, iova & ~0xfffn, leaf, fsNonLeaf, fsPresent, galloc, toPa);
  iovas.push(iova);
}
// Scalable root → context (devfn 0x10) → PASID directory → PASID 0 entry (nested, DID 0x2a).
const [root, ctx, dir, ptable] = [page(), page(), page(), page()];
mem.write64(root, VtdSmRootEntry.encode({ LP: 1, LCTP: ctx })[0]);
VtdSmContextEntry.encode({ P: 1, PDTS: 7, PASIDDIRPTR: dir }).forEach((w, i) => mem.write64(ctx + 0x10n * 32n + BigInt(i * 8), w));
mem.write64(dir, 1n | ptable);
VtdPasidEntry.encode({ P: 1, AW: 2, PGTT: 3, SSPTPTR: ssRoot, DID, FSPTPTR: fsRoot }).forEach((w, i) => mem.write64(ptable + BigInt(i * 8), w));
mem.write64(BASE + BigInt(VTD_REG.RTADDR), root | (1n << 10n));
mem.write32(BASE + BigInt(VTD_REG.GCMD), VTD_GCMD.SRTP);
mem.write32(BASE + BigInt(VTD_REG.GCMD), VTD_GCMD.TE);

const reqs = iovas.map((iova) => ({ requesterId: SID, streamId: SID, iova, write: false }));

const { hit, miss, checksum: hex } = measureTranslator({
  iommu: 'vtd',
  translate: (r) => vtd.translate(r),
  clearTlb: () => vtd.caches.iotlb.clear(),
  reqs,
  hitOps: TRANSLATE_OPS.hit,
  missOps: TRANSLATE_OPS.miss,
});

runCWalker({ iommu: 'vtd', name: 'translate-vtd', words: [0x5654445452414e53n, fsRoot, ssRoot, BigInt(DID), BigInt(iovas.length), ...iovas], store: mem.store, hitOps: TRANSLATE_OPS.cHit, missOps: TRANSLATE_OPS.cMiss, hit, miss, checksum: hex });
