/**
 * Delta debugging (Zeller's ddmin) over an operation list: the smallest sub-list (1-minimal:
 * removing any single element makes the failure go away) that still fails.
 */

/** Options of {@link minimize}. */
export interface MinimizeOptions {
  /** Upper bound on predicate evaluations (each one replays a candidate). Default 2000. */
  readonly maxTests?: number;
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
  options: MinimizeOptions = {},
): Promise<T[]> {
  const maxTests = options.maxTests ?? 2000;
  let tests = 0;
  const test = async (c: readonly T[]): Promise<boolean> => {
    tests++;
    return fails(c);
  };
  if (!(await test(items))) throw new RangeError('minimize: the input does not fail, so there is nothing to minimize');
  let current = [...items];
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
