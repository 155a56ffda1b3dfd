/**
 * `runDemo`: the `iommufd-sim demo` VMM run for whatever platform a host runs — the selftest
 * driver's nested flow on `mock`, the whole VM of `cli/preset-demo.ts` on the hardware
 * presets. Kept apart from `demo.ts` (the shared steps) so neither run imports the other.
 */
import { runPresetDemo } from './cli/preset-demo.js';
import { runMockDemo, type DemoSummary } from './demo.js';
import type { Host } from './host.js';

/**
 * Runs the demo's VMM run on `host` — prepared by the caller, as a test prepares it: any
 * platform and device count, a fault injector already armed (with
 * `host.setFaultInjector(new FailNth(n))` its n-th allocation point fails), a traced host
 * from `traceHost`. Progress lines go to `log`.
 *
 * @returns what the run did, for {@link formatSummary}
 * @throws {@link DemoError} naming the step that failed and why (a failed call's errno, an
 * unexpected DMA result); the run stops there and leaves its fds open for the caller to close
 */
export function runDemo(host: Host, log: (line: string) => void = () => {}): DemoSummary {
  return host.platform === 'mock' ? runMockDemo(host, log) : runPresetDemo(host, log);
}
