/**
 * `createHost`: the simulated kernel a VMM program talks to — RAM, a platform (IOMMU +
 * devices + driver), the VMM process, the device nodes (`/dev/iommu`, `/dev/vfio/vfio`,
 * `/dev/vfio/devices/vfioN`) and device-initiated DMA.
 */
import { ENOENT } from '@iommufd/uapi';
import { HostError } from './errors.js';
import { MAX_DEVICES, validateHardware, type HostHardwareOptions } from './hardware-options.js';
import type { KernelFile } from './kernel-types.js';
import type { FaultInjector } from '@iommufd/driver-api';
import type { DmaRequest, DmaResult, HostObjectInfo, Platform, PlatformContext, PlatformName } from './platform.js';
import { PageRefs, ramMemory, type HostPhysicalMemory } from './physical.js';
import { ProcessFamily, ProcessImpl, type HostProcess } from './process.js';
import { VfioDeviceFile } from './vfio-cdev.js';

/**
 * Options of {@link createHost}. `P` is the preset, so that `hardware` takes only that
 * preset's parameters (a VT-d capability on an SMMU preset does not type-check).
 */
export interface HostOptions<P extends PlatformName = PlatformName> {
  /** The machine preset. */
  readonly platform: P;
  /**
   * Number of PCI devices behind the IOMMU (each gets a VFIO cdev), 0 to 7936. The hardware
   * presets put 31 functions on each bus (slots 1–31), bus after bus: device 31 is 01:01.0.
   * Default 1.
   */
  readonly devices?: number;
  /**
   * Parameters of the preset's hardware (see {@link HostHardwareOptions}): SMMU features,
   * CMDQV sizes, VT-d capabilities, the PCI functions' ATS / PRI / PASID. They land in the
   * ID and capability registers and the driver probes them. Default: every preset's own.
   */
  readonly hardware?: HostHardwareOptions[P];
  /** RAM size in bytes (sparse: only touched pages cost memory). Default 4 GiB. */
  readonly ramBytes?: bigint | number;
  /** Hardware caches never evict, to expose every missing invalidation. Default false. */
  readonly strict?: boolean;
  /** Seed for anything randomised (deterministic runs). Default 1. */
  readonly seed?: number;
}

/** Where RAM starts in the host's physical address space. */
const RAM_BASE = 0x8000_0000n;
const VFIO_DEVICES_DIR = '/dev/vfio/devices/vfio';

/** The simulated machine and kernel. */
export interface Host {
  /** The preset this host runs. */
  readonly platform: PlatformName;
  /** VFIO device cdev paths, one per device: `/dev/vfio/devices/vfio0`, … */
  readonly vfioDevices: readonly string[];
  /** The VMM process. */
  readonly process: HostProcess;
  /** The machine's physical memory. */
  readonly memory: HostPhysicalMemory;
  /**
   * A DMA initiated by the device behind `devicePath`, translated by the IOMMU for whatever
   * the device is attached to (blocked when it is attached to nothing).
   */
  dma(devicePath: string, request: DmaRequest): DmaResult;
  /**
   * The objects of the iommufd context open at `fd` of `process` (default: the VMM process
   * {@link Host.process}): IDs, types, users, references.
   *
   * @throws {@link HostError} `BAD_OPTION` when `fd` is not an open /dev/iommu of that
   * process (or the process is not this host's), `PROCESS_EXITED` when it has exited.
   */
  objects(fd: number, process?: HostProcess): readonly HostObjectInfo[];
  /**
   * Starts another process (a second VMM, say) with its own address space, fd table and
   * memlock limit, sharing the machine, the devices and the device nodes. Processes (spawned
   * or forked) get pids 2, 3, … in order.
   */
  spawnProcess(): HostProcess;
  /**
   * Every process of this host in pid order, the VMM process first: spawned, forked
   * ({@link HostProcess.fork}) and exited ones alike (see {@link HostProcess.status}).
   */
  readonly processes: readonly HostProcess[];
  /** Long-term pins held on RAM pages (0 once every iommufd user has been torn down). */
  readonly pinnedPages: number;
  /** The VFIO binding of a device path: its DEVICE object ID when bound, else undefined. */
  boundDeviceId(devicePath: string): number | undefined;
  /**
   * Every /dev/iommu context opened so far: whether its last close has run and the objects
   * it still holds (empty once released). Leak checks use it after closing everything.
   */
  contexts(): readonly { readonly released: boolean; readonly objects: readonly HostObjectInfo[] }[];
  /**
   * Arms (or with `undefined` disarms) fault injection at every allocation point of the
   * core and the drivers, like writing to /proc/self/task/<tid>/fail-nth.
   */
  setFaultInjector(injector: FaultInjector | undefined): void;
}

type PlatformFactory = (ctx: PlatformContext) => Promise<Platform>;

/** Errors by which a model or a driver's probe refuses a hardware configuration. */
const HARDWARE_REFUSALS: ReadonlySet<string> = new Set(['ArmSmmuProbeError', 'IntelVtdError', 'SmmuV3OptionsError', 'VtdOptionsError', 'RangeError']);

/** Which issue brings each preset that is not wired in yet. */
const PENDING_PLATFORMS: Partial<Record<PlatformName, string>> = {};

