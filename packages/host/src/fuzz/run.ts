/**
 * The fuzzer's entry points: `runFuzz` (seeded random runs with a call or time budget,
 * minimizing the first failing run of each seed), `replay` (re-run a saved case) and the JSON
 * case format.
 */
import type { PlatformName } from '../platform.js';
import { minimize } from './minimize.js';
import { FUZZ_OP_KINDS, generateOp, type FuzzOp } from './ops.js';
import { FuzzRandom } from './prng.js';
import { FuzzSession, type FuzzFinding } from './session.js';

/** Options of {@link runFuzz}. */
export interface FuzzOptions {
  /** First seed. Default 1. */
  readonly seed?: number;
  /** How many seeds to run, `seed`, `seed + 1`, … Default 1. */
  readonly seeds?: number;
  /** Operations per seed before the final close-everything check. Default 2000. */
  readonly callsPerSeed?: number;
  /** Stop after this many operations in total (all seeds). Default: seeds × callsPerSeed. */
  readonly calls?: number;
  /** Stop starting new operations after this many seconds (wall clock). Default: no limit. */
  readonly seconds?: number;
  /** Machine preset. Default 'mock'. */
  readonly platform?: PlatformName;
  /** Devices behind the IOMMU. Default 3. */
  readonly devices?: number;
  /** Minimize failing runs (delta debugging). Default true. */
  readonly minimize?: boolean;
  /** Replays the minimizer may spend per failing seed. Default 400. */
  readonly minimizeTests?: number;
  /**
   * Known findings to step over: a finding whose message matches one of these is counted in
   * {@link FuzzReport.ignored} and ends its seed without a failure (the state after a known
   * bug is corrupt, so what follows would only report its consequences); the run goes on
   * with the next seed.
   */
  readonly ignore?: readonly RegExp[];
  /** Called with each failing case once minimized (e.g. to write it to a file). */
  readonly onFailure?: (failure: FuzzCase) => void | Promise<void>;
}

/** A replayable run: the platform, the operations, and what went wrong when it was saved. */
export interface FuzzCase {
  /** Format tag. */
  readonly format: 'iommufd-fuzz-case/1';
  /** Machine preset the case runs on. */
  readonly platform: PlatformName;
  /** Devices behind the IOMMU. */
  readonly devices: number;
  /** Seed the operations came from (informational; the operations are what replays). */
  readonly seed: number;
  /** The operations, in order. */
  readonly ops: readonly FuzzOp[];
  /** The findings observed when the case was saved. */
  readonly findings: readonly FuzzFinding[];
}

/** Summary of {@link runFuzz}. */
export interface FuzzReport {
  /** Operations executed (including the final check of each seed). */
  readonly operations: number;
  /** Syscall-level calls those operations made (ioctl, open, mmap, dma, …). */
  readonly calls: number;
  /** Calls that returned an errno (expected: most fuzzed input is rejected). */
  readonly errors: number;
  /** Findings of every kind (each failing seed is counted once per finding of its first failing op). */
  readonly findings: number;
  /** Findings that are broken invariants (not exceptions or malformed returns). */
  readonly invariantFailures: number;
  /** Findings stepped over because they matched {@link FuzzOptions.ignore} (each ends its seed). */
  readonly ignored: number;
  /** Wall-clock seconds. */
  readonly seconds: number;
  /** Seeds run. */
  readonly seeds: readonly number[];
  /** One minimized case per failing seed. */
  readonly failures: readonly FuzzCase[];
}

/** Result of {@link replay}. */
export interface ReplayResult {
  /** Findings, in order; the run stops at the first operation that produced any. */
  readonly findings: readonly FuzzFinding[];
  /** Operations executed. */
  readonly operations: number;
  /** Syscall-level calls. */
  readonly calls: number;
}

/** Options of {@link replay}. */
export interface ReplayOptions {
  /** Findings to step over (as {@link FuzzOptions.ignore}). */
  readonly ignore?: readonly RegExp[];
}

/**
 * Runs `ops` on a fresh host, then closes everything and checks the baseline; stops at the
 * first operation with findings (the final check is then skipped).
 */
export async function replay(
  c: Pick<FuzzCase, 'ops'> & Partial<Pick<FuzzCase, 'platform' | 'devices'>>,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const session = await FuzzSession.create({ platform: c.platform ?? 'mock', devices: c.devices ?? 3 });
  const keep = (fs: FuzzFinding[]): FuzzFinding[] => fs.filter((f) => !(options.ignore ?? []).some((re) => re.test(f.message)));
  for (const [i, op] of c.ops.entries()) {
    const all = session.execute(op, i);
    const f = keep(all);
    if (f.length || all.length) return { findings: f, operations: i + 1, calls: session.calls };
  }
  const f = keep(session.finish(c.ops.length));
  return { findings: f, operations: c.ops.length + 1, calls: session.calls };
}

/** The operations of one seed (reproducible: a pure function of the seed and count). */
export function generateOps(seed: number, count: number): FuzzOp[] {
  const rng = new FuzzRandom(seed);
  const ops: FuzzOp[] = [];
  for (let i = 0; i < count; i++) ops.push(generateOp(rng));
  return ops;
}

