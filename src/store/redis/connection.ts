import type { Cluster, Redis } from 'ioredis';
import { FlashcardsError } from '../../core/errors.ts';

/** A connection to the shared store: one Redis server, or a Redis Cluster. */
export type RedisConnection = Redis | Cluster;

export interface RedisConnectOptions {
  /** redis://, rediss:// (TLS), redis+unix:// or unix:// (a socket path); redis-cluster:// for a cluster. */
  url: string;
  /** A command without a reply after this long fails: a frozen server must not hang a run. */
  commandTimeoutMs: number;
  /** Used when the URL has no password (FLASHCARDS_REDIS_PASSWORD); never printed. */
  password?: string | undefined;
}

/** How a URL names the store in messages: everything but a password. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    if (u.searchParams.has('password')) u.searchParams.set('password', '***');
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

interface Parsed {
  cluster: boolean;
  tls: boolean;
  host?: string;
  port?: number;
  path?: string;
  db: number;
  username?: string;
  password?: string;
  /** Starts every key (`?prefix=team-a:`; default `fc:`): deployments sharing one Redis keep apart. */
  prefix: string;
}

/** The parts of a store URL, or a usage error naming what is wrong with it. */
export function parseRedisUrl(url: string): Parsed {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw badUrl(url, 'not a URL');
  }
  const scheme = u.protocol.replace(/:$/, '');
  const auth = {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
  };
  const dbText = u.pathname.replace(/^\//, '') || u.searchParams.get('db') || '0';
  const prefix = u.searchParams.get('prefix') ?? 'fc:';
  // A brace in the prefix would become every key's hash tag: one slot for everything on a cluster.
  if (prefix === '' || /[{}]/.test(prefix))
    throw badUrl(url, `prefix must be non-empty, without { or }, got "${prefix}"`);
  if (scheme === 'redis+unix' || scheme === 'unix') {
    const path = decodeURIComponent(u.pathname);
    if (!path) throw badUrl(url, 'no socket path');
    const db = Number(u.searchParams.get('db') ?? '0');
    if (!Number.isInteger(db) || db < 0)
      throw badUrl(url, `database must be a number, got "${u.searchParams.get('db')}"`);
    return { cluster: false, tls: false, path, db, prefix, ...auth };
  }
  if (
    scheme !== 'redis' &&
    scheme !== 'rediss' &&
    scheme !== 'redis-cluster' &&
    scheme !== 'rediss-cluster'
  ) {
    throw badUrl(url, `unknown scheme "${scheme}:"`);
  }
  const db = Number(dbText);
  if (!Number.isInteger(db) || db < 0) throw badUrl(url, `database must be a number, got "${dbText}"`);
  return {
    cluster: scheme.endsWith('-cluster'),
    tls: scheme.startsWith('rediss'),
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db,
    prefix,
    ...auth,
  };
}

function badUrl(url: string, why: string): FlashcardsError {
  return new FlashcardsError('config', `--store ${redactRedisUrl(url)}: ${why}`, {
    hint: 'use redis://host:6379/0, rediss://host:6380/0 (TLS), redis-cluster://host:7000 or unix:///path/to/redis.sock',
  });
}

/** Reconnects after 50 ms, then up to 2 s apart, with jitter so many hosts do not come back together. */
function reconnectDelay(attempt: number): number {
  const ceiling = Math.min(2000, 50 * 2 ** Math.min(attempt, 10));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/**
 * Opens the shared store. ioredis is loaded only here (a run without --store never loads it).
 * Commands fail after `commandTimeoutMs` instead of queueing while the server is away, and the
 * client reconnects on its own with jittered backoff. Throws a FlashcardsError (exit 3) naming
 * the URL, password hidden, when the store does not answer at start.
 */
export async function connectRedis(o: RedisConnectOptions): Promise<RedisConnection> {
  const parsed = parseRedisUrl(o.url);
  const { Redis, Cluster } = await import('ioredis');
  const password = parsed.password ?? o.password;
  const common = {
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: o.commandTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    lazyConnect: true,
    retryStrategy: reconnectDelay,
    // After a failover the old primary answers writes with READONLY over a connection that stays
    // up: reconnect (a DNS or proxy endpoint then leads to the new primary) and send the command again.
    reconnectOnError: (e: Error) => (e.message.startsWith('READONLY') ? 2 : false),
    ...(parsed.username ? { username: parsed.username } : {}),
    ...(password ? { password } : {}),
    ...(parsed.tls ? { tls: {} } : {}),
  };
  const connection: RedisConnection = parsed.cluster
    ? new Cluster([{ host: parsed.host ?? '127.0.0.1', port: parsed.port ?? 6379 }], {
        redisOptions: common,
        enableOfflineQueue: false,
        clusterRetryStrategy: reconnectDelay,
        lazyConnect: true,
      })
    : new Redis({
        ...common,
        db: parsed.db,
        ...(parsed.path ? { path: parsed.path } : { host: parsed.host, port: parsed.port }),
      });
  // Errors surface on the commands that meet them; the client's own error events are expected
  // while it reconnects and must not crash the process.
  connection.on('error', () => {});
  try {
    await connection.connect();
    await connection.ping();
  } catch (e) {
    connection.disconnect();
    const reason = e instanceof Error ? e.message : String(e);
    throw new FlashcardsError('database', `cannot reach the store at ${redactRedisUrl(o.url)} (${reason})`, {
      exitCode: 3,
      hint: 'is the Redis server running and reachable from here? check the URL, the password (FLASHCARDS_REDIS_PASSWORD) and the network',
      cause: e,
    });
  }
  return connection;
}
