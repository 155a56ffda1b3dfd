import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_CODES, parseScenario, runScenario, ScenarioError } from '../src/index.js';
import { cli, exampleFiles, examplesDir, tmp } from './cli-helpers.js';

const scenarioFile = (text: string, name = 's.yaml'): string => {
  const f = join(tmp(), name);
  writeFileSync(f, text);
  return f;
};

const invalid = (text: string): ScenarioError => {
  try {
    parseScenario(text);
  } catch (e) {
    if (e instanceof ScenarioError) return e;
    throw e;
  }
  throw new Error('the scenario was accepted');
};

describe('iommufd-sim: exit codes and help', () => {
  it('documents the exit codes in --help and in every command help', async () => {
    expect(EXIT_CODES).toEqual({ ok: 0, failed: 1, usage: 2, invalidScenario: 3 });
    const top = await cli('--help');
    expect(top.code).toBe(0);
    for (const c of ['demo', 'run', 'trace', 'inspect', 'bench']) expect(top.out).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(top.out).toMatch(/3 {2}invalid scenario or trace file/);
    for (const c of ['demo', 'run', 'trace', 'inspect', 'bench']) {
      const r = await cli(c, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage: iommufd-sim ${c}`));
      expect(r.out).toMatch(/Exit codes:/);
      expect(await cli('help', c)).toMatchObject({ code: 0, out: expect.stringMatching(new RegExp(`^Usage: iommufd-sim ${c}`)) });
    }
  });

  it('exits 2 on a bad command line, naming what was wrong', async () => {
    expect(await cli()).toMatchObject({ code: 2, err: expect.stringMatching(/Usage: iommufd-sim <command>/) });
    expect(await cli('run')).toMatchObject({ code: 2, err: expect.stringMatching(/expected 1 argument\(s\), got 0/) });
    expect(await cli('run', 'a.yaml', 'b.yaml')).toMatchObject({ code: 2, err: expect.stringMatching(/got 2: a\.yaml b\.yaml/) });
    expect(await cli('run', '/nonexistent/x.yaml')).toMatchObject({ code: 2, err: expect.stringMatching(/cannot read '\/nonexistent\/x\.yaml': ENOENT/) });
    expect(await cli('run', 'x.yaml', '--frob')).toMatchObject({ code: 2, err: expect.stringMatching(/Unknown option '--frob'/) });
    expect(await cli('demo', '--platform', 'sparc')).toMatchObject({ code: 2, err: expect.stringMatching(/unknown platform 'sparc'/) });
    expect(await cli('trace')).toMatchObject({ code: 2, err: expect.stringMatching(/expected --replay TRACE\.json/) });
  });
});

describe('iommufd-sim run: scenario validation (exit 3, naming the line and step)', () => {
  it('names the YAML line and step of a step with no action', () => {
    const e = invalid('machine: { platform: mock }\nsteps:\n  - open: /dev/iommu\n  - frobnicate: 1\n');
    expect(e.message).toBe(
      "step 2 (line 4): expected exactly one action key (open, close, mmap, memfd, poke, peek, ioctl, bind, attach, detach, dma, read), got 'frobnicate'",
    );
    expect([e.line, e.step]).toEqual([4, 1]);
  });

  it('names the line of the bad field inside a step and what was expected', () => {
    const e = invalid('machine: { platform: mock }\nsteps:\n  - open: /dev/iommu\n  - dma:\n      device: 0\n      iova: 0x1000\n      length: -4\n');
    expect(e.message).toMatch(/^step 2 \(line 7\): dma → dma\.length: Too small: expected number to be >0/);
    expect(e.line).toBe(7);
  });

  it('rejects unknown keys, a bad machine and bad errno names', () => {
    expect(invalid('machine: { platform: mock, cpus: 4 }\nsteps: []\n').message).toMatch(/^machine: Unrecognized key: "cpus"/);
    expect(invalid('machine: { platform: vax }\nsteps: []\n').message).toMatch(/^machine\.platform: Invalid option: expected one of "mock"\|"arm-smmuv3"/);
    expect(invalid('machine: { platform: mock }\nsteps:\n  - open: /dev/iommu\n    expect: { errno: busy }\n').message).toMatch(
      /^step 1 \(line 4\): open → expect\.errno: an errno name such as EBUSY, or 0/,
    );
    expect(invalid('machine: { platform: mock }\nstep: []\n')).toMatchObject({ line: 2, message: "unknown top-level key 'step': expected name, machine, steps" });
    expect(invalid('machine: { platform: mock\n').message).toMatch(/^not valid YAML\/JSON/);
  });

  it('validates JSON scenarios with line numbers too', () => {
    const e = invalid('{\n  "machine": { "platform": "mock" },\n  "steps": [\n    { "open": "/dev/iommu" },\n    { "close": null }\n  ]\n}\n');
    expect(e.message).toMatch(/^step 2 \(line 5\): close → close: Invalid input/);
  });

  it('a machine that createHost rejects is an invalid scenario (exit 3)', async () => {
    const r = await cli('run', scenarioFile('machine: { platform: mock, ramBytes: 4097 }\nsteps: []\n'));
    expect(r.code).toBe(3);
    expect(r.err).toBe('iommufd-sim run: invalid scenario: machine: ramBytes must be a multiple of 4096 and at least 1 MiB, got 4097\n');
  });

  it('machine.hardware reaches createHost: a CMDQV with one LVCMDQ per VINTF refuses HW queue index 1; a wrong section is exit 3', async () => {
    const text = (hardware: string) =>
      `machine: { platform: tegra241-cmdqv, devices: 1, hardware: ${hardware} }
steps:
  - mmap: { length: 0x200000 }
    as: ram
  - open: /dev/iommu
    as: iommufd
  - ioctl: IOMMU_IOAS_ALLOC
    as: ioas
  - ioctl: IOMMU_IOAS_MAP
    fields: { flags: [IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE], ioas_id: $ioas, user_va: $ram, length: 0x200000, iova: 0 }
  - bind: { device: 0 }
    as: dev
  - ioctl: IOMMU_HWPT_ALLOC
    fields: { flags: IOMMU_HWPT_ALLOC_NEST_PARENT, dev_id: $dev, pt_id: $ioas }
    as: parent
  - attach: { device: $dev, pt: $parent }
  - mmap: { length: 0x1000 }
    as: scratch
  - ioctl: IOMMU_VIOMMU_ALLOC
    fields: { type: IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, dev_id: $dev, hwpt_id: $parent, data_len: 16, data_uptr: $scratch }
    as: viommu
  - ioctl: IOMMU_HW_QUEUE_ALLOC
    fields: { viommu_id: $viommu, type: IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, index: 0, nesting_parent_iova: 0x10000, length: 0x1000 }
  - ioctl: IOMMU_HW_QUEUE_ALLOC
    fields: { viommu_id: $viommu, type: IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, index: 1, nesting_parent_iova: 0x11000, length: 0x1000 }
    expect: { errno: EINVAL }
`;
    const report = await runScenario(parseScenario(text('{ cmdqv: { vcmdqsLog2: 3, vintfsLog2: 3 } }')));
    expect(report.failure).toBeUndefined();
    expect(report.outcomes).toHaveLength(11);
    // The preset's default CMDQV (4 LVCMDQs per VINTF) takes index 1, so the expectation fails there.
    expect((await runScenario(parseScenario(text('{}')))).failure?.index).toBe(10);
    const r = await cli('run', scenarioFile(text('{ vtd: { nested: false } }')));
    expect(r.code).toBe(3);
    expect(r.err).toBe("iommufd-sim run: invalid scenario: machine: hardware.vtd is not an option of platform 'tegra241-cmdqv'; it takes 'smmu', 'cmdqv', 'devices'\n");
  });

  it('an unknown ioctl, struct field or $reference is an invalid scenario (exit 3) at run time', async () => {
    const head = 'machine: { platform: mock }\nsteps:\n  - open: /dev/iommu\n';
    const cases: [string, RegExp][] = [
      ['  - ioctl: IOMMU_FROB\n', /step 2 \(line 4\): 'IOMMU_FROB' is not an ioctl of @iommufd\/uapi/],
      ['  - ioctl: IOMMU_IOAS_ALLOC\n    fields: { ioas: 1 }\n', /struct iommu_ioas_alloc has no field 'ioas' \(fields: size, flags, out_ioas_id\)/],
      ['  - ioctl: IOMMU_DESTROY\n    fields: { id: $ioas }\n', /'\$ioas' is not the `as` name of an earlier step \(known: none\)/],
      ['  - ioctl: IOMMU_DESTROY\n    fields: { id: NOT_A_CONSTANT }\n', /'NOT_A_CONSTANT' is neither a number/],
    ];
    for (const [step, message] of cases) {
      const r = await cli('run', scenarioFile(head + step));
      expect(r.code).toBe(3);
      expect(r.err).toMatch(message);
    }
  });
});

describe('iommufd-sim run: examples', () => {
  it('ships examples for the mock preset (YAML and JSON) and one deliberate failure', () => {
    expect(exampleFiles()).toContain('mock-nested.yaml');
    expect(exampleFiles()).toContain('mock-expect-fails.yaml');
    expect(exampleFiles()).toContain('mock-iova-alloc.json');
    for (const preset of ['arm-smmuv3', 'tegra241-cmdqv', 'intel-vtd']) expect(exampleFiles()).toContain(`${preset}-basic.yaml`);
    expect(exampleFiles()).toContain('tegra241-cmdqv-vcmdq.yaml');
  });

  for (const file of exampleFiles().filter((f) => !f.includes('fails'))) {
    it(`${file} passes (exit 0)`, async () => {
      const r = await cli('run', join(examplesDir, file), '--quiet');
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/step\(s\) passed\n$/);
    });
  }

  it('the deliberate failed expectation exits 1 with the step, line, ioctl and errno', async () => {
    const r = await cli('run', join(examplesDir, 'mock-expect-fails.yaml'));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/✓ step 4 \(line 12\) VFIO_DEVICE_ATTACH_IOMMUFD_PT/);
    expect(r.err).toBe(`iommufd-sim: ${join(examplesDir, 'mock-expect-fails.yaml')}: step 5 (line 13) ioctl IOMMU_DESTROY: expected success, got EBUSY (-16)\n`);
  });

  it('checks bytes, faults, output fields and vEVENT contents, failing on each mismatch', async () => {
    const base = `machine: { platform: mock }
steps:
  - mmap: { length: 0x1000 }
    as: ram
  - poke: { at: $ram+8, hex: "de ad be ef" }
  - open: /dev/iommu
  - ioctl: IOMMU_IOAS_ALLOC
    as: ioas
  - ioctl: IOMMU_IOAS_MAP
    fields: { ioas_id: $ioas, flags: [IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE], user_va: $ram, length: 0x1000, iova: MOCK_APERTURE_START }
    expect: { fields: { iova: MOCK_APERTURE_START } }
  - bind: { device: 0 }
    as: dev
  - attach: { device: $dev, pt: $ioas }
`;
    expect((await cli('run', scenarioFile(`${base}  - peek: { at: $ram+8, length: 4 }\n    expect: { hex: "de ad be ef" }\n`))).code).toBe(0);
    const cases: [string, string][] = [
      ['  - peek: { at: $ram+8, length: 4 }\n    expect: { hex: "de ad be 00" }\n', 'step 8 (line 15) peek: expected bytes de ad be 00, got de ad be ef'],
      ['  - dma: { device: $dev, iova: MOCK_APERTURE_START+8, length: 4 }\n    expect: { text: "x" }\n', 'step 8 (line 15) dma: expected text "x", got bytes de'],
      ['  - dma: { device: 0, iova: MOCK_APERTURE_START, length: 4 }\n    expect: { fault: true }\n', 'step 8 (line 15) dma: expected a fault, the DMA completed'],
      ['  - dma: { device: 0, iova: 0, length: 4 }\n', 'step 8 (line 15) dma: DMA at IOVA 0x0 faulted: F_TRANSLATION'],
      ['  - ioctl: IOMMU_IOAS_ALLOC\n    expect: { fields: { out_ioas_id: 7 } }\n', 'step 8 (line 15) ioctl IOMMU_IOAS_ALLOC: expected out_ioas_id = 0x7, got 0x4'],
      ['  - ioctl: IOMMU_DESTROY\n    fields: { id: $ioas }\n    expect: { errno: ENOENT }\n', 'step 8 (line 15) ioctl IOMMU_DESTROY: expected errno ENOENT, got EBUSY (-16)'],
    ];
    for (const [step, message] of cases) {
      const r = await cli('run', scenarioFile(base + step));
      expect(r.err).toMatch(message);
      expect(r.code).toBe(1);
    }
  });

  it('a vEVENT whose contents differ from the expectation fails the read step', async () => {
    const text = readFileSync(join(examplesDir, 'mock-nested.yaml'), 'utf8');
    const wrong = text.replace('fields: { virt_id: 0x10 } } }', 'fields: { virt_id: 0x11 } } }');
    expect(wrong).not.toBe(text);
    const r = await cli('run', scenarioFile(wrong));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/step 27 \(line 79\) read: expected virt_id = 0x11, got 0x10\n$/);
  });

  it('runScenario reports outcomes and the objects seen while the context was open', async () => {
    const s = parseScenario('machine: { platform: mock }\nsteps:\n  - open: /dev/iommu\n    as: fd\n  - ioctl: IOMMU_IOAS_ALLOC\n  - close: $fd\n');
    const report = await runScenario(s);
    expect(report.failure).toBeUndefined();
    expect(report.outcomes.map((o) => o.summary)).toEqual(['open(/dev/iommu) = 3', 'IOMMU_IOAS_ALLOC = 0 (out_ioas_id 1)', 'close(3) = 0']);
    expect(report.objects.get(3)).toEqual([{ id: 1, type: 'IOAS', users: 1, state: 'live', refs: [] }]);
  });
});
