import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Deletes old run logs (`*.jsonl` in the logs directory): those last written more than `keepMs`
 * ago (0: no age limit), and all but the newest `keepFiles`. A cron run every 30 minutes writes
 * 48 a day; without this the directory grows forever. A file that cannot be removed is left for
 * the next run: pruning never stops a run. Returns how many were removed.
 */
export function pruneLogs(dir: string, o: { keepMs: number; keepFiles: number; nowMs: number }): number {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.jsonl'));
  } catch {
    return 0;
  }
  const logs = names
    .map((name) => {
      try {
        return { path: join(dir, name), mtimeMs: statSync(join(dir, name)).mtimeMs };
      } catch {
        return undefined;
      }
    })
    .filter((l) => l !== undefined)
    .sort((a, b) => b.mtimeMs - a.mtimeMs);
  let removed = 0;
  logs.forEach((log, i) => {
    const tooOld = o.keepMs > 0 && o.nowMs - log.mtimeMs > o.keepMs;
    if (!tooOld && i < o.keepFiles) return;
    try {
      rmSync(log.path, { force: true });
      removed++;
    } catch {
      // see above
    }
  });
  return removed;
}
