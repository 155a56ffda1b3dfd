import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliMain } from '../src/index.js';

/** The repository's examples/ directory. */
export const examplesDir = fileURLToPath(new URL('../../../examples/', import.meta.url));

/** Every example scenario file. */
export const exampleFiles = (): string[] => readdirSync(examplesDir).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();

/** Runs the command line in-process and captures its output. */
export async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await cliMain(args, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

/** A fresh temporary directory. */
export const tmp = (): string => mkdtempSync(join(tmpdir(), 'iommufd-sim-'));
