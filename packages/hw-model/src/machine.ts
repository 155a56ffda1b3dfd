/**
 * A machine description (RAM, IOMMUs, devices behind them) and {@link createMachine}, which
 * builds the memory map and the hardware instances. The host's presets use it.
 */
import { PhysicalStore, createQueueEngine, type QueueEngine } from '@iommufd/queue-engine';
import { EngineCommandQueueConsumer, adoptQueueEngine, modelQueueEngine, queueEngineFor } from './engine-consumers.js';
import { PhysicalMemory, type MmioDevice } from './memory.js';
import { PciDevice, type Bdf, type PciCapabilities } from './pci.js';
import { SmmuV3, type SmmuV3Options } from './smmuv3.js';
import { Tegra241Smmu, type Tegra241SmmuOptions } from './tegra241-cmdqv.js';
import { identityTranslator, type DmaTranslator } from './translator.js';
import { createVtdIommu, type VtdIommuOptions } from './vtd.js';
import type { HardwareObserver } from './observer.js';

/** The IOMMU models a machine can contain. */
export type IommuKind = 'smmuv3' | 'tegra241-cmdqv' | 'vtd';

/**
 * Model options by IOMMU kind (ID/CAP register settings, cache sizes). A model adds its row.
 */
export interface IommuOptionsByKind {
  /** Arm SMMUv3. */
  smmuv3: SmmuV3Options;
  /** Arm SMMUv3 with the NVIDIA Tegra241 CMDQV. */
  'tegra241-cmdqv': Tegra241SmmuOptions;
  /** Intel VT-d. */
  vtd: VtdIommuOptions;
}

/** One IOMMU of a {@link MachineDescription}: its kind, name, MMIO base and model options. */
export type IommuDescription = {
  [K in IommuKind]: {
    /** Which model. */
    readonly kind: K;
    /** Name used by devices to say which IOMMU they sit behind (default `iommu<index>`). */
    readonly name?: string;
    /** Physical base address of its register file. */
    readonly base: bigint;
    /** Model options (ID/CAP register settings, cache sizes). */
    readonly options?: IommuOptionsByKind[K];
  };
}[IommuKind];

/** One PCI device of a {@link MachineDescription}. */
export interface DeviceDescription {
  /** Bus / device / function. */
  readonly bdf: Bdf;
  /** Name of the IOMMU it sits behind; none: DMA is untranslated (IOVA = PA). */
  readonly iommu?: string;
  /** SMMUv3 StreamID (default: requester ID). */
  readonly streamId?: number;
  /** Capabilities. */
  readonly capabilities?: PciCapabilities;
}

/** What {@link createMachine} builds. */
export interface MachineDescription {
  /** Bytes of RAM (multiple of 4 KiB). */
  readonly ramBytes: bigint;
  /** Physical base of RAM (default 0x4000_0000, as on the Arm `virt` board). */
  readonly ramBase?: bigint;
  /** The IOMMUs. */
  readonly iommus?: readonly IommuDescription[];
  /** The PCI devices. */
  readonly devices?: readonly DeviceDescription[];
  /** Caches never evict (exposes every missing invalidation). Default false. */
  readonly strict?: boolean;
  /** Seed for pseudo-random choices of the models (the SMMUv3 caches evict oldest-first and ignore it). Default 0. */
  readonly seed?: number;
  /**
   * Who consumes the command / invalidation queues: `'engine'` (default) the WebAssembly
   * queue engine of `@iommufd/queue-engine` reading the rings in the machine's
   * `PhysicalStore`, falling back to `'typescript'` where WebAssembly (or the built engine)
   * is unavailable; `'typescript'` the model's TypeScript consumers. Both behave the same.
   */
  readonly queueConsumers?: QueueConsumerKind;
}

/** The queue consumers of a machine: the WebAssembly queue engine or the model's TypeScript consumers. */
export type QueueConsumerKind = 'engine' | 'typescript';

