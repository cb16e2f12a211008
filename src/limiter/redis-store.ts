import { createHash } from 'node:crypto';
import type { Clock } from '../core/clock.ts';
import type { RedisConnection } from '../store/redis/connection.ts';
import { ratesKeepMs } from './after-429.ts';
import type { Booking, BookRequest, Charge, Restart } from './gcra.ts';
import type { BucketKind } from './layout.ts';
import { record429Lua } from './redis-429-script.ts';
import { bookLua, cancelLua, chargeLua, publishLua, restartLua, rowLua } from './redis-scripts.ts';
import { defaultRow, type KeyRow, type TokenAccounting } from './schema.ts';
import type { Layout, LimiterStore, Observed429, RateShare } from './store.ts';

/**
 * The limiter's shared state on Redis: the LimiterStore contract (test/conformance/limiter-store.ts)
 * with each operation one Lua script (redis-scripts.ts, redis-429-script.ts) that reads and
 * writes in one go, time from Redis TIME. Nothing here loads ioredis: the caller passes a
 * connection from src/store/redis/connection.ts.
 *
 * Cluster: all of one limiter key (its row, every shard of both buckets, the shared meters) lives
 * under ONE hash tag, `{lim:<hash of the key>}`, so the booking (the fuller of two shards in each
 * bucket, the pause and the refunds, all as of one send time) and the 429 (row, meters and every
 * shard restarted) are each one script on one slot: exactly decideBooking and after429, atomic,
 * one round trip. Different keys (providers, models, API keys) hash to different slots, so a
 * cluster spreads them. Tagging one key's shards apart would spread that key over nodes, but a
 * booking over two shards (plus the pause) would then be two scripts on two nodes, no longer one
 * decision, for capacity nobody needs: bench/store-limiter.ts measures ~30 µs of server time a
 * booking (~30,000 bookings/s, ~1.8M requests/min, for one key on one node, and the same with 1
 * or 8 shards), where the highest provider limits are ~30,000 requests/min (500/s).
 */
export interface RedisLimiterOptions {
  /** Every Redis key starts with this (default 'fc:'), so several deployments can share a server. */
  prefix?: string | undefined;
  /**
   * Tests only: the backend time comes from this clock (passed to each script) instead of Redis
   * TIME. The scripts are the same either way.
   */
  clock?: Clock | undefined;
}

/** The three Redis keys of one limiter key; one hash tag, so one cluster slot. */
export function limiterKeys(prefix: string, key: string): { row: string; tats: string; rates: string } {
  const tag = `${prefix}{lim:${createHash('sha256').update(key).digest('hex').slice(0, 24)}}`;
  return { row: `${tag}:row`, tats: `${tag}:tats`, rates: `${tag}:rates` };
}

type Arg = string | number;
type Script = (...args: Arg[]) => Promise<unknown>;

/**
 * Registers a script on the connection once (ioredis sends EVAL on a connection's first use and
 * EVALSHA after, and EVAL again when the server answers NOSCRIPT), and returns a typed caller.
 */
export function defineScript(conn: RedisConnection, name: string, keys: number, lua: string): Script {
  const commands = conn as unknown as Record<string, Script | undefined>;
  if (typeof commands[name] !== 'function') conn.defineCommand(name, { numberOfKeys: keys, lua });
  const fn = commands[name];
  if (fn === undefined) throw new Error(`ioredis did not define ${name}`);
  return (...args) => fn.apply(conn, args);
}

/** A number as a script argument: a decimal that parses back to the same double ('' = null). */
const num = (n: number | null): string => (n === null ? '' : String(n));

const numericFields = [
  'shards',
  'rpm',
  'rpm_burst',
  'tpm',
  'tpm_burst',
  'configured_rpm',
  'configured_tpm',
  'header_rpm',
  'header_tpm',
  'header_at',
  'aimd_rpm',
  'aimd_at',
  'paused_until',
  'strikes',
  'observed_at',
  'updated_at',
  'max_request_tokens',
  'latency_p50_ms',
  'latency_p75_ms',
  'latency_at',
] as const satisfies readonly (keyof KeyRow)[];

