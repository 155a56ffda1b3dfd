// `queues` benchmark: commands / descriptors per second through a machine's queue consumers —
// the model's TypeScript consumers against the WebAssembly queue engine (effects rebuilt and
// applied to the model's caches) — for the SMMUv3 CMDQ (TLBI_NH_VA ×63 + CMD_SYNC per
// doorbell) and the VT-d invalidation queue (PASID-IOTLB page invalidation ×15 + wait).
// Both runs must end in the same state (CONS / IQH and the per-opcode counts).
// Usage: node bench/queue-consumers.mjs [NAME] (or `pnpm bench queues`) — runs only when NAME is absent or `queues`.
import { benchSelected } from './c-walker.mjs';
import { CMDQ_OP, SMMU_CMD_TLBI, SMMU_REG, createMachine } from '../dist/index.js';

if (!benchSelected('queues')) process.exit(0);
const ROUNDS = 2000;
const BEST_OF = 5;

function smmu(queueConsumers) {
  const base = 0x900_0000n;
  const m = createMachine({ ramBytes: 0x1000_0000n, queueConsumers, iommus: [{ kind: 'smmuv3', name: 's', base }] });
  const mem = m.memory;
  const reg = (o) => base + BigInt(o);
  const ring = mem.allocPages(1)[0];
  mem.write64(reg(SMMU_REG.CMDQ_BASE), ring | 8n); // 256 entries
  mem.write32(reg(SMMU_REG.CR0), 8);
  const [a, b] = SMMU_CMD_TLBI.encode({ OPCODE: CMDQ_OP.TLBI_NH_VA, VMID: 1, ASID: 2, ADDR: 0x123n });
  let prod = 0;
  const t0 = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < 64; i++) {
      const at = ring + BigInt((prod & 255) * 16);
      mem.write64(at, i === 63 ? BigInt(CMDQ_OP.CMD_SYNC) : a);
      mem.write64(at + 8n, i === 63 ? 0n : b);
      prod = (prod + 1) & 511;
    }
    mem.write32(reg(SMMU_REG.CMDQ_PROD), prod);
  }
  const s = (performance.now() - t0) / 1000;
  const smmuModel = m.iommus.get('s');
  return { ops: (ROUNDS * 64) / s, state: `${mem.read32(reg(SMMU_REG.CMDQ_CONS))}/${[...smmuModel.commandCounts].join(';')}` };
}

function vtd(queueConsumers) {
  const base = 0xfed9_0000n;
  const m = createMachine({ ramBytes: 0x1000_0000n, queueConsumers, iommus: [{ kind: 'vtd', name: 'd', base }] });
  const mem = m.memory;
  const reg = (o) => base + BigInt(o);
  const [iq, status] = mem.allocPages(3, { contiguous: false }); // 2 pages of ring (QS=1) + status
  mem.write64(reg(0x90), iq | (1n << 11n) | 1n); // IQA: 256-bit, 256 entries
  mem.write32(reg(0x18), 1 << 26); // GCMD.QIE
  const piotlb = [0x6n | (3n << 4n) | (7n << 16n) | (1n << 32n), 0x12_3000n];
  let tail = 0;
  const t0 = performance.now();
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < 16; i++) {
      const at = iq + BigInt(tail * 32);
      const d = i === 15 ? [0x5n | (1n << 5n) | (BigInt(r) << 32n), status] : piotlb;
      mem.write64(at, d[0]);
      mem.write64(at + 8n, d[1]);
      tail = (tail + 1) & 255;
    }
    mem.write64(reg(0x88), BigInt(tail * 32));
  }
  const s = (performance.now() - t0) / 1000;
  return { ops: (ROUNDS * 16) / s, state: `${mem.read64(reg(0x80))}/${mem.read32(status)}` };
}

for (const [name, run] of [['cmdq', smmu], ['vtd-iq', vtd]]) {
  const best = {};
  const states = new Set();
  for (let k = 0; k < BEST_OF; k++) {
    for (const impl of ['typescript', 'engine']) {
      const r = run(impl);
      best[impl] = Math.max(best[impl] ?? 0, r.ops);
      states.add(r.state);
    }
  }
  for (const impl of ['typescript', 'engine']) console.log(`queues queue=${name} consumer=${impl} ops_per_s=${best[impl].toFixed(0)}`);
  console.log(`queues ratio queue=${name} engine/typescript=${(best.engine / best.typescript).toFixed(2)} states_match=${states.size === 1 ? 'yes' : 'no'} best_of=${BEST_OF}`);
  if (states.size !== 1) process.exitCode = 1;
}
