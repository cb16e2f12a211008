import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FlashcardsError } from '../../core/errors.ts';
import type { RedisConnection } from './connection.ts';

/**
 * A Redis that restarts without its data (no persistence, a new container, FLUSHALL) forgets
 * every batch, lease, rate budget and cached answer, and a run that went on would pay again for
 * work already paid for. The store's epoch tells: a random id written once (SET NX) when the
 * store is first used, read by every run at start and after every reconnect. A missing or
 * different epoch means the state is gone; the run stops before sending anything.
 *
 * Each machine also remembers the epoch it last saw per store (stores.json in the data
 * directory), so a store emptied between two runs is noticed by the next run too, once: that run
 * stops with the same message, and the run after it starts over on the empty store.
 */

export function epochKey(prefix: string): string {
  return `${prefix}epoch`;
}

/** The store's epoch, created if this is the store's first use. */
export async function storeEpoch(conn: RedisConnection, prefix: string): Promise<string> {
  const key = epochKey(prefix);
  await conn.set(key, randomUUID(), 'NX');
  const epoch = await conn.get(key);
  if (epoch === null) throw new FlashcardsError('internal', `the store lost ${key} right after writing it`);
  return epoch;
}

export function stateLost(where: string, detail: string): FlashcardsError {
  return new FlashcardsError(
    'store_lost',
    `the store at ${where} lost its state (${detail}): its batches, leases, rate limits and cached answers are gone`,
    {
      hint: 'nothing more was sent. Give Redis persistence (appendonly yes) so a restart keeps them; run the command again to start over on the empty store',
    },
  );
}

/** Checks the epoch is still the one a run started with: the probe after an outage or a reconnect. */
export async function checkEpoch(
  conn: RedisConnection,
  prefix: string,
  expected: string,
  where: string,
): Promise<void> {
  const now = await conn.get(epochKey(prefix));
  if (now !== expected) {
    throw stateLost(
      where,
      now === null ? 'it restarted empty' : 'its epoch changed: it was emptied and used again',
    );
  }
}

type Remembered = Record<string, { epoch: string; seenAt: string }>;

function readRemembered(file: string): Remembered {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return parsed !== null && typeof parsed === 'object' ? (parsed as Remembered) : {};
  } catch {
    // Missing or unreadable: nothing remembered, as on a machine's first run.
    return {};
  }
}

/**
 * Compares the store's epoch with the one this machine saw last (keyed by the URL without its
 * password, and the prefix), and remembers the current one. Throws the "lost its state" error
 * when they differ: the caller has sent nothing yet.
 */
export function rememberEpoch(
  home: string,
  storeId: string,
  epoch: string,
  where: string,
  nowMs: number,
): void {
  const file = join(home, 'stores.json');
  const remembered = readRemembered(file);
  const before = remembered[storeId]?.epoch;
  remembered[storeId] = { epoch, seenAt: new Date(nowMs).toISOString() };
  writeRemembered(home, remembered);
  if (before !== undefined && before !== epoch) {
    throw stateLost(where, 'it was emptied since this machine last used it');
  }
}

/**
 * Forgets the store's epoch: a run that found the store lost mid-run has told the user, and the
 * next run starts over on the empty store instead of stopping a second time.
 */
export function forgetEpoch(home: string, storeId: string): void {
  const remembered = readRemembered(join(home, 'stores.json'));
  if (!(storeId in remembered)) return;
  delete remembered[storeId];
  writeRemembered(home, remembered);
}

function writeRemembered(home: string, remembered: Remembered): void {
  const file = join(home, 'stores.json');
  mkdirSync(home, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(remembered, null, 2)}\n`);
  renameSync(tmp, file);
}