const factories: Partial<Record<PlatformName, PlatformFactory>> = {
  mock: async (ctx) => (await import('./platforms/mock.js')).createMockPlatform(ctx),
  'intel-vtd': async (ctx) => (await import('./platforms/intel-vtd.js')).createIntelVtdPlatform(ctx),
  'arm-smmuv3': async (ctx) => (await import('./platforms/arm-smmuv3.js')).createArmSmmuV3Platform(ctx),
  'tegra241-cmdqv': async (ctx) => (await import('./platforms/tegra241-cmdqv.js')).createTegra241CmdqvPlatform(ctx),
};

/**
 * Builds a host: RAM, the platform's IOMMU and devices with the driver probed, one VMM
 * process, VFIO cdevs for each device.
 *
 * @throws {@link HostError} for an unknown or not yet available platform, or bad options
 * (`BAD_OPTION` naming the option, the value and the allowed range).
 */
export async function createHost<P extends PlatformName>(options: HostOptions<P>): Promise<Host> {
  const name: PlatformName = options.platform;
  const devices = options.devices ?? 1;
  if (!Number.isInteger(devices) || devices < 0 || devices > MAX_DEVICES) {
    throw new HostError('BAD_OPTION', `devices must be an integer in [0, ${MAX_DEVICES}] (31 per PCI bus, buses 0–255), got ${String(devices)}`);
  }
  const ramBytes = BigInt(options.ramBytes ?? 4n << 30n);
  if (ramBytes < 1n << 20n || ramBytes % 4096n !== 0n) {
    throw new HostError('BAD_OPTION', `ramBytes must be a multiple of 4096 and at least 1 MiB, got ${ramBytes}`);
  }
  const factory = factories[name];
  if (!factory) {
    const pending = PENDING_PLATFORMS[name];
    if (pending) {
      throw new HostError('PLATFORM_NOT_AVAILABLE', `platform '${name}' is not available yet: it arrives with ${pending}; use platform 'mock'`);
    }
    throw new HostError('UNKNOWN_PLATFORM', `unknown platform '${String(name)}'; expected one of 'mock', 'arm-smmuv3', 'tegra241-cmdqv', 'intel-vtd'`);
  }
  const hardware = validateHardware(name, options.hardware, devices);
  const memory = ramMemory(RAM_BASE, ramBytes);
  const refs = new PageRefs(memory);
  const family = new ProcessFamily();
  const platform = await factory({
    memory,
    refs,
    devices,
    hardware,
    strict: options.strict ?? false,
    seed: options.seed ?? 1,
    processOf: (k) => family.byKernel(k),
  }).catch((e: unknown) => {
    // A register combination the driver's probe (or the model) refuses is the caller's option.
    if (options.hardware !== undefined && e instanceof Error && HARDWARE_REFUSALS.has(e.name)) {
      throw new HostError('BAD_OPTION', `platform '${name}' did not come up with this hardware: ${e.message}; change 'hardware'`);
    }
    throw e;
  });
  const paths = platform.devices.map((_, i) => `${VFIO_DEVICES_DIR}${i}`);
  const openStates = platform.devices.map(() => ({ open: false }));
  const vfioFiles = new Map<number, Set<VfioDeviceFile<unknown, unknown>>>();

  const opener = (path: string, proc: ProcessImpl): KernelFile | number => {
    if (path === '/dev/iommu') return platform.openIommufd(proc, false);
    if (path === '/dev/vfio/vfio') return platform.openIommufd(proc, true);
    const index = paths.indexOf(path);
    if (index < 0) return ENOENT;
    const file = new VfioDeviceFile(path, platform.devices[index].handle, proc, platform.vfio, openStates[index], (k) => family.byKernel(k));
    let set = vfioFiles.get(index);
    if (!set) vfioFiles.set(index, (set = new Set()));
    set.add(file);
    const release = file.release.bind(file);
    file.release = () => {
      release();
      set.delete(file);
    };
    return file;
  };
  const spawn = (): ProcessImpl => new ProcessImpl(family.nextPid(), memory, refs, opener, family);
  const proc = spawn();
  const processOfHandle = (p: HostProcess | undefined): ProcessImpl => {
    if (p === undefined) return proc;
    for (const q of family.members) if (q === p) return q;
    throw new HostError('BAD_OPTION', `process ${p.pid} does not belong to this host`);
  };

  const deviceIndex = (path: string): number => {
    const i = paths.indexOf(path);
    if (i < 0) throw new HostError('NO_SUCH_DEVICE', `no VFIO device '${path}'; this host has ${paths.join(', ') || 'no devices'}`);
    return i;
  };

  return {
    platform: name,
    vfioDevices: paths,
    process: proc,
    memory,
    dma: (devicePath, request) => platform.dma(platform.devices[deviceIndex(devicePath)], request),
    objects: (fd, process) => {
      const owner = processOfHandle(process);
      if (owner.exited) throw new HostError('PROCESS_EXITED', `process ${owner.pid} has exited and holds no fds; inspect the context through a process that still has it open`);
      const of = owner.fileOf(fd);
      const objs = of ? platform.objects(of.file) : undefined;
      if (!objs) throw new HostError('BAD_OPTION', `fd ${fd} is not an open /dev/iommu of process ${owner.pid}`);
      return objs;
    },
    spawnProcess: spawn,
    get processes() {
      return [...family.members];
    },
    get pinnedPages() {
      return refs.totalPins;
    },
    contexts: () => platform.contexts(),
    setFaultInjector: (injector) => platform.setFaultInjector(injector),
    boundDeviceId: (devicePath) => {
      for (const f of vfioFiles.get(deviceIndex(devicePath)) ?? []) if (f.binding) return f.binding.devId;
      return undefined;
    },
  };
}
