/**
 * The commands of `iommufd-sim`: argument parsing (node:util parseArgs), help texts, exit
 * codes. `cli.ts` is the executable that calls {@link cliMain}.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { formatSummary } from '../demo.js';
import { runDemo } from '../run-demo.js';
import { HostError } from '../errors.js';
import { createHost, type Host } from '../host.js';
import { renderInspectHtml } from '../inspect/render.js';
import { formatLongRunReport, runLongRun } from '../longrun.js';
import type { PlatformName } from '../platform.js';
import { runScenario, type RunReport } from '../scenario/run.js';
import { parseScenario, ScenarioError, type Scenario } from '../scenario/schema.js';
import { compareTraces, traceHost, Tracer, type TraceFile, type TraceSource } from '../trace/trace.js';

/** The exit codes of `iommufd-sim`, stable for scripts. */
export const EXIT_CODES = Object.freeze({
  /** Everything ran and every expectation held. */
  ok: 0,
  /** A run failed: a step's expectation did not hold, a demo step failed, a replay mismatched, a benchmark failed, a long run leaked. */
  failed: 1,
  /** Bad command line (unknown command or option, missing argument, unreadable file). */
  usage: 2,
  /** The scenario (or trace) file is not valid: the message names the line and step. */
  invalidScenario: 3,
});

/** Where the command line writes. */
export interface CliIo {
  /** Standard output. */
  out(text: string): void;
  /** Standard error. */
  err(text: string): void;
}

const stdio: CliIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

const EXIT_TEXT = `Exit codes:
  0  success
  1  the run failed (an expectation, a demo step, a replay mismatch, a benchmark, a leak)
  2  bad command line
  3  invalid scenario or trace file (the message names the line and step)`;

/** The benchmarks of BENCH.md, by the names the package bench scripts take. */
const BENCHMARKS: readonly string[] = ['vsmmu-mix', 'translate', 'ioctl', 'map', 'scale'];

const PLATFORMS: readonly PlatformName[] = ['mock', 'arm-smmuv3', 'tegra241-cmdqv', 'intel-vtd'];

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  readonly positionals: { readonly min: number; readonly max: number };
  run(values: Record<string, string | boolean | undefined>, positionals: string[], io: CliIo): Promise<number>;
}

class UsageError extends Error {}

const help = { type: 'boolean', short: 'h' } as const;

