// Every `// example: <name>` block of docs/guides/*.md is one test: it is extracted to
// temp/examples/ and imported, so its top-level code (and the node:assert checks in it) runs.
import { describe, expect, it } from 'vitest';
import { extractExamples, testExamplesDir } from '../extract-examples.mjs';

const examples = extractExamples(testExamplesDir);
const guides = [...new Set(examples.map((e) => e.guide))];

it('finds the examples of all three guides', () => {
  expect(guides).toEqual(['driver-authors', 'hardware-models', 'vmm-developers']);
});

for (const guide of guides) {
  describe(`docs/guides/${guide}.md`, () => {
    for (const ex of examples.filter((e) => e.guide === guide)) {
      it(`${ex.name} (line ${ex.line})`, async () => {
        await import(ex.file);
      });
    }
  });
}
