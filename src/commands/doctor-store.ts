import { errorMessage, isFlashcardsError } from '../core/errors.ts';
import { DEFAULT_COMMAND_TIMEOUT_MS } from '../store/state.ts';
import type { CheckResult } from './doctor.ts';

/**
 * doctor's checks of a shared store (--store, FLASHCARDS_STORE or the config's `store`): that it
 * answers, its version, and the two settings a shared state depends on: an eviction policy that
 * never drops a key without an expiry, and persistence, without which a restart loses every batch
 * (and the next run stops with exit 5). Read-only: nothing is written to the store.
 */

/** The oldest Redis the scripts are known to run on (the tests run 7.0). */
const MIN_VERSION: readonly [number, number] = [6, 2];

export async function checkStore(url: string, password: string | undefined): Promise<CheckResult[]> {
  const [{ connectRedis, redactRedisUrl }, { info }] = await Promise.all([
    import('../store/redis/connection.ts'),
    import('../store/redis/state.ts'),
  ]);
  const where = redactRedisUrl(url);
  let conn: Awaited<ReturnType<typeof connectRedis>>;
  try {
    conn = await connectRedis({ url, commandTimeoutMs: DEFAULT_COMMAND_TIMEOUT_MS, password });
  } catch (e) {
    return [
      {
        name: 'store',
        status: 'fail',
        detail: errorMessage(e),
        fix: (isFlashcardsError(e) ? e.hint : undefined) ?? 'check the store URL',
      },
    ];
  }
  try {
    const started = performance.now();
    await conn.ping();
    const roundTripMs = performance.now() - started;
    const server = await info(conn, 'server');
    const memory = await info(conn, 'memory');
    const persistence = await info(conn, 'persistence');
    return [
      versionCheck(where, server['redis_version'] ?? '?', roundTripMs),
      evictionCheck(memory['maxmemory_policy'] ?? 'noeviction', Number(memory['maxmemory'] ?? 0)),
      persistenceCheck(persistence, await saveRules(conn)),
    ];
  } catch (e) {
    return [{ name: 'store', status: 'fail', detail: `${where}: ${errorMessage(e)}` }];
  } finally {
    conn.disconnect();
  }
}

function versionCheck(where: string, version: string, roundTripMs: number): CheckResult {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const old = major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1]);
  return {
    name: 'store',
    status: old ? 'warn' : 'pass',
    detail: `Redis ${version} at ${where} (PING answered in ${roundTripMs < 1 ? roundTripMs.toFixed(2) : Math.round(roundTripMs)} ms)`,
    fix: old ? `Redis ${MIN_VERSION.join('.')} or newer is supported` : undefined,
  };
}

export function evictionCheck(policy: string, maxmemory: number): CheckResult {
  const limit = maxmemory > 0 ? `maxmemory ${Math.round(maxmemory / 2 ** 20)} MiB` : 'no maxmemory';
  if (/^allkeys-/.test(policy)) {
    return {
      name: 'store eviction',
      status: 'fail',
      detail: `maxmemory-policy ${policy} (${limit}): leases, results and breakers could be evicted`,
      fix: 'set maxmemory-policy noeviction, or volatile-lru to let it drop only cached answers; runs refuse this store',
    };
  }
  return { name: 'store eviction', status: 'pass', detail: `maxmemory-policy ${policy} (${limit})` };
}

export function persistenceCheck(p: Record<string, string>, save: string | undefined): CheckResult {
  const aof = p['aof_enabled'] === '1';
  const rdb = save !== undefined && save.trim() !== '';
  if (aof || rdb) {
    const how = [aof ? 'append-only file' : '', rdb ? `snapshots (save ${save})` : ''].filter(Boolean);
    return { name: 'store persistence', status: 'pass', detail: how.join(' and ') };
  }
  return {
    name: 'store persistence',
    status: 'warn',
    detail:
      save === undefined
        ? 'append-only file off; snapshot rules not readable (CONFIG GET refused)'
        : 'none: a restart of Redis loses every batch, lease and cached answer',
    fix: 'set appendonly yes: a run that finds the store emptied stops with exit 5 rather than pay again',
  };
}

/** The server's snapshot rules (CONFIG GET save); undefined where CONFIG is refused (managed Redis). */
async function saveRules(conn: {
  config(op: 'GET', name: string): Promise<unknown>;
}): Promise<string | undefined> {
  try {
    const reply = await conn.config('GET', 'save');
    return Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
  } catch {
    return undefined;
  }
}
