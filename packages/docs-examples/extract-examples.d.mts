/** One extracted example. */
export interface Example {
  /** The guide's file name without `.md`. */
  guide: string;
  /** The name after `// example:`. */
  name: string;
  /** The extracted file under examples/. */
  file: string;
  /** The line of the guide where the block starts. */
  line: number;
}
export const guidesDir: string;
export const examplesDir: string;
export const testExamplesDir: string;
export function extractExamples(outDir?: string): Example[];
