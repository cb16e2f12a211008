import { existsSync, readdirSync } from 'node:fs';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlashcardsError } from '../core/errors.ts';
import { packageFile } from '../core/package-root.ts';
import { didYouMeanSuffix } from '../core/suggest.ts';
import { compilePipeline, type Languages } from './compile.ts';
import { type LoadedDefinition, loadDefinition } from './definition.ts';
import type { Pipeline } from './types.ts';

/** Built-in pipelines are ordinary pipeline files, read from the sources also when running the build. */
const builtinDir = (): string => packageFile('src', 'pipeline', 'builtin');

export const DEFAULT_PIPELINE = 'vocabulary';

/**
 * The compiled built-ins in dist/ belong to the build that wrote them: code run from the sources
 * (tests, a changed prompt being tried) reads the YAML, which may be newer.
 */
const runningFromBuild = (): boolean => fileURLToPath(import.meta.url).startsWith(packageFile('dist') + sep);

let builtinNames: string[] | undefined;

/** The built-in pipelines' names (read once: the folder does not change while a command runs). */
export function builtinPipelineNames(): string[] {
  builtinNames ??= readdirSync(builtinDir())
    .filter((f) => extname(f) === '.yaml')
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
  return [...builtinNames];
}

function looksLikePath(ref: string): boolean {
  return ref.includes('/') || ref.includes('\\') || /\.(ya?ml|json)$/i.test(ref);
}

/**
 * A pipeline by built-in name or by file path (relative to `cwd`). A name that is neither is an
 * error listing the built-in ones.
 */
export function loadPipelineDefinition(ref: string, cwd: string): LoadedDefinition {
  const builtins = builtinPipelineNames();
  if (builtins.includes(ref) && !looksLikePath(ref)) {
    const compiled = packageFile('dist', 'builtin', `${ref}.json`);
    const def =
      runningFromBuild() && existsSync(compiled)
        ? loadDefinition(compiled, `${ref} (built-in)`, { compiled: true })
        : loadDefinition(join(builtinDir(), `${ref}.yaml`), `${ref} (built-in)`);
    return { ...def, source: 'built-in' };
  }
  const file = resolve(cwd, ref);
  if (looksLikePath(ref) || existsSync(file)) return loadDefinition(file, ref);
  throw new FlashcardsError(
    'config',
    `unknown pipeline "${ref}"${didYouMeanSuffix(ref, builtins)}; built-in: ${builtins.join(', ')}`,
    { hint: 'give a built-in name or the path of a pipeline file (.yaml or .json)' },
  );
}

/**
 * Where a relative pipeline path is read from: beside the config file that names it, else the
 * current directory (flags and environment variables are typed where the command runs).
 */
export function pipelineBaseDir(source: { kind: string; detail: string } | undefined, cwd: string): string {
  return source?.kind === 'file' ? dirname(resolve(cwd, source.detail)) : cwd;
}

export function loadPipeline(ref: string, cwd: string, languages: Languages): Pipeline {
  return compilePipeline(loadPipelineDefinition(ref, cwd), languages);
}

/** How a batch remembers its pipeline: a built-in name, or the file's absolute path. */
export function pipelineRef(ref: string, cwd: string): string {
  return builtinPipelineNames().includes(ref) && !looksLikePath(ref) ? ref : resolve(cwd, ref);
}
