import type { Clock } from '../core/clock.ts';
import { FlashcardsError } from '../core/errors.ts';
import type { Random } from '../core/random.ts';
import { type Db, databaseError } from '../db/open.ts';
import { GROUP_COMMIT_MS, WriteBehind } from '../db/write-behind.ts';
import { type Codec, type CodecName, decodeBody, writeCodec } from './codec.ts';
import { openCacheDb } from './db.ts';

export interface CacheSettings {
  /** How long an entry lives before jitter; 0 = never expires. */
  ttlMs: number;
  /** Each entry lives ttlMs x U[1, 1 + jitter], so a batch written together does not expire together. */
  jitter: number;
  /** Bodies larger than this (UTF-8 bytes) are compressed; smaller ones are not worth the CPU. */
  compressThresholdBytes: number;
  /** Codec for new rows (default deflate, see defaultCodecName). Old rows keep their own codec. */
  codec?: CodecName;
}

export const DEFAULT_CACHE_SETTINGS: Readonly<CacheSettings> = {
  ttlMs: 30 * 86_400_000,
  jitter: 0.1,
  compressThresholdBytes: 1024,
};

export interface CacheDeps {
  clock: Clock;
  random: Random;
}

export interface CacheEntryInput {
  /** A complete, validated, successful response: the caller only puts those. */
  body: string;
  model: string;
  /** What the request was about (the word), for `cache list`. */
  term?: string | undefined;
  stage?: string | undefined;
}

export interface CacheHit {
  body: string;
  /** Past its expiry: only returned with allowStale. */
  stale: boolean;
  createdAt: number;
  expiresAt: number | null;
  model: string;
}

export interface CacheRun {
  runId: string;
  startedAt: number;
  hits: number;
  misses: number;
  model: string;
}

interface PendingRow {
  key: string;
  model: string;
  term: string | null;
  stage: string | null;
  codec: CodecName;
  body: Buffer;
  originalBytes: number;
  storedBytes: number;
  createdAt: number;
  expiresAt: number | null;
}

interface StoredRow {
  codec: string;
  body: Buffer;
  created_at: number;
  expires_at: number | null;
  model: string;
}

/**
 * Responses keyed by request hash in their own SQLite file, so large writes never hold the lock
 * that limiter and batch updates in state.db need. Safe to share between processes: every write
 * is one statement, which takes the write lock up front (no read-to-write upgrade to deadlock on).
 */
export class ResponseCache {
  readonly #db: Db;
  readonly #file: string;
  readonly #settings: CacheSettings;
  readonly #deps: CacheDeps;
  readonly #codec: Codec;
  readonly #get: ReturnType<Db['prepare']>;
  readonly #put: ReturnType<Db['prepare']>;
  readonly #recordRun: ReturnType<Db['prepare']>;
  /** Puts not yet committed, readable by get() meanwhile; committed together once per event-loop turn. */
  readonly #pending = new Map<string, PendingRow>();
  readonly #writes: WriteBehind<PendingRow>;
  readonly #packedRows = new WeakSet<PendingRow>();

