import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Resolves once `cond()` holds, for conditions no event announces (a file descriptor closed by the
 * thread pool, a row another process commits). Polling only paces the checks: there is no deadline,
 * so a busy machine makes the test slower, never failed; a condition that never comes true is ended
 * by the test runner's --test-timeout.
 */
export async function eventually(cond: () => boolean, pollMs = 5): Promise<void> {
  while (!cond()) await sleep(pollMs);
}
