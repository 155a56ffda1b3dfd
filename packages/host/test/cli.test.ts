import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

describe('iommufd-sim', () => {
  it('demo runs the VMM session and ends with a summary and exit 0', () => {
    const r = run('demo');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/» host: platform mock, 2 VFIO device\(s\)/);
    expect(r.stdout).toMatch(/IOAS 1: guest RAM mapped at IOVA 0x1000000/);
    expect(r.stdout).toMatch(/DMA \/dev\/vfio\/devices\/vfio0 read {2}IOVA 0x1001000: "hello from guest RAM"/);
    expect(r.stdout).toMatch(/blocked \(F_TRANSLATION\)/);
    expect(r.stdout).toMatch(/vEVENT read: sequence 0, flags 0, virt_id 0x10/);
    expect(r.stdout).toMatch(/Summary/);
    expect(r.stdout).toMatch(/pinned pages after close: 0/);
    expect(r.stdout).toMatch(/demo: OK/);
  });

  it('--help and demo --help exit 0; bad input exits 2 with a message; a failing run exits 1', () => {
    expect(run('--help')).toMatchObject({ status: 0, stdout: expect.stringMatching(/Usage: iommufd-sim <command>/) });
    expect(run('demo', '--help')).toMatchObject({ status: 0, stdout: expect.stringMatching(/--devices N/) });
    expect(run('frobnicate')).toMatchObject({ status: 2, stderr: expect.stringMatching(/unknown command 'frobnicate'/) });
    expect(run('demo', '--devices', 'x')).toMatchObject({ status: 2, stderr: expect.stringMatching(/--devices must be an integer/) });
    expect(run('demo', '--bogus')).toMatchObject({ status: 2 });
    expect(run('demo', '--platform', 'vax')).toMatchObject({ status: 2, stderr: expect.stringMatching(/unknown platform 'vax'/) });
  });

  it('the binary exits with the documented codes for run: 0 pass, 1 failed expectation, 3 invalid scenario', () => {
    const examples = fileURLToPath(new URL('../../../examples/', import.meta.url));
    expect(run('run', `${examples}mock-nested.yaml`, '--quiet')).toMatchObject({ status: 0, stderr: '' });
    expect(run('run', `${examples}mock-expect-fails.yaml`, '--quiet')).toMatchObject({ status: 1, stderr: expect.stringMatching(/step 5 \(line 13\) ioctl IOMMU_DESTROY: expected success, got EBUSY/) });
    expect(run('run', cli)).toMatchObject({ status: 3, stderr: expect.stringMatching(/invalid scenario/) });
  });

  it('a reader that goes away (demo | head) ends the run with 141, as SIGPIPE would, and nothing on stderr', async () => {
    const child = spawn(process.execPath, [cli, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // Close our end before the demo's first line: its first write meets a closed pipe.
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(code).toBe(141);
    expect(err).toBe('');
  });
});
