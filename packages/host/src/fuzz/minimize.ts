/**
 * Delta debugging (Zeller's ddmin) over an operation list: the smallest sub-list (1-minimal:
 * removing any single element makes the failure go away) that still fails.
 */

/** Options of {@link minimize}. */
export interface MinimizeOptions<T = unknown> {
  /** Upper bound on predicate evaluations (each one replays a candidate). Default 2000. */
  readonly maxTests?: number;
  /**
   * Groups items by a key (the fuzzer: the operation kind) for a first pass that drops every
   * item of one group at once, keeping the last item. Programs whose later steps pick among
   * what earlier steps created shrink poorly under ddmin alone (dropping one step shifts
   * every later pick); dropping a whole kind that creates nothing (DMA, queries) does not.
   */
  readonly groupOf?: (item: T) => string;
}

/**
 * Shrinks `items` to a 1-minimal sub-sequence for which `fails` still returns true, keeping
 * the original order. `fails(items)` must be true for the input; the predicate may be async
 * (a replay on a fresh host).
 *
 * @returns the minimized list (the input itself when it cannot be shrunk).
 * @throws RangeError when the input does not fail.
 */
export async function minimize<T>(
  items: readonly T[],
  fails: (candidate: readonly T[]) => boolean | Promise<boolean>,
  options: MinimizeOptions<T> = {},
): Promise<T[]> {
  const maxTests = options.maxTests ?? 2000;
  let tests = 0;
  const test = async (c: readonly T[]): Promise<boolean> => {
    tests++;
    return fails(c);
  };
  if (!(await test(items))) throw new RangeError('minimize: the input does not fail, so there is nothing to minimize');
  let current = [...items];
  // Failures at the end of a run: the shortest failing prefix first (binary search).
  let lo = 1;
  let hi = current.length;
  while (lo < hi && tests < maxTests) {
    const mid = (lo + hi) >> 1;
    if (await test(current.slice(0, mid))) hi = mid;
    else lo = mid + 1;
  }
  current = current.slice(0, hi);
  if (options.groupOf) current = await dropGroups(current, options.groupOf, test, () => tests < maxTests);
  let n = 2;
  while (current.length >= 2 && tests < maxTests) {
    const chunk = Math.ceil(current.length / n);
    const parts: T[][] = [];
    for (let i = 0; i < current.length; i += chunk) parts.push(current.slice(i, i + chunk));
    let reduced = false;
    // A single failing subset: restart from it with two halves.
    for (const part of parts) {
      if (tests >= maxTests) break;
      if (part.length < current.length && (await test(part))) {
        current = part;
        n = 2;
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      // A failing complement: drop that part, keep the granularity.
      for (let i = 0; i < parts.length && tests < maxTests; i++) {
        const complement = parts.filter((_, j) => j !== i).flat();
        if (complement.length < current.length && (await test(complement))) {
          current = complement;
          n = Math.max(n - 1, 2);
          reduced = true;
          break;
        }
      }
    }
    if (!reduced) {
      if (n >= current.length) break;
      n = Math.min(n * 2, current.length);
    }
  }
  if (current.length === 1 && tests < maxTests && (await test([]))) return [];
  return current;
}

/** Drops every item of one group at a time (the last item always stays), repeating while any group goes. */
async function dropGroups<T>(items: T[], groupOf: (item: T) => string, test: (c: readonly T[]) => Promise<boolean>, budgetLeft: () => boolean): Promise<T[]> {
  let current = items;
  let progress = true;
  while (progress && budgetLeft()) {
    progress = false;
    const groups = [...new Set(current.slice(0, -1).map(groupOf))];
    for (const g of groups) {
      if (!budgetLeft()) break;
      const last = current.length - 1;
      const candidate = current.filter((x, i) => i === last || groupOf(x) !== g);
      if (candidate.length < current.length && (await test(candidate))) {
        current = candidate;
        progress = true;
      }
    }
  }
  return current;
}
