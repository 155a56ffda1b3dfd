// inspect's decoded hardware state for known scenarios: the CDs of a nested SMMUv3 STE and
// the page tables it walks (the guest's stage 1 read through stage 2), the Tegra241 VINTF and
// VCMDQ registers, VT-d PASID entries and a nested first-stage table, each in the HTML.
import { join } from 'node:path';
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { ARM_PTE, SMMU_CD, SMMU_STE } from '@iommufd/hw-model';
import { hardwareTables, renderInspectHtml, type HardwareTable, type Host } from '../src/index.js';
import { cli, examplesDir } from './cli-helpers.js';
import { bootVmm, peek64, poke64 } from './platforms/vmm.js';

const table = (tables: readonly HardwareTable[], caption: RegExp): HardwareTable => {
  const t = tables.find((x) => caption.test(x.caption));
  if (!t) throw new Error(`no table ${caption}; have ${tables.map((x) => x.caption).join(' | ')}`);
  return t;
};
const html = (host: Host) => renderInspectHtml({ title: 't', host, objects: new Map() });
const cells = (row: readonly string[]) => row.map((c) => `<td>${c.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')}</td>`).join('');

describe('inspect: SMMUv3 context descriptors and page tables of a nested domain', () => {
  it('lists the CD of the guest STE and the mapped ranges of its stage-1 (guest) and stage-2 tables', async () => {
    const { host, p, fd, ram, devIds, deviceFds, ioas } = await bootVmm({ platform: 'arm-smmuv3', devices: 1 });
    const parent = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
    const viommu = U.viommuAlloc(p, fd, { devId: devIds[0]!, hwptId: parent, type: U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3 });
    U.vdeviceAlloc(p, fd, { viommuId: viommu.id, devId: devIds[0]!, virtId: 0x31n });
    // Guest structures at IPAs: stage-1 root 0x1000, tables from 0x2000, CD table 0x8000.
    let next = 0x2000n;
    const map = (va: bigint, ipa: bigint) => {
      let t = 0x1000n;
      for (let level = 0; level < 3; level++) {
        const slot = ram + t + ((va >> BigInt(12 + 9 * (3 - level))) & 511n) * 8n;
        let d = peek64(p, slot);
        if ((d & 3n) !== 3n) {
          d = ARM_PTE.encode({ VALID: 1, TABLE: 1, OA: next >> 12n })[0]!;
          next += 0x1000n;
          poke64(p, slot, d);
        }
        t = ARM_PTE.get([d], 'OA') << 12n;
      }
      poke64(p, ram + t + ((va >> 12n) & 511n) * 8n, ARM_PTE.encode({ VALID: 1, TABLE: 1, ATTR: 1, AP: 1, SH: 3, AF: 1, NG: 1, OA: ipa >> 12n })[0]!);
    };
    map(0x4000_0000n, 0x10_0000n);
    map(0x4000_1000n, 0x10_1000n);
    map(0x4000_3000n, 0x18_0000n);
    const cd = SMMU_CD.encode({ T0SZ: 16, IR0: 1, OR0: 1, SH0: 3, EPD1: 1, V: 1, IPS: 5, AA64: 1, R: 1, A: 1, ASET: 1, ASID: 3, TTB0: 0x1000n >> 4n, MAIR: 0xf404ff44n });
    poke64(p, ram + 0x8000n, ...cd);
    const ste = SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: 0x8000n >> 6n }).slice(0, 2);
    const nested = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: viommu.id, data: { type: U.IOMMU_HWPT_DATA_ARM_SMMUV3, bytes: U.iommu_hwpt_arm_smmuv3.encode({ ste }) } });
    U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: nested });

    const tables = hardwareTables(host);
    const ramPa = (ipa: bigint) => {
      // The guest RAM's host pages, as the stage-2 table says (the IOAS maps IPA 0 → the mmap'ed RAM).
      const s2 = table(tables, /AArch64 stage 2\) walked for StreamID 0x8 stage 2/);
      const row = s2.rows.find((r) => {
        const [a, b] = r[0]!.split('–').map((x) => BigInt(x));
        return ipa >= a! && ipa <= b!;
      })!;
      return BigInt(row[1]!.split('–')[0]!) + (ipa - BigInt(row[0]!.split('–')[0]!));
    };
    const cds = table(tables, /^SMMUv3 context descriptors/);
    expect(cds.rows).toEqual([['0x8', '0', `0x${ramPa(0x8000n).toString(16)}`, SMMU_CD.format(cd)]]);
    const s1 = table(tables, /^I\/O page table at 0x1000 \(AArch64 stage 1, tables at guest addresses\) walked for StreamID 0x8 SSID 0 stage 1 \(0000:00:01\.0, HWPT \d+\): 2 mapped range\(s\)$/);
    expect(s1.rows).toEqual([
      ['0x40000000–0x40001fff', '0x100000–0x101fff', 'rw', '3', '0x1000'],
      ['0x40003000–0x40003fff', '0x180000–0x180fff', 'rw', '3', '0x1000'],
    ]);
    expect(s1.caption).toContain(`HWPT ${nested})`);
    // The stage-2 table maps the 2 MiB of guest RAM at IPA 0, read-write.
    const s2 = table(tables, /AArch64 stage 2\) walked for StreamID 0x8 stage 2 \(0000:00:01\.0, HWPT \d+\)/);
    expect(s2.rows.map((r) => r[0]!.split('–')[0])[0]).toBe('0x0');
    expect(s2.rows.at(-1)![0]!.split('–')[1]).toBe('0x1fffff');
    expect(s2.rows.every((r) => r[2] === 'rw' && r[3] === '3')).toBe(true);
    const page = html(host);
    expect(page).toContain('<caption>SMMUv3 context descriptors of stage-1 STEs (valid CDs)</caption>');
    expect(page).toContain(cells(s1.rows[0]!));
    expect(page).toContain(cells(cds.rows[0]!));
  });
});