  private constructor(file: string, db: Db, settings: CacheSettings, deps: CacheDeps, codec: Codec) {
    this.#file = file;
    this.#db = db;
    this.#settings = settings;
    this.#deps = deps;
    this.#codec = codec;
    this.#get = db.prepare('SELECT codec, body, created_at, expires_at, model FROM responses WHERE key = ?');
    this.#put = db.prepare(
      `INSERT INTO responses (key, model, term, stage, codec, body, original_bytes, stored_bytes, created_at, expires_at)
       VALUES (@key, @model, @term, @stage, @codec, @body, @originalBytes, @storedBytes, @createdAt, @expiresAt)
       ON CONFLICT (key) DO UPDATE SET
         model = excluded.model, term = excluded.term, stage = excluded.stage, codec = excluded.codec,
         body = excluded.body, original_bytes = excluded.original_bytes, stored_bytes = excluded.stored_bytes,
         created_at = excluded.created_at, expires_at = excluded.expires_at`,
    );
    this.#recordRun = db.prepare(
      `INSERT INTO cache_runs (run_id, started_at, hits, misses, model)
       VALUES (@runId, @startedAt, @hits, @misses, @model)
       ON CONFLICT (run_id) DO UPDATE SET
         started_at = excluded.started_at, hits = excluded.hits, misses = excluded.misses, model = excluded.model`,
    );
    // Group-committed like the job results in state.db (cache.db is its own file, so these
    // commits never wait on state.db's).
    // Bodies are compressed when committed, not when put: a put sits between an answer and the
    // next request, a commit runs on a timer.
    this.#writes = new WriteBehind<PendingRow>(db, (row) => this.#put.run(this.#packed(row)), {
      delayMs: GROUP_COMMIT_MS,
      clock: deps.clock,
      afterFlush: () => this.#pending.clear(),
    });
  }

  /** Opens (creating file and tables if needed) the cache at `file`. */
  static open(file: string, settings: CacheSettings, deps: CacheDeps): ResponseCache {
    checkSettings(settings);
    // Resolve the codec before touching the disk, so a bad setting leaves no file behind.
    const codec = writeCodec(settings.codec);
    const db = openCacheDb(file);
    try {
      return new ResponseCache(file, db, settings, deps, codec);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /**
   * The stored response, or undefined on a miss. An expired entry is a miss unless `allowStale`
   * (serving something while the provider is down beats serving nothing). A row this Node cannot
   * decode is also a miss: the fresh response the caller then fetches overwrites it.
   */
  get(key: string, opts: { allowStale?: boolean } = {}): CacheHit | undefined {
    const queued = this.#pending.get(key);
    const row: StoredRow | undefined = queued
      ? {
          codec: queued.codec,
          body: queued.body,
          created_at: queued.createdAt,
          expires_at: queued.expiresAt,
          model: queued.model,
        }
      : this.#run(() => this.#get.get(key) as StoredRow | undefined);
    if (!row) return undefined;
    const stale = row.expires_at !== null && row.expires_at <= this.#deps.clock.now();
    if (stale && !opts.allowStale) return undefined;
    let body: string;
    try {
      body = decodeBody(row.codec, row.body);
    } catch {
      return undefined;
    }
    return { body, stale, createdAt: row.created_at, expiresAt: row.expires_at, model: row.model };
  }

  /** Stores (or replaces) a response; last writer wins when two processes put the same key. */
  put(key: string, entry: CacheEntryInput): void {
    const raw = Buffer.from(entry.body, 'utf8');
    const now = this.#deps.clock.now();
    const { ttlMs, jitter } = this.#settings;
    const row: PendingRow = {
      key,
      model: entry.model,
      term: entry.term ?? null,
      stage: entry.stage ?? null,
      codec: 'identity',
      body: raw,
      originalBytes: raw.length,
      storedBytes: raw.length,
      createdAt: now,
      expiresAt: ttlMs === 0 ? null : Math.round(now + ttlMs * (1 + jitter * this.#deps.random())),
    };
    this.#pending.set(key, row);
    this.#run(() => this.#writes.add(row));
  }

  /**
   * The row as stored: its body compressed when that makes it smaller (incompressible bodies stay
   * as they are). Done once per row, also when a failed commit puts the row back in the queue.
   */
  #packed(row: PendingRow): PendingRow {
    if (this.#packedRows.has(row)) return row;
    this.#packedRows.add(row);
    if (row.body.length <= this.#settings.compressThresholdBytes || this.#codec.name === 'identity')
      return row;
    const packed = this.#codec.encode(row.body);
    if (packed.length < row.body.length) {
      // The queued row itself: get() reads it until the commit, and decodes either form.
      Object.assign(row, { codec: this.#codec.name, body: packed, storedBytes: packed.length });
    }
    return row;
  }

  /** Commits queued puts now (close() does this too). */
  flush(): void {
    this.#run(() => this.#writes.flush());
  }

  /** Upserts a run's hit/miss totals (absolute, not increments), so calling it periodically is safe. */
  recordRun(run: CacheRun): void {
    this.flush();
    this.#run(() => this.#recordRun.run(run));
  }

  close(): void {
    if (!this.#db.open) return;
    try {
      this.flush();
    } finally {
      this.#db.close();
    }
  }

  /** SQLite failures (disk full, locked for longer than busy_timeout) become errors naming the file. */
  #run<T>(statement: () => T): T {
    try {
      return statement();
    } catch (e) {
      throw databaseError(this.#file, e);
    }
  }
}

function checkSettings(s: CacheSettings): void {
  const bad = (what: string, expected: string, got: number): FlashcardsError =>
    new FlashcardsError('config', `cache ${what} must be ${expected}, got ${got}`);
  if (!Number.isFinite(s.ttlMs) || s.ttlMs < 0)
    throw bad('ttl', 'a duration >= 0 (0 = never expires)', s.ttlMs);
  if (!Number.isFinite(s.jitter) || s.jitter < 0) throw bad('jitter', 'a number >= 0', s.jitter);
  if (!Number.isFinite(s.compressThresholdBytes) || s.compressThresholdBytes < 0) {
    throw bad('compression threshold', 'a number of bytes >= 0', s.compressThresholdBytes);
  }
}
