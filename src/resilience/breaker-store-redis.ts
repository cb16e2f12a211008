import { createHash } from 'node:crypto';
import type { Clock } from '../core/clock.ts';
import { FlashcardsError, usageError } from '../core/errors.ts';
import type { RedisConnection } from '../store/redis/connection.ts';
import { type BreakerState, bucketLength } from './breaker-machine.ts';
import { type SnapshotRow, toColumns, toSnapshot, unstoredSnapshot } from './breaker-row.ts';
import { breakerScripts } from './breaker-scripts.ts';
import {
  type BreakerAdmin,
  type BreakerHistoryEntry,
  type BreakerSnapshot,
  type BreakerStore,
  keptTransitions,
  type RecordResult,
  type Tally,
  type TransitChange,
  type TransitResult,
} from './breaker-store.ts';

/**
 * The breaker store on Redis (or Redis Cluster), for processes on several hosts sharing one breaker.
 * Same contract as the SQLite store (test/conformance/breaker-store.ts proves both): each method is
 * one Lua script (EVALSHA, EVAL when the server lost it) or one plain command, and the scripts read
 * the time with Redis `TIME`, so hosts whose clocks differ agree on windows, breaks and leases.
 *
 * Keys (`<p>` the prefix, `<h>` a hash of the breaker's key, which holds `|` and URLs; the readable key
 * is kept inside the state hash). One breaker's keys share the hash tag `{cb:<h>}`, so they live in
 * one Cluster slot and every script touches one slot only:
 *   <p>{cb:<h>}:state    hash: the columns of state.db's `breakers` row (breaker-row.ts)
 *   <p>{cb:<h>}:window   hash: ring slot -> "start:calls:failures", like `breaker_buckets`
 *   <p>{cb:<h>}:history  sorted set: score = its own sequence (insertion order, like the SQLite id),
 *                        member = "seq|at|from|to|cause"; capped at `keptTransitions`
 *   <p>{cb}:keys         set: every breaker key ever stored here, for `list` and `history`
 *
 * Why a set of keys rather than SCAN: the namespace also holds the response cache (possibly millions of
 * keys) and SCAN walks all of them, on every node of a cluster. The set lives in another slot than the
 * breakers, so no script can update it with a breaker: it is written first (SADD, idempotent, once per
 * key and store instance) and never shrinks (`remove` keeps a breaker's history, which `history` still
 * finds through it), so a member can never be missing for a stored breaker, and one whose breaker is
 * gone is skipped. It grows with the distinct provider keys ever used: a few dozen.
 *
 * History is kept per breaker (a script cannot write one global list in another slot); `history(n)`
 * merges them and returns at most `keptTransitions`, which is exactly the newest 500 that SQLite's one
 * global table keeps: each of those is among the newest 500 of its own breaker.
 */
export class RedisBreakerStore implements BreakerStore, BreakerAdmin {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #clock: Clock | undefined;
  readonly #scripts: ReturnType<typeof breakerScripts>;
  /** Keys this instance has put in the set of keys (it never shrinks, so once is enough). */
  readonly #registered = new Set<string>();

  constructor(redis: RedisConnection, options: RedisBreakerStoreOptions = {}) {
    const prefix = options.prefix ?? 'fc:';
    // A brace in the prefix would become every key's hash tag: all breakers in one slot.
    if (/[{}]/.test(prefix))
      throw usageError(`breaker store prefix must not contain { or }, got "${prefix}"`);
    this.#redis = redis;
    this.#prefix = prefix;
    this.#clock = options.clock;
    this.#scripts = breakerScripts(redis);
  }

  async ensure(key: string): Promise<void> {
    await this.#register(key);
    await this.#scripts.ensure([this.#stateKey(key)], [this.#now(), key]);
  }

  async read(key: string, windowMs: number): Promise<BreakerSnapshot> {
    const reply = await this.#scripts.read(this.#keys(key).slice(0, 2), [this.#now(), windowMs]);
    return toSnapshotOrUnstored(key, reply);
  }