const COMMANDS: Readonly<Record<string, Command>> = {
  demo: {
    summary: 'a VMM-style end-to-end run: guest RAM, IOAS, VFIO devices, DMA, nested setup, an invalidation, a vEVENT',
    usage: `Usage: iommufd-sim demo [--platform NAME] [--devices N] [--quiet] [--trace OUT.json]

Runs the VMM-style demo and prints progress lines and a summary.

Options:
  --platform NAME   machine preset: ${PLATFORMS.join(', ')} (default mock)
  --devices N       VFIO devices behind the IOMMU, 1-64 (default 2)
  --quiet           print only the summary
  --trace OUT.json  write a Chrome/Perfetto trace-event JSON of the run
  -h, --help        show this help`,
    options: { platform: { type: 'string', default: 'mock' }, devices: { type: 'string', default: '2' }, quiet: { type: 'boolean' }, trace: { type: 'string' }, help },
    positionals: { min: 0, max: 0 },
    async run(v, _p, io) {
      const platform = String(v.platform);
      if (!PLATFORMS.includes(platform as PlatformName)) throw new UsageError(`unknown platform '${platform}' (expected ${PLATFORMS.join(', ')})`);
      const devices = Number(v.devices);
      if (!Number.isInteger(devices) || devices < 1 || devices > 64) throw new UsageError(`--devices must be an integer in [1, 64], got '${String(v.devices)}'`);
      const log = v.quiet ? () => {} : (line: string) => io.out(`» ${line}\n`);
      const source: TraceSource = { kind: 'demo', platform, devices };
      const tracer = typeof v.trace === 'string' ? new Tracer() : undefined;
      try {
        const base = await createHost({ platform: platform as PlatformName, devices });
        const host = tracer ? traceHost(base, tracer) : base;
        const summary = runDemo(host, log);
        io.out(`${formatSummary(summary)}\n`);
        if (tracer) writeTrace(String(v.trace), tracer.toFile(source), io);
        if (summary.pinnedPagesAfterClose !== 0) {
          io.err(`iommufd-sim demo: ${summary.pinnedPagesAfterClose} page(s) still pinned after closing every fd\n`);
          return EXIT_CODES.failed;
        }
        io.out('demo: OK\n');
        return EXIT_CODES.ok;
      } catch (e) {
        if (e instanceof HostError || (e instanceof Error && e.name === 'DemoError')) {
          io.err(`iommufd-sim demo: ${e.message}\n`);
          return EXIT_CODES.failed;
        }
        throw e;
      }
    },
  },
  run: {
    summary: 'run a scenario file (YAML or JSON): a machine, steps and their expectations',
    usage: `Usage: iommufd-sim run FILE [--quiet] [--trace OUT.json] [--inspect OUT.html]

Builds the scenario's machine and runs its steps in order; stops at the first step whose
result does not meet its expectation. See the package README ("Scenario files") and
examples/ for the format.

Options:
  --quiet            print only the result line
  --trace OUT.json   write a Chrome/Perfetto trace-event JSON of the run
  --inspect OUT.html write the object graph at the end of the run (HTML with SVG)
  -h, --help         show this help`,
    options: { quiet: { type: 'boolean' }, trace: { type: 'string' }, inspect: { type: 'string' }, help },
    positionals: { min: 1, max: 1 },
    async run(v, [file], io) {
      const text = readInput(file!);
      const scenario = parseScenario(text);
      const tracer = typeof v.trace === 'string' ? new Tracer() : undefined;
      const report = await runScenario(scenario, {
        ...(v.quiet ? {} : { log: (line: string) => io.out(`${line}\n`) }),
        ...(tracer ? { wrapHost: (h: Host) => traceHost(h, tracer) } : {}),
      });
      if (tracer) writeTrace(String(v.trace), tracer.toFile({ kind: 'scenario', file: file!, text }), io);
      if (typeof v.inspect === 'string') writeOut(String(v.inspect), renderInspectHtml({ title: scenario.name ?? file!, host: report.host, objects: report.objects }), io);
      return reportResult(file!, report, io);
    },
  },
  trace: {
    summary: 'record a scenario as a trace, or replay a recorded trace and check the results match',
    usage: `Usage: iommufd-sim trace --replay TRACE.json
       iommufd-sim trace FILE --out OUT.json

--replay re-runs what the trace recorded (the demo with its options, or the scenario
embedded in the trace) and compares every event (name, arguments, result) with the
recording; the first mismatch fails with exit 1. The trace's clock is a counter advanced
once per event, so the same run always produces the same trace.

Options:
  --replay TRACE.json  the trace to replay
  --out OUT.json       where to write the trace of scenario FILE
  -h, --help           show this help`,
    options: { replay: { type: 'string' }, out: { type: 'string' }, help },
    positionals: { min: 0, max: 1 },
    async run(v, [file], io) {
      if (typeof v.replay === 'string') {
        if (file !== undefined) throw new UsageError('give either --replay TRACE.json or FILE --out OUT.json, not both');
        return replay(String(v.replay), io);
      }
      if (file === undefined || typeof v.out !== 'string') throw new UsageError('expected --replay TRACE.json, or a scenario FILE with --out OUT.json');
      const text = readInput(file);
      const tracer = new Tracer();
      const report = await runScenario(parseScenario(text), { wrapHost: (h) => traceHost(h, tracer) });
      writeTrace(String(v.out), tracer.toFile({ kind: 'scenario', file, text }), io);
      return reportResult(file, report, io);
    },
  },
  inspect: {
    summary: 'run a scenario and render its object graph (SVG in a self-contained HTML page)',
    usage: `Usage: iommufd-sim inspect FILE [--out OUT.html]

Runs scenario FILE and renders the iommufd objects (IOAS, HWPTs, vIOMMUs, vDEVICEs,
queues, devices) as they were at the end of the run, with their references as arrows,
plus tables of the objects, VFIO devices and the VMM process's fds and mappings.
Writes the HTML to OUT.html, or to standard output without --out.

Options:
  --out OUT.html  where to write the page
  -h, --help      show this help`,
    options: { out: { type: 'string' }, help },
    positionals: { min: 1, max: 1 },
    async run(v, [file], io) {
      const scenario = parseScenario(readInput(file!));
      const report = await runScenario(scenario);
      const html = renderInspectHtml({ title: scenario.name ?? file!, host: report.host, objects: report.objects });
      if (typeof v.out === 'string') writeOut(String(v.out), html, io);
      else io.out(html);
      if (report.failure) {
        io.err(`iommufd-sim: ${file}: ${report.failure.message}\n`);
        return EXIT_CODES.failed;
      }
      return EXIT_CODES.ok;
    },
  },
  longrun: {
    summary: 'create and destroy whole VMs in a loop and check that heap, frames, pins and objects return to the baseline',
    usage: `Usage: iommufd-sim longrun [--platform NAME|all] [--cycles N] [--minutes M] [--devices N]
                        [--heap-tolerance MIB] [--warmup N] [--quiet]

Runs the demo's VMM scenario (guest RAM in an IOAS, nest parent, vIOMMU, vDEVICEs, nested
HWPT from guest tables, HW queue on Tegra, DMA, a stale translation and its invalidation, a
fault, then every object destroyed and every fd closed) over and over on one machine per
preset, and measures after each cycle: the JS heap after a full GC, the machine's allocated
pages, process RAM pages, pins, locked pages, open contexts, objects, fds and mappings.
Prints the figures after the first cycle against those after the last. Exit 1 when any
count is not back at its first-cycle value, or the heap grew by more than the tolerance
after the warm-up cycles.

Options:
  --platform NAME      ${PLATFORMS.join(', ')} or all (default all)
  --cycles N           VM cycles per preset (default 25 without --minutes)
  --minutes M          time budget per preset (stops after the cycle under way)
  --devices N          PCI devices of each machine, 1-64 (default 2)
  --heap-tolerance MIB allowed heap growth after the warm-up (default 4)
  --warmup N           cycles before the heap baseline is taken (default 5)
  --quiet              print only the reports
  -h, --help           show this help`,
    options: {
      platform: { type: 'string', default: 'all' },
      cycles: { type: 'string' },
      minutes: { type: 'string' },
      devices: { type: 'string', default: '2' },
      'heap-tolerance': { type: 'string', default: '4' },
      warmup: { type: 'string', default: '5' },
      quiet: { type: 'boolean' },
      help,
    },
    positionals: { min: 0, max: 0 },
    async run(v, _p, io) {
      const platform = String(v.platform);
      if (platform !== 'all' && !PLATFORMS.includes(platform as PlatformName)) throw new UsageError(`unknown platform '${platform}' (expected ${PLATFORMS.join(', ')} or all)`);
      const positive = (name: string, value: string | boolean | undefined, integer: boolean): number | undefined => {
        if (value === undefined) return undefined;
        const n = Number(value);
        if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got '${String(value)}'`);
        return n;
      };
      const cycles = positive('cycles', v.cycles, true);
      const minutes = positive('minutes', v.minutes, false);
      const devices = positive('devices', v.devices, true)!;
      if (devices > 64) throw new UsageError(`--devices must be an integer in [1, 64], got '${String(v.devices)}'`);
      const tolerance = positive('heap-tolerance', v['heap-tolerance'], false)!;
      const warmup = positive('warmup', v.warmup, true)!;
      let leaked = false;
      try {
        for (const name of platform === 'all' ? PLATFORMS : [platform as PlatformName]) {
          const report = await runLongRun({
            platform: name,
            devices,
            warmupCycles: warmup,
            heapToleranceBytes: Math.round(tolerance * (1 << 20)),
            ...(cycles !== undefined ? { cycles } : {}),
            ...(minutes !== undefined ? { budgetMs: minutes * 60_000 } : {}),
            ...(v.quiet ? {} : { log: (line: string) => io.out(`» ${line}\n`) }),
          });
          io.out(`${formatLongRunReport(report)}\n`);
          leaked ||= report.leaks.length > 0;
        }
      } catch (e) {
        if (!(e instanceof Error && e.name === 'DemoError')) throw e;
        io.err(`iommufd-sim longrun: a VM cycle failed: ${e.message}\n`);
        return EXIT_CODES.failed;
      }
      return leaked ? EXIT_CODES.failed : EXIT_CODES.ok;
    },
  },
  bench: {
    summary: 'run the benchmarks of BENCH.md (all, or those named) through the packages\' bench scripts',
    usage: `Usage: iommufd-sim bench [NAME...]

Runs the repository's benchmarks (tools/bench.mjs: builds, then each package's bench
script with the optional NAMEs: vsmmu-mix, translate, ioctl, map, scale) and prints
their lines. Needs a checkout of the iommufd.ts repository (it is found from the current
directory or from this package's location).

Options:
  -h, --help  show this help`,
    options: { help },
    positionals: { min: 0, max: 16 },
    async run(_v, names, io) {
      const unknown = names.filter((n) => !BENCHMARKS.includes(n));
      if (unknown.length > 0) throw new UsageError(`unknown benchmark ${unknown.map((n) => `'${n}'`).join(', ')} (expected ${BENCHMARKS.join(', ')})`);
      const script = findBenchScript();
      if (!script) throw new UsageError('tools/bench.mjs not found: run bench inside a checkout of the iommufd.ts repository');
      const r = spawnSync(process.execPath, [script, ...names], { cwd: dirname(dirname(script)), encoding: 'utf8', maxBuffer: 64 << 20 });
      io.out(r.stdout ?? '');
      if (r.stderr) io.err(r.stderr);
      return r.status === 0 ? EXIT_CODES.ok : EXIT_CODES.failed;
    },
  },
};

const USAGE = `Usage: iommufd-sim <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`)
  .join('\n')}

Options:
  -h, --help     show help (also: iommufd-sim <command> --help)

${EXIT_TEXT}`;

function readInput(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function writeOut(file: string, text: string, io: CliIo): void {
  writeFileSync(file, text);
  io.err(`iommufd-sim: wrote ${file}\n`);
}

function writeTrace(file: string, trace: TraceFile, io: CliIo): void {
  writeOut(file, `${JSON.stringify(trace)}\n`, io);
}

function reportResult(file: string, report: RunReport, io: CliIo): number {
  if (report.failure) {
    io.err(`iommufd-sim: ${file}: ${report.failure.message}\n`);
    return EXIT_CODES.failed;
  }
  io.out(`${file}: ${report.outcomes.length} step(s) passed\n`);
  return EXIT_CODES.ok;
}

function isTraceFile(x: unknown): x is TraceFile {
  const t = x as TraceFile;
  return typeof x === 'object' && x !== null && Array.isArray(t.traceEvents) && t.otherData?.generator === 'iommufd-sim' && typeof t.otherData.source === 'object';
}

async function replay(file: string, io: CliIo): Promise<number> {
  let recorded: unknown;
  try {
    recorded = JSON.parse(readInput(file));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new ScenarioError(`${file} is not JSON: ${(e as Error).message}`);
  }
  if (!isTraceFile(recorded)) throw new ScenarioError(`${file} is not an iommufd-sim trace (no traceEvents with otherData.source)`);
  const source = recorded.otherData.source;
  const tracer = new Tracer();
  if (source.kind === 'demo') {
    const host = traceHost(await createHost({ platform: source.platform as PlatformName, devices: source.devices }), tracer);
    try {
      runDemo(host);
    } catch (e) {
      if (!(e instanceof Error && e.name === 'DemoError')) throw e;
    }
  } else {
    const scenario: Scenario = parseScenario(source.text);
    await runScenario(scenario, { wrapHost: (h) => traceHost(h, tracer) });
  }
  const mismatch = compareTraces(recorded.traceEvents, tracer.events);
  if (mismatch) {
    io.err(`iommufd-sim trace: replay of ${file} does not match the recording: ${mismatch}\n`);
    return EXIT_CODES.failed;
  }
  io.out(`${file}: replay matches (${recorded.traceEvents.filter((e) => e.ph !== 'M').length} events)\n`);
  return EXIT_CODES.ok;
}

function findBenchScript(): string | undefined {
  const starts = [process.cwd(), dirname(fileURLToPath(import.meta.url))];
  for (const start of starts) {
    for (let dir = resolve(start); ; dir = dirname(dir)) {
      const candidate = join(dir, 'tools', 'bench.mjs');
      if (existsSync(candidate)) return candidate;
      if (dirname(dir) === dir) break;
    }
  }
  return undefined;
}

/**
 * Runs the `iommufd-sim` command line with `argv` (without the node and script paths) and
 * resolves to its exit code ({@link EXIT_CODES}).
 */
export async function cliMain(argv: readonly string[], io: CliIo = stdio): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.err(`${USAGE}\n`);
    return EXIT_CODES.usage;
  }
  if (name === '-h' || name === '--help' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    const c = topic === undefined ? undefined : COMMANDS[topic];
    io.out(`${c ? c.usage : USAGE}\n`);
    return EXIT_CODES.ok;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    io.err(`iommufd-sim: unknown command '${name}' (expected ${Object.keys(COMMANDS).join(', ')})\n\n${USAGE}\n`);
    return EXIT_CODES.usage;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: command.options, strict: true, allowPositionals: true });
    if (values.help) {
      io.out(`${command.usage}\n\n${EXIT_TEXT}\n`);
      return EXIT_CODES.ok;
    }
    if (positionals.length < command.positionals.min || positionals.length > command.positionals.max) {
      const want = command.positionals.min === command.positionals.max ? `${command.positionals.min}` : `${command.positionals.min}-${command.positionals.max}`;
      throw new UsageError(`expected ${want} argument(s), got ${positionals.length}${positionals.length ? `: ${positionals.join(' ')}` : ''}`);
    }
    return await command.run(values as Record<string, string | boolean | undefined>, positionals, io);
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      io.err(`iommufd-sim ${name}: ${e.message}\n\n${command.usage}\n`);
      return EXIT_CODES.usage;
    }
    if (e instanceof ScenarioError) {
      io.err(`iommufd-sim ${name}: invalid scenario: ${e.message}\n`);
      return EXIT_CODES.invalidScenario;
    }
    if (e instanceof HostError) {
      io.err(`iommufd-sim ${name}: ${e.message}\n`);
      return EXIT_CODES.failed;
    }
    throw e;
  }
}
