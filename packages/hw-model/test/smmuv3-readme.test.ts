import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import * as hw from '../src/index.js';

it('the README SMMUv3 example runs and ends with a fault after the TLBI', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const block = /```ts\n([\s\S]*?)```/.exec(readme)![1]!;
  // Run the block as written (types stripped by hand for the few annotations it has).
  const body = block
    .replace(/^import .*$/m, '')
    .replace(/ as SmmuV3\)/g, ')')
    .replace(/\(off: number\)/g, '(off)')
    .replace(/\(next: bigint\)/g, '(next)')
    .replace(/\)\[0\]!/g, ')[0]')
    .replace(/m\.devices\[0\]!/g, 'm.devices[0]');
  const lines = body.trimEnd().split('\n');
  const last = lines.pop()!;
  const script = `${lines.join('\n')}\nreturn { result: dev.dma({ iova: 0x1000n, length: 4, write: false }), data: mem.read32(data), tlb: ${last.replace(/;.*$/, '')} };`;
  const run = new Function(...Object.keys(hw), script) as (...a: unknown[]) => { result: hw.DmaResult; data: number; tlb: unknown[] };
  const out = run(...Object.values(hw));
  expect(out.data).toBe(0x04030201);
  expect(out.tlb).toEqual([]);
  expect(out.result).toEqual({ ok: false, bytesDone: 0, fault: { kind: 'F_TRANSLATION', code: 0x10, iova: 0x1000n, write: false, recorded: false, stall: false } });
});
