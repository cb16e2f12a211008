import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The data directory: --home, then FLASHCARDS_HOME, then $XDG_DATA_HOME/flashcards. */
export function resolveHome(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return resolve(flag);
  if (env['FLASHCARDS_HOME']) return resolve(env['FLASHCARDS_HOME']);
  const xdg = env['XDG_DATA_HOME'] || join(homedir(), '.local', 'share');
  return join(xdg, 'flashcards');
}

export interface DataPaths {
  home: string;
  stateDb: string;
  cacheDb: string;
  /** Outcomes kept while a shared store (Redis) did not answer; see batch/outbox.ts. */
  outboxDb: string;
  logs: string;
}

export function dataPaths(home: string): DataPaths {
  return {
    home,
    stateDb: join(home, 'state.db'),
    cacheDb: join(home, 'cache.db'),
    outboxDb: join(home, 'outbox.db'),
    logs: join(home, 'logs'),
  };
}