  async record(key: string, tally: Tally, windowMs: number): Promise<RecordResult> {
    await this.#register(key);
    const bucketMs = bucketLength(windowMs);
    const reply = asList(
      await this.#scripts.record(this.#keys(key).slice(0, 2), [
        this.#now(),
        windowMs,
        key,
        bucketMs,
        Math.ceil(windowMs / bucketMs),
        tally.calls,
        tally.failures,
        tally.error ? '1' : '0',
        tally.error?.kind ?? '',
        tally.error?.message ?? '',
      ]),
    );
    return { counted: reply[0] === 1, snapshot: toSnapshotOrUnstored(key, reply[1]) };
  }

  async transit(key: string, version: number, change: TransitChange): Promise<TransitResult> {
    await this.#register(key);
    // Every value as a string, so Lua never formats a number (a 13-digit time must stay exact).
    const columns = Object.fromEntries(
      Object.entries(toColumns(change.next)).map(([k, v]) => [k, v === null ? null : String(v)]),
    );
    const reply = asList(
      await this.#scripts.transit(this.#keys(key), [
        this.#now(),
        key,
        version,
        JSON.stringify(columns),
        change.resetWindow ? '1' : '0',
        change.note ? '1' : '0',
        change.note?.from ?? '',
        change.note?.cause ?? '',
        keptTransitions,
      ]),
    );
    return reply[0] === 1 ? { ok: true, at: asInt(reply[1]) } : { ok: false };
  }

  async list(windowMs: number): Promise<BreakerSnapshot[]> {
    const keys = await this.#redis.smembers(this.#registryKey());
    const snapshots = await Promise.all(
      keys.map(async (key) => {
        const reply = asList(await this.#scripts.read(this.#keys(key).slice(0, 2), [this.#now(), windowMs]));
        return asList(reply[1]).length === 0 ? undefined : toSnapshotOrUnstored(key, reply);
      }),
    );
    return snapshots.filter((s): s is BreakerSnapshot => s !== undefined);
  }

  async history(limit: number): Promise<BreakerHistoryEntry[]> {
    const n = Math.min(Math.max(0, Math.floor(limit)), keptTransitions);
    if (n === 0) return [];
    const keys = await this.#redis.smembers(this.#registryKey());
    const perKey = await Promise.all(
      keys.map(async (key) => {
        const members = await this.#redis.zrevrange(this.#historyKey(key), 0, n - 1);
        return members.map((m) => parseHistory(key, m));
      }),
    );
    // Newest first across breakers by time; one breaker's entries of the same millisecond by sequence.
    return perKey
      .flat()
      .sort((x, y) => y.at - x.at || x.key.localeCompare(y.key) || y.seq - x.seq)
      .slice(0, n)
      .map(({ seq: _, ...entry }) => entry);
  }

  async remove(key: string): Promise<boolean> {
    return (await this.#scripts.remove(this.#keys(key).slice(0, 2), [])) === 1;
  }

  async #register(key: string): Promise<void> {
    if (this.#registered.has(key)) return;
    await this.#redis.sadd(this.#registryKey(), key);
    this.#registered.add(key);
  }

  /** The test clock's time, or '' for the scripts to read Redis TIME. */
  #now(): string {
    return this.#clock ? String(this.#clock.now()) : '';
  }

  #registryKey(): string {
    return `${this.#prefix}{cb}:keys`;
  }

  #stateKey(key: string): string {
    return `${this.#tag(key)}:state`;
  }

  #historyKey(key: string): string {
    return `${this.#tag(key)}:history`;
  }

  /** state, window, history: the order the scripts take them in. */
  #keys(key: string): string[] {
    const tag = this.#tag(key);
    return [`${tag}:state`, `${tag}:window`, `${tag}:history`];
  }

  #tag(key: string): string {
    return `${this.#prefix}{cb:${breakerKeyHash(key)}}`;
  }
}

