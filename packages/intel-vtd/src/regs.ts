/** MMIO access to one remapping unit's register window, through physical memory only. */
import type { PhysicalMemory } from '@iommufd/hw-model';

/** `readl/writel/dmar_readq/dmar_writeq` on the unit at `base`. */
export class VtdRegisters {
  /**
   * @param mem - physical memory (the register window is an MMIO region in it)
   * @param base - physical base of the register window
   */
  constructor(
    private readonly mem: PhysicalMemory,
    readonly base: bigint,
  ) {}
  /** `readl` */
  read32(off: number): number {
    return this.mem.read32(this.base + BigInt(off));
  }
  /** `writel` */
  write32(off: number, v: number): void {
    this.mem.write32(this.base + BigInt(off), v >>> 0);
  }
  /** `dmar_readq` */
  read64(off: number): bigint {
    return this.mem.read64(this.base + BigInt(off));
  }
  /** `dmar_writeq` */
  write64(off: number, v: bigint): void {
    this.mem.write64(this.base + BigInt(off), v);
  }
}
