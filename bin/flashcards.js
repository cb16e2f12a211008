#!/usr/bin/env node
import { enableCompileCache } from 'node:module';

// Node's on-disk compile cache (in the OS temp dir, or NODE_COMPILE_CACHE) saves compiling the
// CLI and its dependencies again on every start; enabled before anything else is loaded.
enableCompileCache?.();
const { main } = await import('../dist/cli.js');
main(process.argv);
