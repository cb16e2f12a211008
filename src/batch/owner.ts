import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { isProcessRunning } from '../core/process-alive.ts';

/** Identifies one running process: host, pid and a nonce (pids are reused). */
export function newOwnerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/**
 * Whether the process behind an owner id may still be running. On this host we can ask the OS, so
 * a run killed with -9 gives its leases up at once; on another host only the lease expiry tells.
 */
export function isOwnerAlive(owner: string): boolean {
  const [host, pidText] = owner.split(':');
  const pid = Number(pidText);
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0) return true;
  return pid === process.pid || isProcessRunning(pid);
}

export function ownerPid(owner: string): string {
  return owner.split(':')[1] ?? '?';
}
