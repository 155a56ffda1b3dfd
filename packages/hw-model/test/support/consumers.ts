// The queue consumers every queue test runs against: the model's TypeScript consumers and the
// WebAssembly queue engine. A test file wraps its suites in
// `describe.each(QUEUE_CONSUMERS)('%s consumer', (c) => { useQueueConsumer(c); ... })`; the
// test drivers build their machines with `machineQueueConsumers()` and check that the machine
// really got that consumer (a silent fallback would make the wasm runs test TypeScript twice).
import { beforeEach, expect } from 'vitest';
import type { Machine, QueueConsumerKind } from '../../src/index.js';

export const QUEUE_CONSUMERS = ['typescript', 'wasm'] as const;
export type QueueConsumerName = (typeof QUEUE_CONSUMERS)[number];

const KIND: Record<QueueConsumerName, QueueConsumerKind> = { typescript: 'typescript', wasm: 'engine' };
let current: QueueConsumerName = 'wasm';

/** Makes every test of the enclosing suite build machines with consumer `name`. */
export function useQueueConsumer(name: QueueConsumerName): void {
  beforeEach(() => {
    current = name;
  });
}

/** The `queueConsumers` value for the machine description of the running test. */
export function machineQueueConsumers(): QueueConsumerKind {
  return KIND[current];
}

/** Checks that `m` got the consumer the running test asked for. */
export function expectQueueConsumer(m: Machine): void {
  expect(m.queueConsumers).toBe(KIND[current]);
  if (current === 'wasm') expect(m.queueEngine?.impl).toBe('wasm');
}

/** Runs `build` with consumer `name` (for tests that build one machine per consumer side by side). */
export function withQueueConsumer<T>(name: QueueConsumerName, build: () => T): T {
  const saved = current;
  current = name;
  try {
    return build();
  } finally {
    current = saved;
  }
}
