import { OutboxResults } from '../../batch/outbox.ts';
import { openRedisBatchStores } from '../../batch/redis-stores.ts';
import { redisSubmissionStore } from '../../batchapi/submissions.ts';
import { redisCacheAdmin } from '../../cache/redis-admin.ts';
import { redisResponseCache } from '../../cache/redis-store.ts';
import type { Clock } from '../../core/clock.ts';
import { errorMessage, FlashcardsError } from '../../core/errors.ts';
import { dataPaths } from '../../core/home.ts';
import { redisLimiterAdmin } from '../../limiter/redis-admin.ts';
import { redisLimiterStore } from '../../limiter/redis-store.ts';
import { redisBreakerStore } from '../../resilience/breaker-store-redis.ts';
import { ProbedHealth, storeUnavailable } from '../health.ts';
import type { SharedState } from '../state.ts';
import { connectRedis, parseRedisUrl, type RedisConnection, redactRedisUrl } from './connection.ts';
import { checkEpoch, forgetEpoch, rememberEpoch, storeEpoch } from './epoch.ts';
import { guarded } from './guard.ts';

export interface OpenRedisStateOptions {
  url: string;
  home: string;
  clock: Clock;
  /** A run (true) checks and remembers the store's epoch; a command that only looks does not. */
  create: boolean;
  commandTimeoutMs: number;
  password?: string | undefined;
}

/**
 * Eviction policies that may drop a key without an expiry: a lease, a result or a breaker could
 * vanish under memory pressure. `noeviction` and the `volatile-*` policies (which evict only keys
 * with an expiry: cached answers) are safe.
 */
const UNSAFE_EVICTION = /^allkeys-/;

/** How often a run checks the store's epoch while the store answers. */
const EPOCH_CHECK_MS = 10_000;

/** The masters of a cluster, or the one server. */
function servers(conn: RedisConnection): RedisConnection[] {
  return 'nodes' in conn && typeof conn.nodes === 'function' ? conn.nodes('master') : [conn];
}

/** The server's `INFO <section>` as name -> value. */
export async function info(conn: RedisConnection, section: string): Promise<Record<string, string>> {
  const text = await conn.info(section);
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) out[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return out;
}

/** Refuses a store that may evict state when full (checked on every master of a cluster). */
async function checkEviction(conn: RedisConnection, where: string): Promise<void> {
  for (const server of servers(conn)) {
    const policy = (await info(server, 'memory'))['maxmemory_policy'] ?? 'noeviction';
    if (UNSAFE_EVICTION.test(policy)) {
      throw new FlashcardsError(
        'config',
        `the store at ${where} evicts any key when full (maxmemory-policy ${policy}): leases, results and breakers could vanish`,
        {
          hint: 'set maxmemory-policy noeviction, or volatile-lru to let it drop only cached answers (they expire); see "Several machines" in the README',
        },
      );
    }
  }
}

/**
 * How far the server's TIME is ahead of this host's clock, from the sample with the shortest
 * round trip of three: the limiter's and breaker's arithmetic then runs in the store's time.
 */
async function serverOffsetMs(conn: RedisConnection, clock: Clock): Promise<number> {
  let best: { rtt: number; offset: number } | undefined;
  for (let i = 0; i < 3; i++) {
    const sent = clock.now();
    const [seconds, micros] = await conn.time();
    const received = clock.now();
    const server = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const sample = { rtt: received - sent, offset: server - (sent + received) / 2 };
    if (!best || sample.rtt < best.rtt) best = sample;
  }
  return Math.round(best?.offset ?? 0);
}

function shiftedClock(clock: Clock, offsetMs: number): Clock {
  return {
    now: () => clock.now() + offsetMs,
    sleep: (ms, signal) => clock.sleep(ms, signal),
    timer: (ms, fn, options) => clock.timer(ms, fn, options),
  };
}

/**
 * The shared state in Redis: batches, leases and results, the limiter and the breakers, each
 * behind the same interface as on state.db, each call guarded (guard.ts) so that a store that
 * stops answering is one kind of failure the run knows how to wait out.
 */
