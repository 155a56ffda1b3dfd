/**
 * The uAPI fuzzer's public face (re-exported by `@iommufd/host`).
 */
export { findingSignature, formatFuzzSummary, generateOps, parseFuzzCase, replay, runFuzz } from './run.js';
export type { FuzzCase, FuzzOptions, FuzzReport, ReplayOptions, ReplayResult } from './run.js';
export { minimize } from './minimize.js';
export type { MinimizeOptions } from './minimize.js';
export { FuzzRandom } from './prng.js';
export { FUZZ_OP_KINDS } from './ops.js';
export type { FuzzOp, FuzzOpKind } from './ops.js';
export type { FuzzFinding, FuzzFindingKind } from './session.js';
