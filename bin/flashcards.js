#!/usr/bin/env node
import module from 'node:module';
import { setFlagsFromString } from 'node:v8';

// Checked before anything else loads, against the minimum package.json's engines field states
// (npm only warns about it at install): on an older Node the CLI would fail on a missing API with
// a stack trace, and on 22.12-22.13 the SQLite driver's prebuilt binary (better-sqlite3) segfaults,
// instead of saying what it needs.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 14)) {
  const why = major === 22 && minor >= 12 ? ' (its SQLite driver crashes on Node 22.12 and 22.13)' : '';
  process.stderr.write(
    `error: flashcards needs Node.js 22.14 or newer${why}; this is Node ${process.version}\n` +
      'hint: install Node 24 LTS from https://nodejs.org, or switch with a version manager (nvm install 24)\n',
  );
  process.exit(2);
}

// V8's defaults size the heap for servers that trade memory for throughput: the young generation
// grows to 32 MiB a half and the old one runs 2-4x ahead of live data. A `process` run waits on the
// network; at 1,000 requests/s those defaults took peak RSS to 165-180 MiB for ~20 MiB of live
// objects. A young generation that stays at its starting size, an old one that grows 25% past
// live data, and no TurboFan (its compiler and zones cost ~6 MiB; Maglev's code is fast enough
// for a run that mostly waits) bring it to ~90 MiB at the same wall time (bench/pipeline.ts).
// Only for `process`: changing any V8 flag makes V8 refuse Node's compile cache (~70M more
// instructions at start, +30% for a short command), which pays for a long run, not for
// `--version`, `batches list` or `breaker status`.
if (commandOf(process.argv.slice(2)) === 'process') {
  for (const flag of ['--semi-space-growth-factor=1', '--heap-growing-percent=25', '--no-opt']) {
    setFlagsFromString(flag);
  }
}

/** The subcommand named on the command line, past the global options and their values. */
function commandOf(args) {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--home' || arg === '--config') i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

// Node's on-disk compile cache (in the OS temp dir, or NODE_COMPILE_CACHE) saves compiling the
// CLI and its dependencies again on every start; enabled before anything else is loaded.
module.enableCompileCache?.();
const { main } = await import('../dist/cli.js');
main(process.argv);