describe('inspect: Tegra241 CMDQV registers', () => {
  it('shows the VINTFs in use and the allocated VCMDQs of the VCMDQ example, the guest queue stopped at CERROR_ILL', async () => {
    const r = await cli('inspect', join(examplesDir, 'tegra241-cmdqv-vcmdq.yaml'));
    expect(r.code).toBe(0);
    expect(r.out).toContain('<caption>Tegra241 VINTFs in use</caption><thead><tr><th>VINTF</th><th>CONFIG</th><th>STATUS</th><th>SID_MATCH → SID_REPLACE</th></tr></thead>');
    expect(r.out).toContain(cells(['0', 'VINTF_CONFIG{EN=0x1,HYP_OWN=0x1}', '0x40001', '—']));
    expect(r.out).toContain(cells(['1', 'VINTF_CONFIG{EN=0x1,VMID=0x1}', '0x10003', '—']));
    expect(r.out).toContain(cells(['0', '0', '0', 'ring at 0x81000000, 2^18 entries', '0x7', '0x7', '0x1', '0x1', '0x0']));
    // The guest's queue (VINTF 1 LVCMDQ 0): CONS stopped at its second command with ERR = CERROR_ILL.
    expect(r.out).toContain(cells(['4', '1', '0', 'ring at 0x80c16000, 2^8 entries', '0x2', '0x1 CERROR_ILL', '0x1', '0x1', '0x1']));
    expect(r.out).toContain(cells(['CMDQ_ERR_MAP', '0x10']));
  });
});