/** An IOMMU instance: its register file plus its translation port. */
export interface IommuInstance extends MmioDevice, DmaTranslator {
  /** Which model. */
  readonly kind: IommuKind;
  /** Bytes of MMIO space its registers occupy at {@link IommuDescription.base}. */
  readonly mmioSize: bigint;
  /**
   * Told of every command consumed, table walk and fault (tracing). Undefined by default:
   * each observation point then costs one null check.
   */
  observer?: HardwareObserver | undefined;
  /** Further register frames (e.g. the Tegra241 CMDQV), at `base + offset`. */
  readonly extraMmio?: readonly { readonly offset: bigint; readonly size: bigint; readonly device: MmioDevice }[];
}

/** What an IOMMU factory receives. */
export interface IommuFactoryContext {
  /** The machine's memory (the IOMMU reads tables and queues through it). */
  readonly memory: PhysicalMemory;
  /** The IOMMU's description. */
  readonly description: IommuDescription;
  /** Machine-wide strict cache mode. */
  readonly strict: boolean;
  /** Machine seed. */
  readonly seed: number;
  /**
   * Who consumes the IOMMU's queues: `'engine'` (default) the queue engine — `queueEngine`,
   * else the one engine of `memory.store` (`queueEngineFor`) —, `'typescript'` the model's
   * TypeScript consumers. A consumer named in the model options wins.
   */
  readonly queueConsumers?: QueueConsumerKind;
  /** The queue engine to use (default: the store's). */
  readonly queueEngine?: QueueEngine;
}

/** Builds one IOMMU instance of a kind. */
export type IommuFactory = (context: IommuFactoryContext) => IommuInstance;

/** Thrown for an inconsistent machine description. */
export class MachineDescriptionError extends Error {
  /** Error name for `instanceof`-free checks. */
  override readonly name = 'MachineDescriptionError';
}

/** A built machine. */
export interface Machine {
  /** The description it was built from. */
  readonly description: MachineDescription;
  /** Physical memory with RAM and every IOMMU's MMIO region. */
  readonly memory: PhysicalMemory;
  /** IOMMUs by name. */
  readonly iommus: ReadonlyMap<string, IommuInstance>;
  /** Devices in description order. */
  readonly devices: readonly PciDevice[];
  /** Who consumes the IOMMUs' queues (`'typescript'` also when the engine was asked for but could not load). */
  readonly queueConsumers: QueueConsumerKind;
  /** The queue engine over `memory.store`, when `queueConsumers` is `'engine'`. */
  readonly queueEngine?: QueueEngine;
}

/**
 * The IOMMU models by kind: one row per model (data, not a switch). A model file adds its
 * row here; `createMachine` can also be given extra factories.
 */
export const IOMMU_FACTORIES: Partial<Record<IommuKind, IommuFactory>> = {
  smmuv3: (context) => smmuWith(SmmuV3, context),
  'tegra241-cmdqv': (context) => smmuWith(Tegra241Smmu, context),
  vtd: createVtdIommu,
};

/**
 * Builds an SMMU model; the machine's strict mode wins over a model option of false, and
 * the machine's queue engine consumes its queues unless the options name a consumer.
 */
function smmuWith<O extends SmmuV3Options, T extends SmmuV3>(Model: new (memory: PhysicalMemory, options: O) => T, context: IommuFactoryContext): T {
  const options = context.description.options as O | undefined;
  const smmu = new Model(context.memory, { ...(options ?? ({} as O)), strict: context.strict || options?.strict === true });
  const engine = modelQueueEngine(context.memory, context.queueConsumers, context.queueEngine);
  if (engine !== undefined && options?.commandQueueConsumer === undefined) smmu.commandQueueConsumer = new EngineCommandQueueConsumer(engine, smmu);
  return smmu;
}

