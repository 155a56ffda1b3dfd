/**
 * The `tegra241-cmdqv` preset: the `arm-smmuv3` machine with NVIDIA's Tegra241 CMDQV next to
 * the SMMU (its frame right after the SMMU's 128 KiB), probed with the driver's CMDQV
 * implementation: host commands go through VINTF0, and a TEGRA241_CMDQV vIOMMU gets a VINTF
 * whose page the VMM maps through the iommufd fd for its guest's VCMDQs.
 */
import type { Platform, PlatformContext } from '../platform.js';
import { createSmmuPlatform } from './arm-smmuv3.js';

/** Builds the `tegra241-cmdqv` platform. */
export function createTegra241CmdqvPlatform(ctx: PlatformContext): Promise<Platform> {
  return createSmmuPlatform(ctx, true);
}
