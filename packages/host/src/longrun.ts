/**
 * Long runs: whole VMs created and destroyed in a loop on one machine — the demo's VMM run
 * (guest RAM in an IOAS, HWPTs, vIOMMU, vDEVICEs, queues, DMA, faults, then every fd
 * closed) — with the machine and the JavaScript heap measured after every cycle. A VM that
 * is gone must leave nothing: the physical pages, pins, locked-memory accounting, objects,
 * contexts, fds and mappings return exactly to what they were after the first cycle, and the
 * heap (after a full garbage collection) stays within a stated tolerance of it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { runDemo } from './run-demo.js';
import { createHost, type Host } from './host.js';
import { MachineMemory } from './physical.js';
import type { PlatformName } from './platform.js';

/** Options of {@link runLongRun}. */
export interface LongRunOptions {
  /** The machine preset. */
  readonly platform: PlatformName;
  /** Stop after this many VM cycles (default 25 when no time budget is given). */
  readonly cycles?: number;
  /** Stop once this many milliseconds have passed (the cycle under way completes). */
  readonly budgetMs?: number;
  /** PCI devices of the machine (default 2). */
  readonly devices?: number;
  /** Allowed growth of the JS heap after the warm-up, in bytes (default 4 MiB). */
  readonly heapToleranceBytes?: number;
  /**
   * Cycles after which the heap baseline is taken (default 5, at most the cycle count):
   * V8 keeps compiling and optimising the hot paths over the first cycles, which is growth
   * that stops, not a leak.
   */
  readonly warmupCycles?: number;
  /** Progress lines (one every `progressEvery` cycles). */
  readonly log?: (line: string) => void;
  /** Cycles between progress lines (default 100). */
  readonly progressEvery?: number;
  /** One VM's life (default: the demo's VMM run, as `iommufd-sim demo` does it); it must close what it opens. */
  readonly cycle?: (host: Host) => void;
}

/** What one measurement after a cycle holds. */
export interface LongRunSample {
  /** Cycles completed when it was taken. */
  readonly cycle: number;
  /** `process.memoryUsage().heapUsed` after a full garbage collection, in bytes. */
  readonly heapUsedBytes: number;
  /** RAM pages the machine's page allocator has handed out (process memory, driver tables, queues). */
  readonly machinePages: number;
  /** RAM pages backing process and memfd memory. */
  readonly processPages: number;
  /** 4 KiB frames materialised in the sparse physical store. */
  readonly storeFrames: number;
  /** Long-term pins held on RAM pages. */
  readonly pinnedPages: number;
  /** Pages charged to the VMM process's RLIMIT_MEMLOCK. */
  readonly lockedPages: number;
  /** /dev/iommu contexts whose last close has not run. */
  readonly openContexts: number;
  /** Objects held by all contexts. */
  readonly objects: number;
  /** Open fds of the VMM process. */
  readonly fds: number;
  /** Mappings of the VMM process. */
  readonly mappings: number;
}

/** The outcome of {@link runLongRun}. */
export interface LongRunReport {
  /** The preset. */
  readonly platform: PlatformName;
  /** VM cycles run. */
  readonly cycles: number;
  /** Wall time of the cycles, in milliseconds. */
  readonly elapsedMs: number;
  /** The measurement after the first cycle (caches, queues and scratch memory in place). */
  readonly baseline: LongRunSample;
  /** The heap after the warm-up cycles: the baseline of the heap check. */
  readonly warmupHeapUsedBytes: number;
  /** The cycle after which {@link LongRunReport.warmupHeapUsedBytes} was measured. */
  readonly warmupCycles: number;
  /** The measurement after the last cycle. */
  readonly final: LongRunSample;
  /** The largest heap seen after any cycle. */
  readonly peakHeapUsedBytes: number;
  /** The heap tolerance applied, in bytes. */
  readonly heapToleranceBytes: number;
  /** What did not return to the baseline; empty when nothing leaked. */
  readonly leaks: readonly string[];
}

/**
 * The figures that must be back exactly at the baseline after every cycle. Materialised
 * frames are not among them: the rings of the command, event and invalidation queues are
 * allocated once but their pages are first written when the producer index reaches them,
 * so the count may still rise until every ring has wrapped; it must stay within the pages
 * the allocator handed out.
 */
const EXACT: readonly (keyof LongRunSample)[] = ['machinePages', 'processPages', 'pinnedPages', 'lockedPages', 'openContexts', 'objects', 'fds', 'mappings'];

/** Default allowed heap growth. */
export const LONGRUN_HEAP_TOLERANCE_BYTES = 4 << 20;

/**
 * A full garbage collection: `globalThis.gc` under `--expose-gc`, otherwise the same function
 * obtained by turning the flag on at run time (V8 exposes it to contexts created afterwards).
 */
export function fullGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Measures the machine and the heap now. */
export function sampleHost(host: Host, cycle: number, gc: () => void): LongRunSample {
  gc();
  const machine = host.memory instanceof MachineMemory ? host.memory.machine : undefined;
  let openContexts = 0;
  let objects = 0;
  for (const c of host.contexts()) {
    if (!c.released) openContexts++;
    objects += c.objects.length;
  }
  return {
    cycle,
    heapUsedBytes: process.memoryUsage().heapUsed,
    machinePages: machine?.allocatedPages ?? host.memory.pagesInUse,
    processPages: host.memory.pagesInUse,
    storeFrames: machine?.store.framesInUse ?? host.memory.pagesInUse,
    pinnedPages: host.pinnedPages,
    lockedPages: host.process.lockedPages,
    openContexts,
    objects,
    fds: host.process.fds().length,
    mappings: host.process.mappings().length,
  };
}