/** Checks that a value read from JSON is a {@link FuzzCase}; throws a TypeError saying what is wrong. */
export function parseFuzzCase(value: unknown): FuzzCase {
  const v = value as Partial<FuzzCase> | null;
  if (!v || typeof v !== 'object' || v.format !== 'iommufd-fuzz-case/1') throw new TypeError(`not a fuzz case: expected format 'iommufd-fuzz-case/1'`);
  if (!Array.isArray(v.ops)) throw new TypeError('fuzz case: ops must be an array');
  for (const [i, op] of v.ops.entries()) {
    const o = op as Partial<FuzzOp>;
    if (!FUZZ_OP_KINDS.includes(o.kind as FuzzOp['kind']) || !Array.isArray(o.args) || !o.args.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) {
      throw new TypeError(`fuzz case: op ${i} must be { kind: one of FUZZ_OP_KINDS, args: u32[] }`);
    }
  }
  return { format: v.format, platform: v.platform ?? 'mock', devices: v.devices ?? 3, seed: v.seed ?? 0, ops: v.ops, findings: v.findings ?? [] };
}

/**
 * Seeded uAPI fuzzing: for each seed, random operations over several /dev/iommu fds, VFIO
 * devices, memory and DMA with the invariants checked after every call, then everything is
 * closed and the baseline checked. A failing seed is minimized (ddmin over its operation
 * list) into a {@link FuzzCase}, passed to `onFailure` and returned.
 */
export async function runFuzz(options: FuzzOptions = {}): Promise<FuzzReport> {
  const first = options.seed ?? 1;
  const seedCount = options.seeds ?? (options.seconds !== undefined ? Number.MAX_SAFE_INTEGER : 1);
  const perSeed = options.callsPerSeed ?? 2000;
  const budget = options.calls ?? (options.seconds !== undefined ? Number.MAX_SAFE_INTEGER : seedCount * perSeed);
  const platform = options.platform ?? 'mock';
  const devices = options.devices ?? 3;
  const start = performance.now();
  const deadline = options.seconds !== undefined ? start + options.seconds * 1000 : Infinity;
  let operations = 0;
  let calls = 0;
  let errors = 0;
  let findingCount = 0;
  let invariantFailures = 0;
  let ignored = 0;
  const known = (f: FuzzFinding): boolean => (options.ignore ?? []).some((re) => re.test(f.message));
  let tainted = false;
  const keep = (fs: FuzzFinding[]): FuzzFinding[] => {
    const kept = fs.filter((f) => !known(f));
    if (kept.length < fs.length) {
      ignored += fs.length - kept.length;
      tainted = true;
    }
    return kept;
  };
  const seeds: number[] = [];
  const failures: FuzzCase[] = [];
  for (let k = 0; k < seedCount && operations < budget && performance.now() < deadline; k++) {
    const seed = (first + k) >>> 0;
    seeds.push(seed);
    const count = Math.min(perSeed, budget - operations);
    const ops = generateOps(seed, count);
    const session = await FuzzSession.create({ platform, devices });
    let failedAt = -1;
    let found: FuzzFinding[] = [];
    let ran = 0;
    tainted = false;
    for (let i = 0; i < ops.length; i++) {
      if ((i & 63) === 0 && performance.now() >= deadline) break;
      found = keep(session.execute(ops[i]!, i));
      ran++;
      if (found.length) {
        failedAt = i;
        break;
      }
      if (tainted) break;
    }
    if (failedAt < 0 && !tainted) {
      found = keep(session.finish(ran));
      if (found.length) failedAt = ran;
    }
    operations += ran + 1;
    calls += session.calls;
    errors += session.errors;
    if (failedAt < 0) continue;
    findingCount += found.length;
    invariantFailures += found.filter((f) => f.kind === 'invariant').length;
    let failing = ops.slice(0, Math.min(failedAt + 1, ran));
    if (options.minimize ?? true) {
      const signature = findingSignature(found[0]!);
      failing = await minimize(failing, async (cand) => (await replay({ ops: cand, platform, devices }, { ignore: options.ignore })).findings.some((f) => findingSignature(f) === signature), { maxTests: options.minimizeTests ?? 400, groupOf: (op) => op.kind });
    }
    const final = await replay({ ops: failing, platform, devices }, { ignore: options.ignore });
    const c: FuzzCase = { format: 'iommufd-fuzz-case/1', platform, devices, seed, ops: failing, findings: final.findings.length ? final.findings : found };
    failures.push(c);
    await options.onFailure?.(c);
  }
  return { operations, calls, errors, findings: findingCount, invariantFailures, ignored, seconds: (performance.now() - start) / 1000, seeds, failures };
}

/** A finding with its numbers (IDs, addresses, counts) blanked: what makes two findings "the same bug". */
export function findingSignature(f: FuzzFinding): string {
  return `${f.kind}:${f.message.replace(/0x[0-9a-f]+|\d+/gi, 'N')}`;
}

/** The one-line summary the `pnpm fuzz` script prints. */
export function formatFuzzSummary(r: FuzzReport): string {
  return `fuzz calls=${r.calls} operations=${r.operations} seconds=${r.seconds.toFixed(1)} errors=${r.errors} findings=${r.findings} invariant_failures=${r.invariantFailures} ignored=${r.ignored} seed=${r.seeds[0] ?? 0}..${r.seeds.at(-1) ?? 0}`;
}