/** A stored row (HGETALL, as a flat list or an object) as the KeyRow SQLite returns; undefined when there is none. */
export function decodeRow(key: string, reply: unknown): KeyRow | undefined {
  const fields = toRecord(reply);
  if (Object.keys(fields).length === 0) return undefined;
  const row: KeyRow = defaultRow(key);
  const numbers = row as unknown as Record<string, number | null>;
  for (const f of numericFields) {
    const v = fields[f];
    if (v !== undefined) numbers[f] = Number(v);
  }
  row.pause_reason = fields['pause_reason'] ?? null;
  const accounting = fields['token_accounting'];
  row.token_accounting = accounting === 'upfront' || accounting === 'usage' ? accounting : null;
  return row;
}

/** HGETALL's reply: ioredis gives an object, a script's reply is a flat [field, value, ...] list. */
export function toRecord(reply: unknown): Record<string, string> {
  if (Array.isArray(reply)) {
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
    return out;
  }
  return reply !== null && typeof reply === 'object' ? (reply as Record<string, string>) : {};
}

export function redisLimiterStore(conn: RedisConnection, options: RedisLimiterOptions = {}): LimiterStore {
  return new RedisLimiterStore(conn, options);
}

class RedisLimiterStore implements LimiterStore {
  readonly #conn: RedisConnection;
  readonly #prefix: string;
  readonly #clock: Clock | undefined;
  readonly #scripts: ReturnType<typeof scripts>;

  constructor(conn: RedisConnection, options: RedisLimiterOptions) {
    this.#conn = conn;
    this.#prefix = options.prefix ?? 'fc:';
    this.#clock = options.clock;
    this.#scripts = scripts(conn);
  }

