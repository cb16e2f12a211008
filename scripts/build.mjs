// Builds dist/ from src/: one bundle with a chunk per lazily loaded command. Node's ESM loader
// spends most of a start resolving, reading and linking modules (zod alone is ~95 files, yaml
// ~70); bundled, `flashcards process` reaches its first request ~50 ms sooner.
// Plain JavaScript: `npm ci` runs it through `prepare` on any Node >= 22.12.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { parse } from 'yaml';

// The project's folder, wherever the script is started from.
const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

// zod re-exports its ~50 translations of error messages as `z.locales`, which a bundler cannot
// drop; messages here are English. Without them zod's chunk is 1/3 the size and plain ASCII
// (V8 keeps a source with any non-Latin-1 character at two bytes a character, all of it).
const englishOnlyZod = {
  name: 'english-only-zod',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(join('node_modules', 'zod'))
        ? { path: 'zod-locales', namespace: 'english-only-zod' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'english-only-zod' }, () => ({
      contents: 'export { default as en } from "zod/v4/locales/en.js";',
      resolveDir: root,
    }));
  },
};

// commander imports node:child_process at its top for executable subcommands, which this CLI has
// none of: loading it costs every start ~15M instructions (~10% of `--version`). Commander gets a
// stand-in that loads the real module on the first spawn.
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, (args) =>
      args.importer.includes(join('node_modules', 'commander'))
        ? { path: 'child-process', namespace: 'lazy-child-process' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-child-process' }, () => ({
      contents:
        "import { createRequire } from 'node:module';\n" +
        'const load = () => createRequire(import.meta.url)("node:child_process");\n' +
        'export default { spawn: (...args) => load().spawn(...args) };\n',
      resolveDir: root,
    }));
  },
};

// `import { readFileSync } from 'node:fs'` kept as an ESM import makes Node build the module's ESM
// namespace, which reads every export: node:process and node:util cost ~27M instructions each at
// start (report, worker_threads, readline, diff...), node:fs ~9M (fs/promises, watchers). Built-in
// modules are taken from process.getBuiltinModule instead, and each name from them only where the
// bundle uses it (the unused ones are pure and dropped).
const nodeRequire = createRequire(import.meta.url);
const builtinModules = {
  name: 'builtin-modules',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) =>
      args.path === 'node:child_process' || args.path === 'node:module'
        ? undefined
        : { path: args.path, namespace: 'builtin-modules' },
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin-modules' }, (args) => {
      const names = Object.keys(nodeRequire(args.path)).filter(
        (n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== 'default',
      );
      return {
        contents: [
          `const m = process.getBuiltinModule(${JSON.stringify(args.path)});`,
          'const pick = (name) => m[name];',
          'export default m;',
          ...names.map((n) => `export const ${n} = /* @__PURE__ */ pick(${JSON.stringify(n)});`),
        ].join('\n'),
        loader: 'js',
      };
    });
  },
};

rmSync(dist, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ['src/cli.ts'],
  outdir: dist,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22.12',
  // Non-ASCII characters escaped and comments dropped: one such character anywhere makes V8 hold a
  // chunk's whole source at two bytes a character. Names are kept; with --verbose, stack traces
  // go back to src/ through the source maps.
  charset: 'ascii',
  minifyWhitespace: true,
  sourcemap: true,
  logLevel: 'warning',
  // Native code, or loaded only at run time and only in a terminal, with a config file or with
  // --store: imported from node_modules as they are. (ioredis is CommonJS whose named exports a
  // bundle's interop loses: `Redis is not a constructor`; Node's own loader keeps them.)
  external: ['better-sqlite3', 'cosmiconfig', 'ora', 'chalk', 'cli-table3', '@inquirer/prompts', 'ioredis'],
  // jsonc-parser's "main" is a UMD build whose require() calls esbuild cannot follow: take its ES
  // module build instead ("module").
  mainFields: ['module', 'main'],
  // Bundled CommonJS dependencies (commander) call require() for Node's own modules.
  plugins: [englishOnlyZod, lazyChildProcess, builtinModules],
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
});

// The built-in pipelines, compiled from their YAML (the source people read and copy) into
// self-contained JSON with the prompt files inline: a start reads them with JSON.parse instead
// of the YAML parser (~20 ms cold). The registry falls back to the YAML when these are missing.
const builtins = join(root, 'src/pipeline/builtin');
mkdirSync(join(dist, 'builtin'), { recursive: true });
for (const name of readdirSync(builtins).filter((f) => f.endsWith('.yaml'))) {
  const def = parse(readFileSync(join(builtins, name), 'utf8'));
  for (const stage of def.stages) {
    for (const role of ['system', 'user']) {
      const prompt = stage[role];
      if (prompt && typeof prompt === 'object')
        stage[role] = readFileSync(join(builtins, prompt.file), 'utf8');
    }
  }
  writeFileSync(join(dist, 'builtin', name.replace(/\.yaml$/, '.json')), `${JSON.stringify(def, null, 1)}\n`);
}
