/**
 * The scenario file of `iommufd-sim run`: a machine and a list of steps, in YAML or JSON,
 * validated with zod. Validation errors name the step index and, for YAML, the source line.
 */
import { LineCounter, parseDocument, isNode } from 'yaml';
import { z } from 'zod';
import { MAX_DEVICES, type HostHardwareOptions } from '../hardware-options.js';

/** A scalar of a scenario: a number, a `0x…` string, `$name`, `$name.field`, `$name+0x10`, or a uAPI constant name. */
const scalar = z.union([z.number(), z.string(), z.boolean()]);
/** A field value: a scalar, or a list of scalars ORed together (flags). */
const value = z.union([scalar, z.array(z.union([z.number(), z.string()]))]);
const fields = z.record(z.string(), value);

const hexBytes = z.string().regex(/^\s*([0-9a-fA-F]{2}\s*)*$/, 'hex bytes such as "de ad be ef"');
const bytesShape = { text: z.string().optional(), hex: hexBytes.optional(), struct: z.string().optional(), fields: fields.optional() };

const expectSpec = z.strictObject({
  errno: z.union([z.string().regex(/^E[A-Z0-9]+$|^0$/, 'an errno name such as EBUSY, or 0'), z.literal(0)]).optional(),
  fields: fields.optional(),
  text: z.string().optional(),
  hex: hexBytes.optional(),
  fault: z.union([z.boolean(), z.string()]).optional(),
  vevent: z
    .strictObject({
      sequence: z.number().int().optional(),
      flags: z.number().int().optional(),
      struct: z.string().optional(),
      fields: fields.optional(),
    })
    .optional(),
});

