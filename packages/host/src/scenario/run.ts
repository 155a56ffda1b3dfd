/**
 * Runs a validated scenario on a fresh host: each step is a syscall, an ioctl by name with
 * fields packed through the `@iommufd/uapi` layouts, a VFIO bind/attach/detach, a device DMA or
 * a memory access, followed by its expectation. `$name` refers to an earlier step's result.
 */
import * as U from '@iommufd/uapi';
import type { StructLayout } from '@iommufd/uapi';
import { HostError } from '../errors.js';
import { hex, hexBytes } from '../hex.js';
import { createHost, type Host } from '../host.js';
import type { HostObjectInfo } from '../platform.js';
import type { Scenario, ScenarioStep, ScenarioValue, StepExpect } from './schema.js';
import { ScenarioError, where } from './schema.js';

/** What a named step produced: its primary value (`$name`) and its fields (`$name.field`). */
interface Named {
  readonly primary: bigint;
  readonly fields: Readonly<Record<string, bigint>>;
  /** The VFIO cdev path of a `bind` step. */
  readonly path?: string;
}

/** One step's outcome. */
export interface StepOutcome {
  /** 0-based step index. */
  readonly index: number;
  /** 1-based source line, when known. */
  readonly line?: number;
  /** The step's action. */
  readonly action: ScenarioStep['action'];
  /** What the step did, one line. */
  readonly summary: string;
}

/** A step whose result did not match what the scenario expected. */
export interface StepFailure {
  /** 0-based step index. */
  readonly index: number;
  /** 1-based source line, when known. */
  readonly line?: number;
  /** `step 4 (line 20) ioctl IOMMU_DESTROY: expected errno EBUSY, got success (0)`. */
  readonly message: string;
}

/** The result of {@link runScenario}. */
export interface RunReport {
  /** The host the scenario ran on (still alive, for inspection). */
  readonly host: Host;
  /** Steps that ran and met their expectation, in order. */
  readonly outcomes: readonly StepOutcome[];
  /** The first failed step, if any (the run stops there). */
  readonly failure?: StepFailure;
  /** The objects of each /dev/iommu context, as last seen while it was open (keyed by fd). */
  readonly objects: ReadonlyMap<number, readonly HostObjectInfo[]>;
}

/** Options of {@link runScenario}. */
export interface RunOptions {
  /** Progress, one line per step. */
  readonly log?: (line: string) => void;
  /** Wraps the host before the steps run (the tracer uses it). */
  readonly wrapHost?: (host: Host) => Host;
}

const VFIO_LAYOUTS: Readonly<Record<string, StructLayout>> = {
  VFIO_DEVICE_BIND_IOMMUFD: U.vfio_device_bind_iommufd,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: U.vfio_device_attach_iommufd_pt,
  VFIO_DEVICE_DETACH_IOMMUFD_PT: U.vfio_device_detach_iommufd_pt,
  IOMMU_TEST_CMD: U.iommu_test_cmd,
};

const isLayout = (x: unknown): x is StructLayout =>
  typeof x === 'object' && x !== null && 'fieldList' in x && 'encode' in x && 'decode' in x;

const uapi = U as unknown as Readonly<Record<string, unknown>>;

/** The uAPI struct layout called `name` (`iommu_hwpt_selftest`, or an `IOMMU_TEST_CMD_LAYOUTS` member). */
export function layoutByName(name: string): StructLayout | undefined {
  const direct = uapi[name];
  if (isLayout(direct)) return direct;
  const member = (U.IOMMU_TEST_CMD_LAYOUTS as unknown as Record<string, unknown>)[name];
  return isLayout(member) ? member : undefined;
}

/** The name of an ioctl request value, for messages and traces. */
export function ioctlName(request: number): string {
  const row = U.iommufdIoctlByRequest(request);
  if (row) return row.name;
  for (const name of [...Object.keys(VFIO_LAYOUTS)]) if (uapi[name] === request) return name;
  return `0x${request.toString(16)}`;
}

/** The layout an ioctl request's argument has, when the CLI knows it. */
export function ioctlLayout(request: number): StructLayout | undefined {
  const row = U.iommufdIoctlByRequest(request);
  if (row) return row.layout;
  for (const [name, layout] of Object.entries(VFIO_LAYOUTS)) if (uapi[name] === request) return layout;
  return undefined;
}

const parseHex = (s: string): Uint8Array => Uint8Array.from((s.match(/[0-9a-fA-F]{2}/g) ?? []).map((h) => parseInt(h, 16)));

class StepFailed extends Error {}

