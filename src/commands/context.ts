import type { Clock } from '../core/clock.ts';

/** Where a command writes: stdout for machine output (--json) and results, stderr for people. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** stderr is a terminal: spinners and prompts are allowed. */
  isTTY: boolean;
  /** Colour allowed (a TTY and no NO_COLOR). */
  color: boolean;
  /** Width of the terminal on stderr, when it is one: tables wrap to fit it. */
  columns?: number | undefined;
}

/** The environment every command handler receives, filled in once at the CLI edge. */
export interface CommandContext {
  /** Data directory (state.db, cache.db, logs/). */
  home: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  io: Io;
  clock: Clock;
  verbose: boolean;
  /** Path given with the global --config flag, if any. */
  configFile?: string | undefined;
}

export function processIo(): Io {
  const isTTY = Boolean(process.stderr.isTTY);
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    isTTY,
    color: isTTY && !process.env['NO_COLOR'] && process.env['TERM'] !== 'dumb',
    columns: isTTY ? process.stderr.columns : undefined,
  };
}

/** An Io that records everything, for tests. */
export function memoryIo(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (t) => void stdout.push(t),
    err: (t) => void stderr.push(t),
    isTTY: false,
    color: false,
  };
}