const common = { as: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a name of letters, digits and _').optional(), expect: expectSpec.optional() };

/** Zod schemas per step action, keyed by the action's key. */
const STEP_SCHEMAS: { readonly [K in StepAction]: z.ZodType } = {
  open: z.strictObject({ open: z.string(), ...common }),
  close: z.strictObject({ close: scalar, ...common }),
  mmap: z.strictObject({
    mmap: z.strictObject({ length: scalar, fd: scalar.optional(), offset: scalar.optional(), shared: z.boolean().optional() }),
    ...common,
  }),
  memfd: z.strictObject({ memfd: z.strictObject({ name: z.string(), size: scalar }), ...common }),
  poke: z.strictObject({
    poke: z
      .strictObject({ at: scalar, ...bytesShape })
      .refine((b) => [b.text, b.hex, b.struct].filter((x) => x !== undefined).length === 1, {
        message: 'give exactly one of text, hex or struct (a uAPI layout name, with fields)',
      }),
    ...common,
  }),
  peek: z.strictObject({ peek: z.strictObject({ at: scalar, length: z.number().int().positive(), struct: z.string().optional() }), ...common }),
  ioctl: z.strictObject({ ioctl: z.string(), fd: scalar.optional(), struct: z.string().optional(), fields: fields.optional(), ...common }),
  bind: z.strictObject({ bind: z.strictObject({ device: z.union([z.number().int().nonnegative(), z.string()]), iommufd: scalar.optional() }), ...common }),
  attach: z.strictObject({ attach: z.strictObject({ device: z.string(), pt: scalar, pasid: z.number().int().optional() }), ...common }),
  detach: z.strictObject({ detach: z.strictObject({ device: z.string(), pasid: z.number().int().optional() }), ...common }),
  dma: z.strictObject({
    dma: z.strictObject({
      device: z.union([z.number().int().nonnegative(), z.string()]),
      iova: scalar,
      length: z.number().int().positive(),
      write: z.boolean().optional(),
      text: z.string().optional(),
      hex: hexBytes.optional(),
      pasid: z.number().int().optional(),
    }),
    ...common,
  }),
  read: z.strictObject({ read: z.strictObject({ fd: scalar, length: z.number().int().positive() }), ...common }),
};

/** The action of a step (its one key besides `as` and `expect`). */
export type StepAction = 'open' | 'close' | 'mmap' | 'memfd' | 'poke' | 'peek' | 'ioctl' | 'bind' | 'attach' | 'detach' | 'dma' | 'read';

/** A value as written in a scenario: a number, a string (`0x…`, `$name`, `$name.field`, `NAME+0x10`, a uAPI constant), a boolean, or a list ORed together. */
export type ScenarioValue = number | string | boolean | readonly (number | string)[];
/** Struct fields by C name. */
export type ScenarioFields = Readonly<Record<string, ScenarioValue>>;

/** What a step expects; without `errno` it must succeed. */
export interface StepExpect {
  /** An errno name (`EBUSY`) the step must fail with, or 0 for success. */
  readonly errno?: string | 0;
  /** Output fields of an ioctl. */
  readonly fields?: ScenarioFields;
  /** Bytes (as UTF-8 text) a peek, DMA read or read must return first. */
  readonly text?: string;
  /** Bytes (hex) a peek, DMA read or read must return first. */
  readonly hex?: string;
  /** A DMA must fault (`true`) or fault with this kind (`'F_TRANSLATION'`). */
  readonly fault?: boolean | string;
  /** The vEVENT a read of a vEVENTQ must return: header fields and the payload's struct fields. */
  readonly vevent?: { readonly sequence?: number; readonly flags?: number; readonly struct?: string; readonly fields?: ScenarioFields };
}

/** Bytes written by a poke at `at`: text, hex, or a uAPI struct with fields. */
export interface PokeBytes {
  /** The VA. */
  readonly at: number | string | boolean;
  /** UTF-8 text. */
  readonly text?: string;
  /** Hex bytes (`"de ad be ef"`). */
  readonly hex?: string;
  /** A `@iommufd/uapi` layout name, encoded from `fields`. */
  readonly struct?: string;
  /** Fields of `struct`. */
  readonly fields?: ScenarioFields;
}

/** The arguments of each action, as written. */
export interface StepArgs {
  /** open(path). */
  open: { readonly open: string };
  /** close(fd). */
  close: { readonly close: number | string | boolean };
  /** mmap: anonymous, or of a memfd (`fd`). */
  mmap: { readonly mmap: { readonly length: number | string | boolean; readonly fd?: number | string | boolean; readonly offset?: number | string | boolean; readonly shared?: boolean } };
  /** memfd_create + ftruncate. */
  memfd: { readonly memfd: { readonly name: string; readonly size: number | string | boolean } };
  /** The process writes its memory. */
  poke: { readonly poke: PokeBytes };
  /** The process reads its memory; with `struct`, `$name.field` reads the decoded fields (and `expect.fields` checks them). */
  peek: { readonly peek: { readonly at: number | string | boolean; readonly length: number; readonly struct?: string } };
  /** An ioctl by C name with struct fields. */
  ioctl: { readonly ioctl: string; readonly fd?: number | string | boolean; readonly struct?: string; readonly fields?: ScenarioFields };
  /** Open a VFIO cdev and VFIO_DEVICE_BIND_IOMMUFD. */
  bind: { readonly bind: { readonly device: number | string; readonly iommufd?: number | string | boolean } };
  /** VFIO_DEVICE_ATTACH_IOMMUFD_PT of a bound device. */
  attach: { readonly attach: { readonly device: string; readonly pt: number | string | boolean; readonly pasid?: number } };
  /** VFIO_DEVICE_DETACH_IOMMUFD_PT of a bound device. */
  detach: { readonly detach: { readonly device: string; readonly pasid?: number } };
  /** A device-initiated DMA. */
  dma: {
    readonly dma: {
      readonly device: number | string;
      readonly iova: number | string | boolean;
      readonly length: number;
      readonly write?: boolean;
      readonly text?: string;
      readonly hex?: string;
      readonly pasid?: number;
    };
  };
  /** read() of an event fd. */
  read: { readonly read: { readonly fd: number | string | boolean; readonly length: number } };
}

/** One validated step: its action's arguments, `as` (the name of its result), `expect`, and where it is. */
export type ScenarioStep = {
  [K in StepAction]: StepArgs[K] & {
    readonly action: K;
    /** 0-based index in `steps`. */
    readonly index: number;
    /** 1-based source line, when known. */
    readonly line?: number;
    readonly as?: string;
    readonly expect?: StepExpect;
  };
}[StepAction];

/** The machine a scenario runs on (createHost's options). */
export interface ScenarioMachine {
  /** The preset. */
  readonly platform: 'mock' | 'arm-smmuv3' | 'tegra241-cmdqv' | 'intel-vtd';
  /** VFIO devices (default 1). */
  readonly devices?: number;
  /** A number or a decimal / `0x…` string. */
  readonly ramBytes?: number | string;
  /** Caches never evict. */
  readonly strict?: boolean;
  /** Seed of anything randomised. */
  readonly seed?: number;
  /**
   * The preset's hardware parameters, as createHost's `hardware` (sections and fields are
   * checked by createHost against the platform: a wrong one is a `machine:` error).
   */
  readonly hardware?: HostHardwareOptions[ScenarioMachine['platform']];
}

const machineSchema = z.strictObject({
  platform: z.enum(['mock', 'arm-smmuv3', 'tegra241-cmdqv', 'intel-vtd']),
  devices: z.number().int().min(0).max(MAX_DEVICES).optional(),
  ramBytes: z.union([z.number().int().positive(), z.string().regex(/^(0x[0-9a-fA-F]+|[0-9]+)$/)]).optional(),
  strict: z.boolean().optional(),
  seed: z.number().int().optional(),
  // Sections of fields; which ones a platform takes, and their ranges, createHost checks.
  hardware: z.record(z.string(), z.record(z.string(), z.union([z.boolean(), z.number()]))).optional(),
});

/** A validated scenario. */
export interface Scenario {
  /** Optional one-line description. */
  readonly name?: string;
  /** The machine to build. */
  readonly machine: ScenarioMachine;
  /** The steps, in order. */
  readonly steps: readonly ScenarioStep[];
}

/** The scenario file is not valid: what was expected, where. */
export class ScenarioError extends Error {
  /** Always `'ScenarioError'`. */
  override readonly name = 'ScenarioError';
  /** 1-based source line, when known. */
  readonly line: number | undefined;
  /** 0-based step index, when the problem is in a step (messages show it 1-based). */
  readonly step: number | undefined;
  /** `message` says what was expected and where; `line` and `step` locate it. */
  constructor(message: string, line?: number, step?: number) {
    super(message);
    this.line = line;
    this.step = step;
  }
}

const ACTIONS = Object.keys(STEP_SCHEMAS) as StepAction[];

/** Formats where a problem is: `step 3 (line 12)`. */
export function where(step: number | undefined, line: number | undefined): string {
  const parts = [step === undefined ? undefined : `step ${step + 1}`, line === undefined ? undefined : `line ${line}`].filter(Boolean);
  return parts.length === 0 ? 'scenario' : parts.length === 1 ? parts[0]! : `${parts[0]} (${parts[1]})`;
}

/**
 * Parses and validates a scenario from its text (`json` selects JSON; otherwise YAML, of which
 * JSON is a subset, so line numbers are known for both).
 *
 * @throws {@link ScenarioError} naming the line and step of the first problem.
 */
export function parseScenario(text: string): Scenario {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, intAsBigInt: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ScenarioError(`not valid YAML/JSON: ${e.message.split('\n')[0]}`, e.linePos?.[0]?.line);
  }
  const lineOf = (path: readonly (string | number)[]): number | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
    }
    return undefined;
  };
  const raw: unknown = doc.toJS();
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ScenarioError('expected a mapping with `machine` and `steps`', 1);
  const top = raw as Record<string, unknown>;
  const allowed = ['name', 'machine', 'steps'];
  for (const k of Object.keys(top)) {
    if (!allowed.includes(k)) throw new ScenarioError(`unknown top-level key '${k}': expected ${allowed.join(', ')}`, lineOf([k]));
  }
  if (top.name !== undefined && typeof top.name !== 'string') throw new ScenarioError('`name` must be a string', lineOf(['name']));
  const m = machineSchema.safeParse(top.machine);
  if (!m.success) {
    const issue = m.error.issues[0]!;
    const path = ['machine', ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
    throw new ScenarioError(`${path.join('.')}: ${issue.message}`, lineOf(path));
  }
  if (!Array.isArray(top.steps)) throw new ScenarioError('`steps` must be a list of steps', lineOf(['steps']));
  const steps = top.steps.map((s: unknown, index): ScenarioStep => {
    const line = lineOf(['steps', index]);
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new ScenarioError(`${where(index, line)}: expected a mapping with one of ${ACTIONS.join(', ')}`, line, index);
    const actions = Object.keys(s).filter((k): k is StepAction => (ACTIONS as string[]).includes(k));
    const action = actions[0];
    if (actions.length !== 1 || action === undefined) {
      const keys = Object.keys(s).map((k) => `'${k}'`).join(', ') || 'none';
      throw new ScenarioError(`${where(index, line)}: expected exactly one action key (${ACTIONS.join(', ')}), got ${keys}`, line, index);
    }
    const r = STEP_SCHEMAS[action].safeParse(s);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      const sub = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
      const l = lineOf(['steps', index, ...sub]);
      throw new ScenarioError(`${where(index, l)}: ${action}${sub.length ? ` → ${sub.join('.')}` : ''}: ${issue.message}`, l, index);
    }
    return { ...(r.data as object), action, index, ...(line !== undefined ? { line } : {}) } as ScenarioStep;
  });
  // `hardware` is a mapping of mappings here; createHost checks it against the platform.
  const machine = m.data as ScenarioMachine;
  return { ...(typeof top.name === 'string' ? { name: top.name } : {}), machine, steps };
}