/** One VM's life on `host`: the demo's VMM run, which closes everything it opened. */
export function vmCycle(host: Host): void {
  runDemo(host);
}

/**
 * Creates and destroys VMs on one machine of `platform` until the cycle count or the time
 * budget is reached, measuring after each; the report lists every figure that did not come
 * back to the baseline. A VM step that fails throws its `DemoError`.
 */
export async function runLongRun(options: LongRunOptions): Promise<LongRunReport> {
  const budgetMs = options.budgetMs ?? Infinity;
  const maxCycles = options.cycles ?? (options.budgetMs === undefined ? 25 : Infinity);
  if (!(maxCycles >= 1) || !(budgetMs > 0)) throw new RangeError('a long run needs at least one cycle and a positive time budget');
  const tolerance = options.heapToleranceBytes ?? LONGRUN_HEAP_TOLERANCE_BYTES;
  const every = options.progressEvery ?? 100;
  const warmup = Math.max(1, Math.min(options.warmupCycles ?? 5, maxCycles));
  const gc = fullGc();
  const host = await createHost({ platform: options.platform, devices: options.devices ?? 2 });
  const cycle = options.cycle ?? vmCycle;
  const leaks: string[] = [];
  const started = performance.now();
  cycle(host);
  const baseline = sampleHost(host, 1, gc);
  let final = baseline;
  let peak = baseline.heapUsedBytes;
  let warmupHeap = baseline.heapUsedBytes;
  let cycles = 1;
  while (cycles < maxCycles && performance.now() - started < budgetMs) {
    cycle(host);
    cycles++;
    final = sampleHost(host, cycles, gc);
    peak = Math.max(peak, final.heapUsedBytes);
    if (cycles === warmup) warmupHeap = final.heapUsedBytes;
    if (final.storeFrames > final.machinePages && !leaks.some((l) => l.startsWith('storeFrames '))) {
      leaks.push(`storeFrames ${final.storeFrames} exceed the ${final.machinePages} allocated pages after cycle ${cycles}`);
    }
    for (const key of EXACT) {
      if (final[key] !== baseline[key] && !leaks.some((l) => l.startsWith(`${key} `))) {
        leaks.push(`${key} ${baseline[key]} → ${final[key]} after cycle ${cycles}`);
      }
    }
    if (options.log && cycles % every === 0) {
      const s = ((performance.now() - started) / 1000).toFixed(1);
      options.log(`${options.platform}: cycle ${cycles}, ${s} s, heap ${mib(final.heapUsedBytes)}, machine pages ${final.machinePages}, pins ${final.pinnedPages}, objects ${final.objects}`);
    }
  }
  const growth = final.heapUsedBytes - warmupHeap;
  if (growth > tolerance) leaks.push(`heapUsedBytes grew by ${mib(growth)} after the warm-up (tolerance ${mib(tolerance)})`);
  // A time budget may end the run before the warm-up did: the heap baseline is then cycle 1's.
  const warmupCycles = cycles >= warmup ? warmup : 1;
  return { platform: options.platform, cycles, elapsedMs: performance.now() - started, baseline, warmupHeapUsedBytes: warmupHeap, warmupCycles, final, peakHeapUsedBytes: peak, heapToleranceBytes: tolerance, leaks };
}

function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(2)} MiB`;
}

/** The report as a table: baseline, after the last cycle, change; then OK or the leaks. */
export function formatLongRunReport(r: LongRunReport): string {
  const seconds = r.elapsedMs / 1000;
  const row = (name: string, a: string, b: string, change: string) => `  ${name.padEnd(22)}${a.padStart(15)}${b.padStart(19)}   ${change}`;
  const count = (name: string, key: keyof LongRunSample) => {
    const d = r.final[key] - r.baseline[key];
    return row(name, String(r.baseline[key]), String(r.final[key]), d === 0 ? '0' : `${d > 0 ? '+' : ''}${d}`);
  };
  const growth = r.final.heapUsedBytes - r.warmupHeapUsedBytes;
  return [
    `longrun ${r.platform}: ${r.cycles} VM cycle(s) in ${seconds.toFixed(1)} s (${(r.cycles / seconds).toFixed(1)} cycles/s)`,
    row('', 'after cycle 1', `after cycle ${r.cycles}`, 'change'),
    row('JS heap used (post-GC)', mib(r.baseline.heapUsedBytes), mib(r.final.heapUsedBytes), `${growth >= 0 ? '+' : ''}${mib(growth)} since cycle ${r.warmupCycles} (${mib(r.warmupHeapUsedBytes)}); tolerance ${mib(r.heapToleranceBytes)}; peak ${mib(r.peakHeapUsedBytes)}`),
    count('machine pages in use', 'machinePages'),
    count('process RAM pages', 'processPages'),
    count('frames materialised', 'storeFrames'),
    count('pinned pages', 'pinnedPages'),
    count('locked pages', 'lockedPages'),
    count('open contexts', 'openContexts'),
    count('objects', 'objects'),
    count('fds', 'fds'),
    count('mappings', 'mappings'),
    r.leaks.length === 0 ? `longrun ${r.platform}: OK, everything back at the baseline` : `longrun ${r.platform}: LEAK\n${r.leaks.map((l) => `  ${l}`).join('\n')}`,
  ].join('\n');
}
