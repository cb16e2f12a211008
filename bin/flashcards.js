#!/usr/bin/env node
import { enableCompileCache } from 'node:module';
import { setFlagsFromString } from 'node:v8';

// V8's defaults size the heap for servers that trade memory for throughput: the young generation
// grows to 32 MiB a half and the old one runs 2-4x ahead of live data. This CLI waits on the
// network; at 1,000 requests/s those defaults took peak RSS to 165-180 MiB for ~20 MiB of live
// objects. A young generation that stays at its starting size, an old one that grows 25% past
// live data, and no TurboFan (its compiler and zones cost ~6 MiB; Maglev's code is fast enough
// for a run that mostly waits) bring it to ~90 MiB at the same wall time (bench/pipeline.ts).
// These three are read at each decision, so setting them here, before any of the CLI runs,
// works; flags read once at start (heap limits, GC threads) cannot be set this way.
for (const flag of ['--semi-space-growth-factor=1', '--heap-growing-percent=25', '--no-opt']) {
  setFlagsFromString(flag);
}

// Node's on-disk compile cache (in the OS temp dir, or NODE_COMPILE_CACHE) saves compiling the
// CLI and its dependencies again on every start; enabled before anything else is loaded.
enableCompileCache?.();
const { main } = await import('../dist/cli.js');
main(process.argv);