describe('inspect: Tegra241 VINTF stream mapping', () => {
  it('a vDEVICE on the CMDQV vIOMMU shows as an enabled SID_MATCH → SID_REPLACE slot of the guest VINTF', async () => {
    const { host, p, fd, devIds, ioas } = await bootVmm({ platform: 'tegra241-cmdqv', devices: 2 });
    const parent = U.hwptAlloc(p, fd, { devId: devIds[1]!, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
    const data = U.iommu_viommu_tegra241_cmdqv.encode({ out_vintf_mmap_offset: 0n, out_vintf_mmap_length: 0n });
    const viommu = U.viommuAlloc(p, fd, { devId: devIds[1]!, hwptId: parent, type: U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, data });
    U.vdeviceAlloc(p, fd, { viommuId: viommu.id, devId: devIds[1]!, virtId: 0x31n });
    const vintfs = table(hardwareTables(host), /^Tegra241 VINTFs in use$/);
    // VINTF 0 is the host's (HYP_OWN); the vIOMMU got VINTF 1, its vSID 0x31 maps to 00:02.0's StreamID 0x10.
    expect(vintfs.rows.map((r) => [r[0], r[3]])).toEqual([
      ['0', '—'],
      ['1', '0x31→0x10'],
    ]);
    expect(vintfs.rows[1]![1]).toMatch(/^VINTF_CONFIG\{EN=0x1,VMID=0x[0-9a-f]+\}$/);
    expect(html(host)).toContain(cells(vintfs.rows[1]!));
  });
});

describe('inspect: VT-d PASID entries and a nested first-stage table', () => {
  it('lists the RID_PASID entry (PGTT nested) and the guest first-stage table read through the second stage', async () => {
    const { host, p, fd, ram, devIds, deviceFds, ioas } = await bootVmm({ platform: 'intel-vtd', devices: 1 });
    const parent = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
    // The guest's 4-level x86 table: PML4 at GPA 0x1000, two 4 KiB pages at 0x4000_0000.
    let next = 0x2000n;
    const map = (giova: bigint, gpa: bigint) => {
      let t = 0x1000n;
      for (let level = 4; level > 1; level--) {
        const slot = ram + t + ((giova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n;
        let e = peek64(p, slot);
        if ((e & 1n) === 0n) {
          e = next | 7n;
          next += 0x1000n;
          poke64(p, slot, e);
        }
        t = e & 0x000f_ffff_ffff_f000n;
      }
      poke64(p, ram + t + ((giova >> 12n) & 0x1ffn) * 8n, gpa | 7n);
    };
    map(0x4000_0000n, 0x8_0000n);
    map(0x4000_1000n, 0x8_1000n);
    const nested = U.hwptAlloc(p, fd, {
      devId: devIds[0]!,
      ptId: parent,
      data: { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: U.iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: 0x1000n, addr_width: 48, __reserved: 0 }) },
    });
    U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: nested });
    const tables = hardwareTables(host);
    const pasids = table(tables, /^VT-d PASID entries \(present\)$/);
    expect(pasids.rows).toHaveLength(1);
    expect(pasids.rows[0]!.slice(0, 3)).toEqual(['00:01.0', '0', 'RID_PASID']);
    expect(pasids.rows[0]![3]).toMatch(/^pasid_entry\{P=1 .*PGTT=3 .*FSPTPTR=0x1000\}$/);
    const fs = table(tables, /^I\/O page table at 0x1000 \(VT-d first-stage, tables at guest addresses\) walked for 00:01\.0 PASID 0 \(0000:00:01\.0, HWPT \d+\) first stage: 1 mapped range\(s\)$/);
    expect(fs.caption).toContain(`HWPT ${nested})`);
    expect(fs.rows).toEqual([['0x40000000–0x40001fff', '0x80000–0x81fff', 'rw', '1', '0x1000']]);
    const ss = table(tables, /VT-d second-stage\) walked for 00:01\.0 PASID 0 \(0000:00:01\.0, HWPT \d+\) second stage/);
    expect(ss.rows[0]![0]!.startsWith('0x0–')).toBe(true);
    const page = html(host);
    expect(page).toContain('<caption>VT-d PASID entries (present)</caption>');
    expect(page).toContain(cells(fs.rows[0]!));
  });
});
