#!/usr/bin/env node
// Fuzzer throughput per preset, in operations per wall second and per CPU second (the fair
// figure on a shared machine). Runs the built package (`pnpm fuzz` builds it; or
// `pnpm exec turbo run build --filter=@iommufd/host...`):
//   node tools/fuzz-throughput.mjs [--root DIR] [--seed 1] [--seeds 5] [--per-seed 2000] [PRESET...]
// --root points at another checkout's build (e.g. a worktree of main) to compare before/after.
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { root: { type: 'string' }, seed: { type: 'string' }, seeds: { type: 'string' }, 'per-seed': { type: 'string' } },
});
const root = values.root ?? new URL('..', import.meta.url).pathname;
const host = await import(join(root, 'packages/host/dist/index.js'));
const presets = positionals.length ? positionals : ['mock', 'intel-vtd', 'arm-smmuv3', 'tegra241-cmdqv'];
for (const platform of presets) {
  const cpu0 = process.cpuUsage();
  const r = await host.runFuzz({ seed: Number(values.seed ?? 1), seeds: Number(values.seeds ?? 5), callsPerSeed: Number(values['per-seed'] ?? 2000), platform, minimize: false });
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  console.log(
    `${platform.padEnd(15)} operations=${r.operations} calls=${r.calls} wall_s=${r.seconds.toFixed(1)} cpu_s=${cpuSeconds.toFixed(1)} ops_per_s=${(r.operations / r.seconds).toFixed(0)} ops_per_cpu_s=${(r.operations / cpuSeconds).toFixed(0)} findings=${r.findings}`,
  );
}
