// A lone process on a small machine, for the address-space, fd and fork tests.
import { ENOENT } from '@iommufd/uapi';
import type { KernelFile } from '../src/kernel-types.js';
import { PageRefs, ramMemory } from '../src/physical.js';
import { ProcessImpl } from '../src/process.js';

/** Process 1 on 64 MiB of RAM; `files` are the paths it can open. */
export function makeProcess(files: Record<string, () => KernelFile> = {}) {
  const memory = ramMemory(0x4000_0000n, 64n << 20n);
  const refs = new PageRefs(memory);
  const p = new ProcessImpl(1, memory, refs, (path) => files[path]?.() ?? ENOENT);
  return { p, memory, refs };
}