/**
 * Builds the memory map, IOMMUs and devices of `desc`. With `queueConsumers: 'engine'` (the
 * default) the WebAssembly queue engine is instantiated synchronously over the machine's
 * store (see {@link createMachineWithEngine} for the asynchronous loader); where it cannot
 * load, the TypeScript consumers run and {@link Machine.queueConsumers} says so.
 */
export function createMachine(
  desc: MachineDescription,
  factories: Partial<Record<IommuKind, IommuFactory>> = IOMMU_FACTORIES,
): Machine {
  const store = new PhysicalStore();
  return buildMachine(desc, factories, store, (desc.queueConsumers ?? 'engine') === 'engine' ? queueEngineFor(store) : undefined);
}

/**
 * {@link createMachine} with the queue engine obtained through `@iommufd/queue-engine`'s
 * asynchronous `createQueueEngine` (WebAssembly only; the TypeScript consumers where it
 * cannot load), for hosts that load the engine the way the package documents it.
 */
export async function createMachineWithEngine(
  desc: MachineDescription,
  factories: Partial<Record<IommuKind, IommuFactory>> = IOMMU_FACTORIES,
): Promise<Machine> {
  const store = new PhysicalStore();
  let engine: QueueEngine | undefined;
  if ((desc.queueConsumers ?? 'engine') === 'engine') engine = await createQueueEngine(store, { impl: 'wasm' }).catch(() => undefined);
  if (engine !== undefined) adoptQueueEngine(engine);
  return buildMachine(desc, factories, store, engine);
}

function buildMachine(
  desc: MachineDescription,
  factories: Partial<Record<IommuKind, IommuFactory>>,
  store: PhysicalStore,
  queueEngine: QueueEngine | undefined,
): Machine {
  const memory = new PhysicalMemory(store);
  const ramBase = desc.ramBase ?? 0x4000_0000n;
  memory.addRam(ramBase, desc.ramBytes);
  const strict = desc.strict ?? false;
  const seed = desc.seed ?? 0;
  const iommus = new Map<string, IommuInstance>();
  (desc.iommus ?? []).forEach((d, i) => {
    const name = d.name ?? `iommu${i}`;
    if (iommus.has(name)) throw new MachineDescriptionError(`two IOMMUs are named '${name}'; give each a unique name`);
    const factory = factories[d.kind];
    if (factory === undefined) throw new MachineDescriptionError(`IOMMU kind '${d.kind}' has no model in this build of @iommufd/hw-model`);
    const queues = queueEngine !== undefined ? { queueConsumers: 'engine' as const, queueEngine } : { queueConsumers: 'typescript' as const };
    const inst = factory({ memory, description: d, strict, seed, ...queues });
    memory.addMmio(d.base, inst.mmioSize, inst);
    for (const x of inst.extraMmio ?? []) memory.addMmio(d.base + x.offset, x.size, x.device);
    iommus.set(name, inst);
  });
  const seen = new Set<number>();
  const devices = (desc.devices ?? []).map((d) => {
    let translator: DmaTranslator = identityTranslator;
    if (d.iommu !== undefined) {
      const t = iommus.get(d.iommu);
      if (t === undefined) throw new MachineDescriptionError(`device ${d.bdf.bus}:${d.bdf.dev}.${d.bdf.fn} names unknown IOMMU '${d.iommu}'`);
      translator = t;
    }
    const dev = new PciDevice(memory, translator, {
      bdf: d.bdf,
      ...(d.streamId !== undefined ? { streamId: d.streamId } : {}),
      ...(d.capabilities !== undefined ? { capabilities: d.capabilities } : {}),
    });
    if (seen.has(dev.requesterId)) throw new MachineDescriptionError(`two devices share BDF ${dev.name}`);
    seen.add(dev.requesterId);
    return dev;
  });
  return {
    description: desc,
    memory,
    iommus,
    devices,
    queueConsumers: queueEngine !== undefined ? 'engine' : 'typescript',
    ...(queueEngine !== undefined ? { queueEngine } : {}),
  };
}