export async function openRedisState(o: OpenRedisStateOptions): Promise<SharedState> {
  const { prefix } = parseRedisUrl(o.url);
  const where = redactRedisUrl(o.url);
  const conn = await connectRedis({ url: o.url, commandTimeoutMs: o.commandTimeoutMs, password: o.password });
  let closing = false;
  try {
    await checkEviction(conn, where);
    const epoch = o.create ? await storeEpoch(conn, prefix) : undefined;
    const storeId = `${where}#${prefix}`;
    if (epoch !== undefined) rememberEpoch(o.home, storeId, epoch, where, o.clock.now());
    const clock = shiftedClock(o.clock, await serverOffsetMs(conn, o.clock));
    const health = new ProbedHealth({
      where,
      clock: o.clock,
      probe: async () => {
        // A write, not a PING: a replica (the old primary after a failover) answers reads, and
        // calling it back would only bring the next write's READONLY.
        // (A command that only looks writes nothing: it pings.)
        if (epoch === undefined) {
          await conn.ping();
          return;
        }
        await conn.set(`${prefix}probe`, String(o.clock.now()), 'PX', 60_000);
        try {
          await checkEpoch(conn, prefix, epoch, where);
        } catch (e) {
          forgetEpoch(o.home, storeId);
          throw e;
        }
      },
    });
    // A dropped connection may come back to a server that restarted empty: nothing goes through
    // until the probe has seen the epoch again.
    conn.on('close', () => {
      if (!closing) health.markAway();
    });
    // A store emptied under a connection that stayed up (FLUSHALL, a restart behind a proxy) is
    // noticed within EPOCH_CHECK_MS, not only after an outage: a run must not go on paying.
    const stopEpochChecks =
      epoch === undefined
        ? () => {}
        : o.clock.timer(
            EPOCH_CHECK_MS,
            () => {
              if (health.away || health.lost) return;
              checkEpoch(conn, prefix, epoch, where).catch((e: unknown) => {
                if (e instanceof FlashcardsError && e.kind === 'store_lost') {
                  forgetEpoch(o.home, storeId);
                  health.markLost(e);
                }
                // Anything else (a timeout) is for the calls themselves to find.
              });
            },
            { repeat: true },
          );
    const guard = <T extends object>(store: T): T => guarded(store, { health });
    const batches = openRedisBatchStores(conn, { prefix });
    // A run keeps the outcomes the store cannot take in the outbox; one that only looks has none.
    const outbox =
      epoch === undefined
        ? undefined
        : new OutboxResults(guard(batches.results), {
            file: dataPaths(o.home).outboxDb,
            storeId,
            epoch,
            health,
          });
    // What the last run kept goes first, before this one claims anything.
    await outbox?.flush();
    const breakers = redisBreakerStore(conn, { prefix });
    return {
      kind: 'redis',
      where,
      batches: {
        catalog: guard(batches.catalog),
        queue: guard(batches.queue),
        results: outbox ?? guard(batches.results),
      },
      limiter: {
        store: guard(redisLimiterStore(conn, { prefix })),
        admin: guard(redisLimiterAdmin(conn, { prefix })),
      },
      breaker: { store: guard(breakers) },
      batchApi: guard(redisSubmissionStore(conn, { prefix })),
      cache: {
        open: (settings, deps) =>
          guard(redisResponseCache(conn, { settings, random: deps.random, prefix, location: where })),
        admin: () => guard(redisCacheAdmin(conn, { prefix, location: where })),
      },
      clock,
      health,
      epoch,
      close: async () => {
        closing = true;
        stopEpochChecks();
        health.close();
        try {
          if (!health.away && !health.lost) await (outbox ?? batches.results).flush();
        } finally {
          outbox?.close();
          await conn.quit().catch(() => conn.disconnect());
        }
      },
    };
  } catch (e) {
    closing = true;
    conn.disconnect();
    // The checks while opening use the bare connection: a timeout or a replica there is the
    // store not answering as a run needs it (exit 3), not a bug.
    if (e instanceof FlashcardsError) throw e;
    throw storeUnavailable(where, errorMessage(e), e);
  }
}