  /** ARGV[1] of every script: the injected clock's time, or '' for Redis TIME. */
  #now(): string {
    return this.#clock === undefined ? '' : String(this.#clock.now());
  }

  #keys(key: string) {
    return limiterKeys(this.#prefix, key);
  }

  async #rowOp(op: Exclude<keyof typeof rowLua, 'latency'>, key: string, ...args: Arg[]): Promise<KeyRow> {
    const reply = await this.#scripts.row[op](this.#keys(key).row, this.#now(), key, ...args);
    return decodeRow(key, reply) ?? defaultRow(key);
  }

  async readKey(key: string): Promise<KeyRow | undefined> {
    return decodeRow(key, await this.#conn.hgetall(this.#keys(key).row));
  }

  writeLayout(key: string, l: Layout): Promise<KeyRow> {
    return this.#rowOp(
      'layout',
      key,
      num(l.shards),
      num(l.rpm),
      num(l.rpmBurst),
      num(l.tpm),
      num(l.tpmBurst),
      num(l.configuredRpm),
      num(l.configuredTpm),
      num(l.maxRequestTokens),
    );
  }

  async book(key: string, req: BookRequest): Promise<Booking> {
    const k = this.#keys(key);
    const args: Arg[] = [
      k.row,
      k.tats,
      this.#now(),
      key,
      String(req.maxWaitMs),
      req.shards[0],
      req.shards[1],
    ];
    args.push(req.buckets.length);
    for (const b of req.buckets) args.push(b.kind, String(b.costMs), String(b.tauMs));
    args.push(req.refunds.length);
    for (const r of req.refunds) args.push(r.kind, r.shard, String(r.ms));
    const reply = (await this.#scripts.book(...args)) as (string | null)[];
    const now = Number(reply[1]);
    const delayMs = Number(reply[2]);
    if (reply[0] !== '1') return { ok: false, now, delayMs, pausedBy: reply[3] ?? null };
    const charges = req.buckets.map(
      (b, i): Charge => ({
        kind: b.kind,
        shard: Number(reply[4 + 2 * i]),
        costMs: b.costMs,
        after: Number(reply[5 + 2 * i]),
      }),
    );
    return { ok: true, now, delayMs, charges };
  }

  async cancel(key: string, charges: readonly Charge[]): Promise<void> {
    if (charges.length === 0) return;
    const args: Arg[] = [this.#keys(key).tats, this.#now(), key, charges.length];
    for (const c of charges) args.push(c.kind, c.shard, String(c.costMs), String(c.after));
    await this.#scripts.cancel(...args);
  }

  async charge(key: string, kind: BucketKind, shard: number, costMs: number): Promise<void> {
    await this.#scripts.charge(this.#keys(key).tats, this.#now(), key, kind, shard, String(costMs));
  }

  async restart(key: string, restarts: readonly Restart[]): Promise<void> {
    if (restarts.length === 0) return;
    const args: Arg[] = [this.#keys(key).tats, this.#now(), key, restarts.length];
    for (const r of restarts) args.push(r.kind, r.shards, String(r.aheadMs));
    await this.#scripts.restart(...args);
  }

  learnLimits(key: string, limits: { rpm: number | null; tpm: number | null }): Promise<KeyRow> {
    return this.#rowOp('learn', key, num(limits.rpm), num(limits.tpm));
  }

  markObserved(key: string): Promise<KeyRow> {
    return this.#rowOp('observed', key);
  }

  pause(key: string, forMs: number, reason: string): Promise<KeyRow> {
    return this.#rowOp('pause', key, String(forMs), reason);
  }

  clearStrikes(key: string): Promise<KeyRow> {
    return this.#rowOp('clearStrikes', key);
  }

  async record429(key: string, o: Observed429): Promise<KeyRow> {
    const k = this.#keys(key);
    const { rpm, tpm, burstSeconds, shards, maxRequestTokens } = o.settings;
    // JSON leaves undefined fields out: the script sees nil, as the rules see undefined.
    const input = JSON.stringify({
      info: o.info,
      settings: { rpm, tpm, burstSeconds, shards, maxRequestTokens },
      share: o.share,
    });
    const reply = await this.#scripts.record429(k.row, k.tats, k.rates, this.#now(), key, input);
    return decodeRow(key, reply) ?? defaultRow(key);
  }

  async publishRates(key: string, share: RateShare): Promise<void> {
    await this.#scripts.publish(
      this.#keys(key).rates,
      this.#now(),
      key,
      share.instance,
      String(share.accepted),
      String(share.admitted),
      String(share.measuringMs),
      ratesKeepMs,
    );
  }

  setTokenAccounting(key: string, accounting: TokenAccounting | null): Promise<KeyRow> {
    return this.#rowOp('tokenAccounting', key, accounting ?? '');
  }

  async recordLatency(key: string, latency: { p50Ms: number; p75Ms: number }): Promise<void> {
    await this.#scripts.row.latency(
      this.#keys(key).row,
      this.#now(),
      key,
      String(latency.p50Ms),
      String(latency.p75Ms),
    );
  }
}

/** Every script of the store, registered on the connection (names are unique to the limiter). */
function scripts(conn: RedisConnection) {
  const row = (name: keyof typeof rowLua): Script => defineScript(conn, `fcLimRow_${name}`, 1, rowLua[name]);
  return {
    book: defineScript(conn, 'fcLimBook', 2, bookLua),
    cancel: defineScript(conn, 'fcLimCancel', 1, cancelLua),
    charge: defineScript(conn, 'fcLimCharge', 1, chargeLua),
    restart: defineScript(conn, 'fcLimRestart', 1, restartLua),
    record429: defineScript(conn, 'fcLimRecord429', 3, record429Lua),
    publish: defineScript(conn, 'fcLimPublish', 1, publishLua),
    row: {
      layout: row('layout'),
      learn: row('learn'),
      observed: row('observed'),
      pause: row('pause'),
      clearStrikes: row('clearStrikes'),
      tokenAccounting: row('tokenAccounting'),
      latency: row('latency'),
    },
  };
}