/**
 * Runs `scenario` on a new host built from its machine. Stops at the first step whose result
 * does not meet its expectation (reported in {@link RunReport.failure}).
 *
 * @throws {@link ScenarioError} when a step cannot be performed as written (unknown ioctl,
 *   struct, field or `$name`): a fault of the file, not of the model.
 */
export async function runScenario(scenario: Scenario, options: RunOptions = {}): Promise<RunReport> {
  const m = scenario.machine;
  let base: Host;
  try {
    base = await createHost({
      platform: m.platform,
      devices: m.devices ?? 1,
      ...(m.ramBytes !== undefined ? { ramBytes: BigInt(m.ramBytes) } : {}),
      ...(m.strict !== undefined ? { strict: m.strict } : {}),
      ...(m.seed !== undefined ? { seed: m.seed } : {}),
      ...(m.hardware !== undefined ? { hardware: m.hardware } : {}),
    });
  } catch (e) {
    // A machine createHost rejects (e.g. ramBytes not a multiple of 4096) is a fault of the file.
    if (e instanceof HostError && e.code === 'BAD_OPTION') throw new ScenarioError(`machine: ${e.message}`);
    throw e;
  }
  const host = options.wrapHost ? options.wrapHost(base) : base;
  const p = host.process;
  const names = new Map<string, Named>();
  const iommufds = new Set<number>();
  const objects = new Map<number, readonly HostObjectInfo[]>();
  const outcomes: StepOutcome[] = [];
  const log = options.log ?? (() => {});

  for (const step of scenario.steps) {
    const at = where(step.index, step.line);
    const bad = (msg: string): never => {
      throw new ScenarioError(`${at}: ${msg}`, step.line, step.index);
    };

    const resolve = (v: ScenarioValue): bigint => {
      if (typeof v === 'object') return v.reduce<bigint>((acc, x) => acc | resolve(x), 0n);
      if (typeof v === 'boolean') return v ? 1n : 0n;
      if (typeof v === 'number') {
        if (!Number.isSafeInteger(v)) bad(`${v} is not an integer; write large values as "0x…" strings`);
        return BigInt(v);
      }
      const s = v.trim();
      if (/^-?(0x[0-9a-f]+|[0-9]+)$/i.test(s)) return s.startsWith('-') ? -BigInt(s.slice(1)) : BigInt(s);
      const sum = /^([A-Za-z_$][A-Za-z0-9_.$]*)\s*([+-])\s*(0x[0-9a-fA-F]+|[0-9]+)$/.exec(s);
      if (sum) return sum[2] === '-' ? resolve(sum[1]!) - BigInt(sum[3]!) : resolve(sum[1]!) + BigInt(sum[3]!);
      const ref = /^\$([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?$/.exec(s);
      if (ref) {
        const named = names.get(ref[1]!);
        if (!named) return bad(`'$${ref[1]}' is not the \`as\` name of an earlier step (known: ${[...names.keys()].map((n) => `$${n}`).join(', ') || 'none'})`);
        if (ref[2] === undefined) return named.primary;
        const f = named.fields[ref[2]];
        if (f === undefined) return bad(`'$${ref[1]}' has no field '${ref[2]}' (it has ${Object.keys(named.fields).join(', ') || 'none'})`);
        return f;
      }
      const c = uapi[s];
      if (typeof c === 'number') return BigInt(c);
      if (typeof c === 'bigint') return c;
      const e = U.ERRNO[s];
      if (e !== undefined) return BigInt(e);
      return bad(`'${s}' is neither a number, a $reference (optionally + offset) nor a @iommufd/uapi constant`);
    };
    const num = (v: ScenarioValue): number => Number(resolve(v));

    const pack = (layout: StructLayout, given: Readonly<Record<string, ScenarioValue>>, length: number): Uint8Array => {
      const value: Record<string, number | bigint> = {};
      for (const [k, v] of Object.entries(given)) {
        const f = layout.fields[k as keyof typeof layout.fields];
        if (!f) return bad(`struct ${layout.name} has no field '${k}' (fields: ${layout.fieldList.map((x) => x.name).join(', ')})`);
        if (f.isArray) return bad(`field ${layout.name}.${k} is an array; write it with poke hex bytes`);
        const r = resolve(v);
        value[k] = f.elementSize === 8 ? BigInt.asUintN(64, r) : Number(BigInt.asIntN(32, r));
      }
      for (const auto of ['size', 'argsz']) if (auto in layout.fields && !(auto in given)) value[auto] = length;
      const bytes = new Uint8Array(Math.max(length, layout.size));
      layout.encode(value as never, bytes, 0);
      return bytes;
    };
    const decoded = (layout: StructLayout, bytes: Uint8Array): Record<string, bigint> => {
      const out: Record<string, bigint> = {};
      const d = layout.decode(bytes) as Record<string, unknown>;
      for (const f of layout.fieldList) {
        const x = d[f.name];
        if (typeof x === 'number' || typeof x === 'bigint') out[f.name] = BigInt(x);
      }
      return out;
    };
    const layoutNamed = (name: string): StructLayout => layoutByName(name) ?? bad(`'${name}' is not a @iommufd/uapi struct layout`);

    const fail = (msg: string): never => {
      throw new StepFailed(`${at} ${step.action}${step.action === 'ioctl' ? ` ${step.ioctl}` : ''}: ${msg}`);
    };
    const expectRc = (rc: number, expect: StepExpect | undefined): void => {
      const want = expect?.errno;
      if (want === undefined || want === 0 || want === '0') {
        if (rc < 0) fail(`expected success, got ${U.errnoName(-rc)} (${rc})`);
        return;
      }
      const e = U.ERRNO[want];
      if (e === undefined) bad(`'${want}' is not a Linux errno name`);
      if (rc !== -e!) fail(`expected errno ${want}, got ${rc < 0 ? `${U.errnoName(-rc)} (${rc})` : `success (${rc})`}`);
    };
    const expectBytes = (data: Uint8Array, expect: StepExpect | undefined): void => {
      if (expect?.text !== undefined) {
        const want = new TextEncoder().encode(expect.text);
        const raw = data.subarray(0, want.length);
        const got = new TextDecoder().decode(raw);
        if (got !== expect.text) fail(`expected text ${JSON.stringify(expect.text)}, got ${got.includes('\uFFFD') ? `bytes ${hexBytes(raw)}` : JSON.stringify(got)}`);
      }
      if (expect?.hex !== undefined) {
        const want = parseHex(expect.hex);
        const got = data.subarray(0, want.length);
        if (hexBytes(got) !== hexBytes(want)) fail(`expected bytes ${hexBytes(want)}, got ${hexBytes(got)}`);
      }
    };
    const expectFields = (got: Record<string, bigint>, expect: StepExpect | undefined): void => {
      for (const [k, v] of Object.entries(expect?.fields ?? {})) {
        if (!(k in got)) bad(`expect.fields: the result has no field '${k}' (it has ${Object.keys(got).join(', ')})`);
        const want = resolve(v);
        if (got[k] !== want) fail(`expected ${k} = ${hex(want)}, got ${hex(got[k]!)}`);
      }
    };
    const deviceOf = (d: number | string): { path: string; fd?: number } => {
      if (typeof d === 'number') return { path: host.vfioDevices[d] ?? bad(`device ${d} does not exist: the machine has ${host.vfioDevices.length} device(s)`) };
      if (d.startsWith('$')) {
        const named = names.get(d.slice(1));
        if (!named?.path) return bad(`'${d}' is not the \`as\` name of an earlier bind step`);
        return { path: named.path, fd: Number(named.fields.fd) };
      }
      if (!host.vfioDevices.includes(d)) bad(`no VFIO device '${d}' (this machine has ${host.vfioDevices.join(', ')})`);
      return { path: d };
    };
    const lastIommufd = (): number => {
      const fds = [...iommufds];
      return fds[fds.length - 1] ?? bad('no /dev/iommu is open: add an `open: /dev/iommu` step or give `fd:`');
    };

    let result: Named = { primary: 0n, fields: {} };
    let summary = '';
    try {
      switch (step.action) {
        case 'open': {
          const fd = p.open(step.open);
          expectRc(fd, step.expect);
          if (fd >= 0 && step.open === '/dev/iommu') iommufds.add(fd);
          result = { primary: BigInt(fd), fields: { fd: BigInt(fd) } };
          summary = `open(${step.open}) = ${fd}`;
          break;
        }
        case 'close': {
          const fd = num(step.close);
          const rc = p.close(fd);
          expectRc(rc, step.expect);
          iommufds.delete(fd);
          summary = `close(${fd}) = ${rc}`;
          break;
        }
        case 'memfd': {
          const fd = p.memfdCreate(step.memfd.name, resolve(step.memfd.size));
          expectRc(fd, step.expect);
          result = { primary: BigInt(fd), fields: { fd: BigInt(fd) } };
          summary = `memfd_create(${step.memfd.name}) = ${fd}`;
          break;
        }
        case 'mmap': {
          const mm = step.mmap;
          const fd = mm.fd === undefined ? -1 : num(mm.fd);
          const flags = fd < 0 ? U.MAP_PRIVATE | U.MAP_ANONYMOUS : mm.shared === false ? U.MAP_PRIVATE : U.MAP_SHARED;
          const va = p.mmap(resolve(mm.length), U.PROT_READ | U.PROT_WRITE, flags, fd, mm.offset === undefined ? 0n : resolve(mm.offset));
          expectRc(va < 0n && va > -4096n ? Number(va) : 0, step.expect);
          result = { primary: va, fields: { va } };
          summary = `mmap(${hex(resolve(mm.length))}) = ${va < 0n ? va : hex(va)}`;
          break;
        }
        case 'poke': {
          const w = step.poke;
          const data =
            w.text !== undefined ? new TextEncoder().encode(w.text) : w.hex !== undefined ? parseHex(w.hex) : pack(layoutNamed(w.struct!), w.fields ?? {}, 0);
          const va = resolve(w.at);
          const rc = p.poke(va, data);
          expectRc(rc, step.expect);
          summary = `poke ${data.length} byte(s) at ${hex(va)}`;
          break;
        }
        case 'peek': {
          const va = resolve(step.peek.at);
          const got = p.peek(va, step.peek.length);
          expectRc(typeof got === 'number' ? got : 0, step.expect);
          if (typeof got !== 'number') {
            expectBytes(got, step.expect);
            if (step.peek.struct !== undefined) {
              const fields = decoded(layoutNamed(step.peek.struct), got);
              expectFields(fields, step.expect);
              result = { primary: va, fields };
            }
          }
          summary = `peek ${step.peek.length} byte(s) at ${hex(va)}`;
          break;
        }
        case 'ioctl': {
          const row = U.IOMMUFD_IOCTLS.find((r) => r.name === step.ioctl);
          const request = row?.request ?? (typeof uapi[step.ioctl] === 'number' ? (uapi[step.ioctl] as number) : bad(`'${step.ioctl}' is not an ioctl of @iommufd/uapi`));
          const base = ioctlLayout(request);
          const layout = step.struct !== undefined ? layoutNamed(step.struct) : (base ?? bad(`give \`struct:\` for ${step.ioctl}: its argument layout is not known`));
          const bytes = pack(layout, step.fields ?? {}, Math.max(base?.size ?? 0, layout.size));
          const fd = step.fd === undefined ? lastIommufd() : num(step.fd);
          const rc = p.ioctl(fd, request, bytes);
          expectRc(rc, step.expect);
          const out = decoded(layout, bytes);
          expectFields(out, step.expect);
          const primaryKey = Object.keys(out).find((k) => /^out_.*_id$/.test(k)) ?? Object.keys(out).find((k) => k.startsWith('out_'));
          result = { primary: primaryKey ? out[primaryKey]! : BigInt(rc), fields: { ...out, rc: BigInt(rc) } };
          summary = `${step.ioctl} = ${rc < 0 ? U.errnoName(-rc) : rc}${primaryKey && rc >= 0 ? ` (${primaryKey} ${out[primaryKey]})` : ''}`;
          break;
        }
        case 'bind': {
          const { path } = deviceOf(step.bind.device);
          const fd = p.open(path);
          if (fd < 0) fail(`open(${path}) failed: ${U.errnoName(-fd)}`);
          const iommufd = step.bind.iommufd === undefined ? lastIommufd() : num(step.bind.iommufd);
          const bytes = U.vfio_device_bind_iommufd.encode({ argsz: U.vfio_device_bind_iommufd.size, iommufd });
          const rc = p.ioctl(fd, U.VFIO_DEVICE_BIND_IOMMUFD, bytes);
          expectRc(rc, step.expect);
          const devid = BigInt(U.vfio_device_bind_iommufd.get(bytes, 'out_devid'));
          result = { primary: devid, fields: { fd: BigInt(fd), devid, out_devid: devid }, path };
          summary = `VFIO_DEVICE_BIND_IOMMUFD(${path}) = ${rc < 0 ? U.errnoName(-rc) : `DEVICE ${devid}`}`;
          break;
        }
        case 'attach':
        case 'detach': {
          const dev = deviceOf(step.action === 'attach' ? step.attach.device : step.detach.device);
          if (dev.fd === undefined) bad('`device` must be the $name of a bind step (its cdev fd is needed)');
          const pasid = step.action === 'attach' ? step.attach.pasid : step.detach.pasid;
          let bytes: Uint8Array;
          let rc: number;
          if (step.action === 'attach') {
            bytes = U.vfio_device_attach_iommufd_pt.encode({
              argsz: U.vfio_device_attach_iommufd_pt.size,
              pt_id: num(step.attach.pt),
              ...(pasid !== undefined ? { flags: U.VFIO_DEVICE_ATTACH_PASID, pasid } : {}),
            });
            rc = p.ioctl(dev.fd!, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, bytes);
            expectRc(rc, step.expect);
            const pt = BigInt(U.vfio_device_attach_iommufd_pt.get(bytes, 'pt_id'));
            result = { primary: pt, fields: { pt_id: pt } };
            summary = `VFIO_DEVICE_ATTACH_IOMMUFD_PT(${dev.path}) = ${rc < 0 ? U.errnoName(-rc) : `HWPT ${pt}`}`;
          } else {
            bytes = U.vfio_device_detach_iommufd_pt.encode({
              argsz: U.vfio_device_detach_iommufd_pt.size,
              ...(pasid !== undefined ? { flags: U.VFIO_DEVICE_DETACH_PASID, pasid } : {}),
            });
            rc = p.ioctl(dev.fd!, U.VFIO_DEVICE_DETACH_IOMMUFD_PT, bytes);
            expectRc(rc, step.expect);
            summary = `VFIO_DEVICE_DETACH_IOMMUFD_PT(${dev.path}) = ${rc < 0 ? U.errnoName(-rc) : rc}`;
          }
          break;
        }
        case 'dma': {
          const d = step.dma;
          const { path } = deviceOf(d.device);
          const iova = resolve(d.iova);
          const data = d.text !== undefined ? new TextEncoder().encode(d.text) : d.hex !== undefined ? parseHex(d.hex) : undefined;
          const r = host.dma(path, { iova, length: d.length, write: d.write ?? false, ...(data ? { data } : {}), ...(d.pasid !== undefined ? { pasid: d.pasid } : {}) });
          const wantFault = step.expect?.fault;
          if (r.ok) {
            if (wantFault !== undefined && wantFault !== false) fail(`expected a fault${typeof wantFault === 'string' ? ` ${wantFault}` : ''}, the DMA completed`);
            if (r.data) expectBytes(r.data, step.expect);
            summary = `DMA ${d.write ? 'write' : 'read'} ${path} IOVA ${hex(iova)}: ok`;
          } else {
            if (wantFault === undefined || wantFault === false) fail(`DMA at IOVA ${hex(iova)} faulted: ${r.fault.kind}`);
            if (typeof wantFault === 'string' && r.fault.kind !== wantFault) fail(`expected fault ${wantFault}, got ${r.fault.kind}`);
            summary = `DMA ${d.write ? 'write' : 'read'} ${path} IOVA ${hex(iova)}: fault ${r.fault.kind}`;
          }
          break;
        }
        case 'read': {
          const fd = num(step.read.fd);
          const buf = new Uint8Array(step.read.length);
          const n = p.read(fd, buf);
          expectRc(n, step.expect);
          if (n >= 0) {
            const data = buf.subarray(0, n);
            expectBytes(data, step.expect);
            const ve = step.expect?.vevent;
            if (ve) {
              if (n < U.iommufd_vevent_header.size) fail(`expected a vEVENT, read ${n} byte(s)`);
              const h = U.iommufd_vevent_header.decode(data);
              if (ve.sequence !== undefined && h.sequence !== ve.sequence) fail(`expected vEVENT sequence ${ve.sequence}, got ${h.sequence}`);
              if (ve.flags !== undefined && h.flags !== ve.flags) fail(`expected vEVENT flags ${ve.flags}, got ${h.flags}`);
              if (ve.struct !== undefined) {
                const body = decoded(layoutNamed(ve.struct), data.subarray(U.iommufd_vevent_header.size));
                expectFields(body, { fields: ve.fields ?? {} });
              }
            }
          }
          result = { primary: BigInt(n), fields: { length: BigInt(n) } };
          summary = `read(${fd}) = ${n < 0 ? U.errnoName(-n) : `${n} byte(s)`}`;
          break;
        }
      }
    } catch (e) {
      if (!(e instanceof StepFailed)) throw e;
      for (const fd of iommufds) objects.set(fd, host.objects(fd));
      return { host, outcomes, failure: { index: step.index, ...(step.line !== undefined ? { line: step.line } : {}), message: e.message }, objects };
    }
    if (step.as !== undefined) names.set(step.as, result);
    for (const fd of iommufds) objects.set(fd, host.objects(fd));
    const outcome = { index: step.index, ...(step.line !== undefined ? { line: step.line } : {}), action: step.action, summary };
    outcomes.push(outcome);
    log(`✓ ${at} ${summary}`);
  }
  return { host, outcomes, objects };
}
