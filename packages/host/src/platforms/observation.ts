/**
 * What tracing and inspection reach inside a host without widening the Host contract: the
 * core whose driver-op observer a tracer sets, the IOMMU models whose hardware observer it
 * sets, and the devices. Each preset registers them under the host's physical memory (the
 * one object the host and its platform share).
 */
import type { CoreDevice, IommuCore } from '@iommufd/core';
import type { IommuInstance } from '@iommufd/hw-model';
import type { HostPhysicalMemory } from '../physical.js';

/** A host's observation points. */
export interface ObservationPoints {
  /** The iommufd core. */
  readonly core: IommuCore;
  /** The IOMMU models (none on the mock platform). */
  readonly iommus: readonly IommuInstance[];
  /** The core's devices, in VFIO cdev order. */
  readonly devices: readonly CoreDevice[];
}

const registry = new WeakMap<HostPhysicalMemory, ObservationPoints>();

/** Called by each preset once its core, models and devices exist. */
export function registerObservationPoints(memory: HostPhysicalMemory, points: ObservationPoints): void {
  registry.set(memory, points);
}

/** The observation points of the host whose memory is `memory` (undefined for a host built some other way). */
export function observationPointsOf(memory: HostPhysicalMemory): ObservationPoints | undefined {
  return registry.get(memory);
}
