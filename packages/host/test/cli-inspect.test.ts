import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { objectGraphSvg } from '../src/index.js';
import { cli, examplesDir, tmp } from './cli-helpers.js';

describe('iommufd-sim inspect', () => {
  it('renders every object of the run as an SVG box and every reference as an arrow', async () => {
    const r = await cli('inspect', join(examplesDir, 'mock-nested.yaml'));
    expect(r.code).toBe(0);
    const html = r.out;
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).not.toMatch(/<script|<link|src="http/);
    const boxes = [...html.matchAll(/<g class="object" data-id="(\d+)" data-type="(\w+)">/g)].map((m) => `${m[2]} ${m[1]}`);
    // At the end of the example the nested HWPT and vDEVICE are destroyed; DEVICE 3 is still attached to HWPT 4.
    expect(boxes.sort()).toEqual(['DEVICE 2', 'DEVICE 3', 'HWPT_PAGING 4', 'HWPT_PAGING 5', 'IOAS 1', 'VEVENTQ 9', 'VIOMMU 6']);
    const arrows = [...html.matchAll(/<path class="ref" data-from="(\d+)" data-to="(\d+)"/g)].map((m) => `${m[1]}->${m[2]}`);
    expect(arrows.sort()).toEqual(['3->4', '4->1', '5->1', '6->5', '9->6']);
    expect(html).toMatch(/<caption>VFIO devices<\/caption>.*<td>\/dev\/vfio\/devices\/vfio0<\/td><td>2<\/td>/s);
    expect(html).toMatch(/<h1>mock nested translation<\/h1>/);
  });

  it('tegra241-cmdqv: the HW queue holds its vIOMMU, and its internal ACCESS holds the IOAS', async () => {
    const r = await cli('inspect', join(examplesDir, 'tegra241-cmdqv-vcmdq.yaml'));
    expect(r.code).toBe(0);
    const boxes = [...r.out.matchAll(/<g class="object" data-id="(\d+)" data-type="(\w+)">/g)].map((m) => `${m[2]} ${m[1]}`);
    expect(boxes.sort()).toEqual(['ACCESS 6', 'DEVICE 2', 'HWPT_PAGING 3', 'HW_QUEUE 5', 'IOAS 1', 'VIOMMU 4']);
    const arrows = [...r.out.matchAll(/<path class="ref" data-from="(\d+)" data-to="(\d+)"/g)].map((m) => `${m[1]}->${m[2]}`);
    expect(arrows.sort()).toEqual(['2->3', '3->1', '4->3', '5->4', '6->1']);
  });

  it('run --inspect writes the same page to a file', async () => {
    const f = join(tmp(), 'g.html');
    expect((await cli('run', join(examplesDir, 'mock-nested.yaml'), '--quiet', '--inspect', f)).code).toBe(0);
    expect(readFileSync(f, 'utf8')).toBe((await cli('inspect', join(examplesDir, 'mock-nested.yaml'))).out);
  });

  it('marks reserved objects and escapes names', () => {
    const svg = objectGraphSvg([{ id: 1, type: 'A<B', users: 0, state: 'reserved', refs: [] }]);
    expect(svg).toContain('data-type="A&lt;B"');
    expect(svg).toContain('stroke-dasharray="4 3"');
  });
});

describe('iommufd-sim bench', () => {
  it('--help names the benchmarks and the exit codes', async () => {
    const r = await cli('bench', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/tools\/bench\.mjs/);
    expect(r.out).toMatch(/vsmmu-mix, translate, ioctl, map, scale/);
  });

  it('an unknown benchmark name is a usage error (exit 2) before anything runs', async () => {
    expect(await cli('bench', 'map', 'frob')).toMatchObject({ code: 2, err: expect.stringMatching(/unknown benchmark 'frob' \(expected vsmmu-mix, translate, ioctl, map, scale\)/) });
  });
});

describe('iommufd-sim inspect: decoded hardware state', () => {
  it('arm-smmuv3: queue registers with CONS caught up with PROD, and the stage-2 STE of each attached device', async () => {
    const r = await cli('inspect', join(examplesDir, 'arm-smmuv3-basic.yaml'));
    expect(r.code).toBe(0);
    const prod = /<td>CMDQ_PROD<\/td><td>(0x[0-9a-f]+)<\/td>/.exec(r.out)?.[1];
    expect(prod).toBeDefined();
    expect(r.out).toContain(`<td>CMDQ_CONS</td><td>${prod}</td>`);
    expect(r.out).toMatch(/<caption>SMMUv3 STEs that translate or bypass \(stream table at 0x[0-9a-f]+, 2-level; \d+ more valid STE\(s\) abort\)<\/caption>/);
    // Device 00:01.0 is StreamID 8: on the nest parent, a stage-2 STE (CONFIG 0b110).
    expect(r.out).toMatch(/<tr><td>8<\/td><td>0x[0-9a-f]+<\/td><td>STE\{V=0x1,CONFIG=0x6,[^<]*S2TTB=0x[0-9a-f]+\}<\/td><\/tr>/);
  });

  it('intel-vtd: scalable-mode context entries and the present PASID entries (the RID_PASID entry of the attached device, second-stage)', async () => {
    const r = await cli('inspect', join(examplesDir, 'intel-vtd-basic.yaml'));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/<caption>VT-d scalable-mode context entries of bus 0/);
    expect(r.out).toMatch(/<td>00:01\.0<\/td><td>0x[0-9a-f]+<\/td><td>sm_context_entry\{P=1 [^<]*PASIDDIRPTR=0x[0-9a-f]+/);
    expect(r.out).toMatch(/<td>00:01\.0<\/td><td>0<\/td><td>RID_PASID<\/td><td>pasid_entry\{P=1 FPD=0 AW=2 PGTT=2 /);
    // Device 00:02.0 was detached at the end of the scenario: its RID_PASID entry is cleared,
    // so only present entries (00:01.0's) are listed.
    expect(r.out).not.toMatch(/<td>00:02\.0<\/td><td>0<\/td><td>RID_PASID<\/td>/);
    const pasidRows = /<caption>VT-d PASID entries \(present\)<\/caption>.*?<tbody>(.*?)<\/tbody>/s.exec(r.out)![1]!.match(/<tr>/g);
    expect(pasidRows).toHaveLength(1);
  });

  it('mock: says there is no hardware model', async () => {
    expect((await cli('inspect', join(examplesDir, 'mock-nested.yaml'))).out).toContain('The mock platform has no hardware model.');
  });
});
