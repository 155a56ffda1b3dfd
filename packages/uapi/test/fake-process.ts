import type { UserProcess } from '../src/index.js';

/** One ioctl as the fake kernel saw it: the struct bytes on entry (or the scalar arg). */
export interface RecordedIoctl {
  fd: number;
  request: number;
  arg: bigint | Uint8Array;
}

/** A scripted kernel: may rewrite `arg` (copy-back) and touch process memory; returns rc. */
export type IoctlScript = (call: { fd: number; request: number; arg: bigint | Uint8Array; n: number }, p: FakeProcess) => number;

const PAGE = 4096n;

/**
 * A tiny user process for wrapper tests: sparse byte memory behind anonymous mmaps, every
 * ioctl recorded with a copy of its input bytes, results from a script.
 */
export class FakeProcess implements UserProcess {
  readonly calls: RecordedIoctl[] = [];
  readonly mmaps: { va: bigint; length: bigint; prot: number; flags: number; fd: number }[] = [];
  readonly munmaps: { va: bigint; length: bigint }[] = [];
  readonly mem = new Map<bigint, number>();
  nextVa = 0x7f00_0000_0000n;
  mmapError = 0;
  readScript: (fd: number, buf: Uint8Array) => number = () => 0;
  writeScript: (fd: number, buf: Uint8Array) => number = (_fd, buf) => buf.length;
  readonly written: Uint8Array[] = [];

  constructor(public script: IoctlScript = () => 0) {}

  ioctl(fd: number, request: number, arg: bigint | Uint8Array): number {
    this.calls.push({ fd, request, arg: typeof arg === 'bigint' ? arg : arg.slice() });
    return this.script({ fd, request, arg, n: this.calls.length - 1 }, this);
  }
  mmap(length: bigint | number, prot: number, flags: number, fd: number, _offset: bigint | number): bigint {
    if (this.mmapError) return BigInt(-this.mmapError);
    const va = this.nextVa;
    const len = BigInt(length);
    this.nextVa += ((len + PAGE - 1n) / PAGE) * PAGE + PAGE;
    this.mmaps.push({ va, length: len, prot, flags, fd });
    return va;
  }
  munmap(va: bigint, length: bigint | number): number {
    this.munmaps.push({ va, length: BigInt(length) });
    return 0;
  }
  poke(va: bigint, bytes: Uint8Array): void {
    bytes.forEach((b, i) => this.mem.set(va + BigInt(i), b));
  }
  peek(va: bigint, length: number): Uint8Array {
    return Uint8Array.from({ length }, (_, i) => this.mem.get(va + BigInt(i)) ?? 0);
  }
  read(fd: number, buf: Uint8Array): number {
    return this.readScript(fd, buf);
  }
  write(fd: number, buf: Uint8Array): number {
    this.written.push(buf.slice());
    return this.writeScript(fd, buf);
  }
  /** The struct bytes the i-th ioctl received. */
  bytesOf(i: number): number[] {
    const a = this.calls[i].arg;
    if (typeof a === 'bigint') throw new Error(`ioctl ${i} got a scalar`);
    return Array.from(a);
  }
}

/** Little-endian bytes of a u32 / u64, for spelling expected structs. */
export const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
export const le64 = (v: bigint): number[] => Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
