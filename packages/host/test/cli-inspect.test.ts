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
});
