import { readFileSync } from 'node:fs';

/**
 * Whether a process with this pid runs on this host (EPERM: it does, under another user). A
 * zombie does not count: a process killed with -9 stays one until its parent reaps it, and an
 * orphan's new parent may take its time.
 */
export function isProcessRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/** Linux only (/proc/<pid>/stat: "pid (name) state ..."); false wherever that cannot be read. */
function isZombie(pid: number): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}
