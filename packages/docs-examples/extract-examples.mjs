#!/usr/bin/env node
// Extracts the code examples of docs/guides/*.md into examples/<guide>/<name>.ts, so that
// tsc type-checks them and the tests run them. An example is a ```ts block whose first
// line is `// example: <name>`; other ts blocks (signatures, fragments) are prose.
// Run directly (the package's typecheck script) or imported by test/guides.test.ts.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const guidesDir = join(here, '../../docs/guides');
/** Where the typecheck script writes the examples (tsconfig.test.json includes it). */
export const examplesDir = join(here, 'examples');
/**
 * Where the tests write them: a folder of their own, because turbo runs `typecheck` and
 * `test` in parallel and one must not delete files the other is reading.
 */
export const testExamplesDir = join(here, 'temp/examples');

const FENCE = /^```ts\n(\/\/ example: ([a-z0-9-]+)\n[\s\S]*?)^```$/gm;

/**
 * Writes every example under `outDir` and returns them as
 * `{ guide, name, file, line }` (line = where the block starts in the guide).
 */
export function extractExamples(outDir = examplesDir) {
  rmSync(outDir, { recursive: true, force: true });
  const found = [];
  for (const md of readdirSync(guidesDir).filter((f) => f.endsWith('.md')).sort()) {
    const guide = basename(md, '.md');
    const text = readFileSync(join(guidesDir, md), 'utf8');
    const seen = new Set();
    for (const m of text.matchAll(FENCE)) {
      const [, code, name] = m;
      if (seen.has(name)) throw new Error(`docs/guides/${md}: two examples are named '${name}'`);
      seen.add(name);
      const line = text.slice(0, m.index).split('\n').length;
      const file = join(outDir, guide, `${name}.ts`);
      mkdirSync(dirname(file), { recursive: true });
      // `export {}` makes every example a module (top-level await, no global name clashes).
      writeFileSync(file, `// Extracted from docs/guides/${md}:${line}; edit the guide, not this file.\n${code}\nexport {};\n`);
      found.push({ guide, name, file, line });
    }
  }
  return found;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const examples = extractExamples();
  console.log(`extracted ${examples.length} examples from docs/guides/`);
}
