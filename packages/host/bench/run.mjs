// `pnpm bench [NAME]` for @iommufd/host: runs every benchmark file of this folder (ioctl,
// vsmmu-e2e, map, scale; common.mjs is their shared harness), each deciding from NAME whether it applies.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
let status = 0;
for (const f of readdirSync(dir).filter((n) => n.endsWith('.mjs') && n !== 'run.mjs' && n !== 'common.mjs').sort()) {
  const r = spawnSync(process.execPath, [f, ...process.argv.slice(2)], { cwd: dir, stdio: 'inherit' });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
