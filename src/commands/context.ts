import type { Clock } from '../core/clock.ts';

/**
 * Where a command writes: its result on stdout (a table for people, or --json), everything about
 * the doing (progress, warnings, hints, errors, prompts) on stderr. Each stream is a terminal or
 * not on its own (`flashcards batches list | grep done`), so each has its own colour and width.
 */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** stderr is a terminal: spinners and prompts are allowed. */
  isTTY: boolean;
  /** Colour allowed on stderr (a TTY and no NO_COLOR). */
  color: boolean;
  /** Width of the terminal on stderr, when it is one: the progress line fits it. */
  columns?: number | undefined;
  /** Colour allowed on stdout (a TTY and no NO_COLOR): never in a pipe or a file. */
  outColor: boolean;
  /** Width of the terminal on stdout, when it is one: result tables wrap to fit it; piped, they do not wrap. */
  outColumns?: number | undefined;
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
  /** The global --store URL, if given (FLASHCARDS_STORE and the config's `store` are read later). */
  store?: string | undefined;
}

/** Colour on a stream: a terminal, and neither NO_COLOR nor TERM=dumb. */
export function colorAllowed(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && !env['NO_COLOR'] && env['TERM'] !== 'dumb';
}

export function processIo(): Io {
  const isTTY = Boolean(process.stderr.isTTY);
  const outTTY = Boolean(process.stdout.isTTY);
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    isTTY,
    color: colorAllowed(process.stderr),
    columns: isTTY ? process.stderr.columns : undefined,
    outColor: colorAllowed(process.stdout),
    outColumns: outTTY ? process.stdout.columns : undefined,
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
    outColor: false,
  };
}
