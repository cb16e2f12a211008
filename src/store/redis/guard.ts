import { FlashcardsError } from '../../core/errors.ts';
import { isStoreUnavailable, type ProbedHealth, storeUnavailable } from '../health.ts';

/**
 * Every call into a Redis-backed store goes through here, so a run sees one kind of failure for
 * "the store does not answer" whichever store met it: a `store_unavailable` error (the health is
 * marked away and probing starts), or the `store_lost` error once the store answered without its
 * state. While the store is away, calls fail at once instead of each waiting out the command
 * timeout: the callers wait on the health, not on the socket.
 */

/** Network-level failures of ioredis: the server did not answer, or the connection is gone. */
const UNREACHABLE =
  /command timed out|connection is closed|stream isn't writeable|max retries per request|failed to refresh slots cache|none of startup nodes|socket hang up|socket closed|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN/i;
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** Replies of a server that is there but cannot serve yet: loading, failing over, busy with a script. */
const NOT_READY = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY)\b/;

/** What a failed call means: the store is away, it is full, or the error is the caller's own. */
export function classifyRedisError(e: unknown): 'away' | 'full' | 'other' {
  if (e instanceof FlashcardsError || !(e instanceof Error)) return 'other';
  if (e.name === 'ReplyError') {
    if (NOT_READY.test(e.message)) return 'away';
    return /^OOM\b/.test(e.message) ? 'full' : 'other';
  }
  const code = (e as NodeJS.ErrnoException).code;
  if (code !== undefined && UNREACHABLE_CODES.has(code)) return 'away';
  return e.name === 'MaxRetriesPerRequestError' || UNREACHABLE.test(e.message) ? 'away' : 'other';
}

/** Methods that return an async iterable rather than a promise (read page by page). */
const ITERABLE_METHODS = new Set(['finishedItems', 'unfinishedItems']);

export interface GuardOptions {
  health: ProbedHealth;
}

function storeFull(where: string, cause: unknown): FlashcardsError {
  return new FlashcardsError('database', `the store at ${where} is out of memory (maxmemory reached)`, {
    exitCode: 3,
    hint: 'raise maxmemory, or let it evict only expiring keys (maxmemory-policy volatile-lru): see "Several machines" in the README',
    cause,
  });
}

/** The error a call ends with, and the health told of it. */
function mapError(e: unknown, o: GuardOptions): unknown {
  if (isStoreUnavailable(e)) {
    // Already said by the store itself (the cache names what failed): the health must know too.
    o.health.markAway();
    return e;
  }
  switch (classifyRedisError(e)) {
    case 'away':
      o.health.markAway();
      return storeUnavailable(o.health.where, e instanceof Error ? e.message : String(e), e);
    case 'full':
      return storeFull(o.health.where, e);
    default:
      return e;
  }
}

async function* failing<T>(error: unknown): AsyncGenerator<T> {
  yield* [];
  throw error;
}

async function* guardedIterable<T>(source: AsyncIterable<T>, o: GuardOptions): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (e) {
    throw mapError(e, o);
  }
}

/** The error a call made now fails with before it is sent, if any. */
function refusal(o: GuardOptions): FlashcardsError | undefined {
  if (o.health.lost) return o.health.lost;
  if (o.health.away) return storeUnavailable(o.health.where, 'it did not answer lately; waiting for it');
  return undefined;
}

/** `store` with every method guarded as described above. */
export function guarded<T extends object>(store: T, o: GuardOptions): T {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      const name = String(property);
      return (...args: unknown[]): unknown => {
        // Closing touches nothing shared (the connection outlives the store objects): never refused.
        const refused = name === 'close' ? undefined : refusal(o);
        if (ITERABLE_METHODS.has(name)) {
          if (refused) return failing(refused);
          return guardedIterable(value.apply(target, args) as AsyncIterable<unknown>, o);
        }
        if (refused) return Promise.reject(refused);
        try {
          const result: unknown = value.apply(target, args);
          return result instanceof Promise
            ? result.catch((e: unknown) => Promise.reject(mapError(e, o)))
            : result;
        } catch (e) {
          throw mapError(e, o);
        }
      };
    },
  });
}