export interface RedisBreakerStoreOptions {
  /** Starts every key; default `fc:`. Processes that share breakers use the same prefix. */
  prefix?: string | undefined;
  /** Tests only: the time of every operation comes from this clock instead of Redis TIME. */
  clock?: Clock | undefined;
}

/**
 * The breaker store on a Redis connection (see `connectRedis`): one object that is both the
 * `BreakerStore` a run's breakers use and the `BreakerAdmin` the `breaker` commands use. It does not own
 * the connection: the caller closes it.
 */
export function redisBreakerStore(
  redis: RedisConnection,
  options: RedisBreakerStoreOptions = {},
): RedisBreakerStore {
  return new RedisBreakerStore(redis, options);
}

/** 96 bits of SHA-256: a fixed-length, brace-free name for a key that holds `|`, URLs and anything else. */
export function breakerKeyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 24);
}

const states: readonly BreakerState[] = ['closed', 'open', 'half_open', 'isolated'];

/** A read script's reply, `{now, fields of the state hash, calls, failures, last bucket or -1}`. */
function toSnapshotOrUnstored(key: string, reply: unknown): BreakerSnapshot {
  const [nowReply, fieldsReply, calls, failures, lastBucket] = asList(reply);
  const now = asInt(nowReply);
  const fields = asList(fieldsReply);
  if (fields.length === 0) return unstoredSnapshot(key, now);
  const h = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) h.set(asText(fields[i]), asText(fields[i + 1]));
  const num = (f: string): number | null => {
    const v = h.get(f);
    return v === undefined ? null : Number(v);
  };
  const state = h.get('state');
  if (!states.includes(state as BreakerState)) {
    throw unexpected(`breaker ${key} has state ${JSON.stringify(state)}`);
  }
  const row: SnapshotRow = {
    key: h.get('key') ?? key,
    state: state as BreakerState,
    opened_at: num('opened_at'),
    retry_at: num('retry_at'),
    consecutive_opens: num('consecutive_opens') ?? 0,
    probe_owner: h.get('probe_owner') ?? null,
    probe_until: num('probe_until'),
    reason: h.get('reason') ?? null,
    last_error_kind: h.get('last_error_kind') ?? null,
    last_error_message: h.get('last_error_message') ?? null,
    last_error_at: num('last_error_at'),
    updated_at: num('updated_at') ?? now,
    version: num('version') ?? 0,
    window_calls: asInt(calls),
    window_failures: asInt(failures),
    last_bucket: asInt(lastBucket) < 0 ? null : asInt(lastBucket),
  };
  return toSnapshot(row, now);
}

/** A history member, "seq|at|from|to|cause" (the cause, last, may hold `|` itself). */
function parseHistory(key: string, member: string): BreakerHistoryEntry & { seq: number } {
  const m = /^(\d+)\|(\d+)\|([a-z_]+)\|([a-z_]+)\|(.*)$/s.exec(member);
  if (!m) throw unexpected(`breaker ${key} has a history entry ${JSON.stringify(member.slice(0, 80))}`);
  return {
    key,
    seq: Number(m[1]),
    at: Number(m[2]),
    from: m[3] as BreakerState,
    to: m[4] as BreakerState,
    cause: m[5] ?? '',
  };
}

function asList(reply: unknown): unknown[] {
  if (!Array.isArray(reply)) throw unexpected(`expected a list, got ${JSON.stringify(reply)}`);
  return reply;
}

function asInt(reply: unknown): number {
  if (typeof reply !== 'number') throw unexpected(`expected an integer, got ${JSON.stringify(reply)}`);
  return reply;
}

function asText(reply: unknown): string {
  if (typeof reply !== 'string') throw unexpected(`expected a string, got ${JSON.stringify(reply)}`);
  return reply;
}

function unexpected(what: string): FlashcardsError {
  return new FlashcardsError('database', `unexpected reply from the breaker store on Redis: ${what}`, {
    hint: 'another program (or another version of flashcards) may write these keys: use its own --store prefix',
  });
}
