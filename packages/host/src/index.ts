/**
 * `@iommufd/host`: the simulated kernel a VMM program talks to — a process with an address
 * space and an fd table, `/dev/iommu` and VFIO device cdevs, device DMA through the IOMMU,
 * the machine presets, and the `iommufd-sim` command line.
 *
 * @packageDocumentation
 */
export { createHost } from './host.js';
export type { Host, HostOptions } from './host.js';
export type {
  ArmSmmuV3HardwareOptions,
  CmdqvHardwareOptions,
  HostHardwareOptions,
  IntelVtdHardwareOptions,
  PciFunctionOptions,
  SmmuHardwareOptions,
  Tegra241CmdqvHardwareOptions,
  VtdHardwareOptions,
} from './hardware-options.js';
export { HostError } from './errors.js';
export type { HostErrorCode } from './errors.js';
export type { DmaFault, DmaRequest, DmaResult, HostObjectInfo, PlatformName } from './platform.js';
export type { FdInfo, HostProcess, ProcessCredentials, ProcessStatus } from './process.js';
export type { VmaInfo } from './address-space.js';
export type { HostPhysicalMemory } from './physical.js';
export { DemoError, formatSummary } from './demo.js';
export { runDemo } from './run-demo.js';
export type { DemoStep, DemoSummary } from './demo.js';
export { formatLongRunReport, LONGRUN_HEAP_TOLERANCE_BYTES, runLongRun } from './longrun.js';
export type { LongRunOptions, LongRunReport, LongRunSample } from './longrun.js';
export * from '@iommufd/uapi';


export { cliMain, EXIT_CODES } from './cli/main.js';
export type { CliIo } from './cli/main.js';
export { parseScenario, ScenarioError } from './scenario/schema.js';
export type { PokeBytes, Scenario, ScenarioFields, ScenarioMachine, ScenarioStep, ScenarioValue, StepAction, StepArgs, StepExpect } from './scenario/schema.js';
export { runScenario } from './scenario/run.js';
export type { RunOptions, RunReport, StepFailure, StepOutcome } from './scenario/run.js';
export { compareTraces, driverOpTracer, hardwareTracer, traceHost, Tracer } from './trace/trace.js';
export type { TraceArgs, TraceEvent, TraceFile, TraceSource } from './trace/trace.js';
export { objectGraphSvg, renderInspectHtml } from './inspect/render.js';
export type { InspectInput } from './inspect/render.js';
export { hardwareTables } from './inspect/hardware.js';
export type { HardwareTable } from './inspect/hardware.js';
export { findingSignature, formatFuzzSummary, generateOps, minimize, parseFuzzCase, replay, runFuzz, FuzzRandom, FUZZ_OP_KINDS } from './fuzz/index.js';
export type { FuzzCase, FuzzFinding, FuzzFindingKind, FuzzOp, FuzzOpKind, FuzzOptions, FuzzReport, MinimizeOptions, ReplayOptions, ReplayResult } from './fuzz/index.js';
