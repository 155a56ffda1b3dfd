// Property: after any interleaving of forks and writes, every process reads what fork(2)
// semantics say — shared mappings (anonymous or memfd) are one set of pages for the whole
// family, private ones (anonymous, or a private memfd mapping's written pages) are per
// process and copied at fork.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '@iommufd/uapi';
import type { HostProcess } from '../src/index.js';
import { makeProcess } from './process-helpers.js';

const P = 4096n;
const PAGES = 3;
const REGIONS = ['sharedAnon', 'privateAnon', 'sharedFile', 'privateFile'] as const;
type Region = (typeof REGIONS)[number];

type Op = { kind: 'write'; proc: number; region: Region; page: number; value: number } | { kind: 'fork'; proc: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), proc: fc.nat(3), region: fc.constantFrom(...REGIONS), page: fc.nat(PAGES - 1), value: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fork' as const), proc: fc.nat(3) }) },
);

/** The reference: what each process must read at each (region, page). */
class Model {
  readonly shared = new Map<string, number>();
  readonly file = new Map<string, number>();
  readonly privates: Map<string, number>[] = [new Map()];

  write(proc: number, region: Region, page: number, value: number): void {
    const key = `${region}:${page}`;
    if (region === 'sharedAnon') this.shared.set(key, value);
    else if (region === 'sharedFile') this.file.set(`${page}`, value);
    else this.privates[proc]!.set(key, value);
  }

  read(proc: number, region: Region, page: number): number {
    const key = `${region}:${page}`;
    if (region === 'sharedAnon') return this.shared.get(key) ?? 0;
    if (region === 'sharedFile') return this.file.get(`${page}`) ?? 0;
    const own = this.privates[proc]!.get(key);
    if (own !== undefined) return own;
    // A private file page not written by this process (nor its ancestors before the fork) is the file's.
    return region === 'privateFile' ? (this.file.get(`${page}`) ?? 0) : 0;
  }

  fork(proc: number): void {
    this.privates.push(new Map(this.privates[proc]));
  }
}

describe('fork: memory semantics (property)', () => {
  it('every process reads what fork(2) semantics say after any forks and writes', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const { p } = makeProcess();
        const len = BigInt(PAGES) * P;
        const mfd = p.memfdCreate('ram', len);
        const va: Record<Region, bigint> = {
          sharedAnon: p.mmap(len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS),
          privateAnon: p.mmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS),
          sharedFile: p.mmap(len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd),
          privateFile: p.mmap(len, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd),
        };
        const procs: HostProcess[] = [p];
        const model = new Model();
        for (const o of ops) {
          const i = o.proc % procs.length;
          if (o.kind === 'fork') {
            if (procs.length === 4) continue;
            procs.push(procs[i]!.fork());
            model.fork(i);
          } else {
            expect(procs[i]!.poke(va[o.region] + BigInt(o.page) * P + 7n, Uint8Array.of(o.value))).toBe(0);
            model.write(i, o.region, o.page, o.value);
          }
        }
        procs.forEach((proc, i) => {
          for (const region of REGIONS) {
            for (let page = 0; page < PAGES; page++) {
              const got = proc.peek(va[region] + BigInt(page) * P + 7n, 1) as Uint8Array;
              expect([region, page, got[0]]).toEqual([region, page, model.read(i, region, page)]);
            }
          }
        });
      }),
      { numRuns: 150 },
    );
  });
});
