#!/usr/bin/env node
/**
 * `iommufd-sim`: the command line of the simulated host.
 *
 * Exit codes: 0 success, 1 the run failed (the message says which step and errno),
 * 2 bad command line.
 */
import { parseArgs } from 'node:util';
import { formatSummary, runDemo } from './demo.js';
import { HostError } from './errors.js';
import { createHost } from './host.js';
import type { PlatformName } from './platform.js';

const USAGE = `Usage: iommufd-sim <command> [options]

Commands:
  demo     a VMM-style end-to-end run: guest RAM, IOAS, VFIO devices, DMA,
           nest parent + vIOMMU + vDEVICE + nested HWPT, an invalidation, a vEVENT

Options:
  -h, --help     show help (also: iommufd-sim <command> --help)

Exit codes: 0 success, 1 the run failed, 2 bad command line.`;

const DEMO_USAGE = `Usage: iommufd-sim demo [--platform mock] [--devices N] [--quiet]

Runs the VMM-style demo and prints progress lines and a summary.

Options:
  --platform NAME   machine preset (default mock; arm-smmuv3, tegra241-cmdqv and
                    intel-vtd arrive with their drivers)
  --devices N       VFIO devices behind the IOMMU (default 2)
  --quiet           print only the summary
  -h, --help        show this help`;

const PLATFORMS: readonly PlatformName[] = ['mock', 'arm-smmuv3', 'tegra241-cmdqv', 'intel-vtd'];

function usageError(message: string, usage: string): number {
  process.stderr.write(`iommufd-sim: ${message}\n\n${usage}\n`);
  return 2;
}

async function demo(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        platform: { type: 'string', default: 'mock' },
        devices: { type: 'string', default: '2' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    return usageError((e as Error).message, DEMO_USAGE);
  }
  if (values.help) {
    process.stdout.write(`${DEMO_USAGE}\n`);
    return 0;
  }
  if (!PLATFORMS.includes(values.platform as PlatformName)) {
    return usageError(`unknown platform '${values.platform}' (expected ${PLATFORMS.join(', ')})`, DEMO_USAGE);
  }
  const devices = Number(values.devices);
  if (!Number.isInteger(devices) || devices < 1 || devices > 64) return usageError(`--devices must be an integer in [1, 64], got '${values.devices}'`, DEMO_USAGE);
  const log = values.quiet ? () => {} : (line: string) => process.stdout.write(`» ${line}\n`);
  try {
    const host = await createHost({ platform: values.platform as PlatformName, devices });
    const summary = runDemo(host, log);
    process.stdout.write(`${formatSummary(summary)}\n`);
    if (summary.pinnedPagesAfterClose !== 0) {
      process.stderr.write(`iommufd-sim demo: ${summary.pinnedPagesAfterClose} page(s) still pinned after closing every fd\n`);
      return 1;
    }
    process.stdout.write('demo: OK\n');
    return 0;
  } catch (e) {
    if (e instanceof HostError || (e instanceof Error && e.name === 'DemoError')) {
      process.stderr.write(`iommufd-sim demo: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/** Runs the command line; resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command === 'demo') return demo(rest);
  return usageError(`unknown command '${command}'`, USAGE);
}

process.exitCode = await main(process.argv.slice(2));
