import { type Db, databaseError } from '../db/open.ts';
import { GROUP_COMMIT_MS, WriteBehind } from '../db/write-behind.ts';
import { type Codec, type CodecName, writeCodec } from './codec.ts';
import { openCacheDb } from './db.ts';
import { checkSettings, entryLifetime, hitOf, packBody, type StoredEntry } from './rules.ts';
import type {
  CacheDeps,
  CacheEntryInput,
  CacheHit,
  CacheRun,
  CacheSettings,
  ResponseCache,
} from './store.ts';

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
 * The response cache in its own SQLite file (cache.db), so large writes never hold the lock that
 * limiter and batch updates in state.db need. Safe to share between processes: every write is one
 * statement, which takes the write lock up front (no read-to-write upgrade to deadlock on); puts are
 * grouped into one transaction per GROUP_COMMIT_MS and readable by get() in this process meanwhile.
 * Synchronous underneath: the ResponseCache promises it returns are already settled.
 */
export class SqliteResponseCache implements ResponseCache {
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
  static open(file: string, settings: CacheSettings, deps: CacheDeps): SqliteResponseCache {
    checkSettings(settings);
    // Resolve the codec before touching the disk, so a bad setting leaves no file behind.
    const codec = writeCodec(settings.codec);
    const db = openCacheDb(file);
    try {
      return new SqliteResponseCache(file, db, settings, deps, codec);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  async get(key: string, opts: { allowStale?: boolean } = {}): Promise<CacheHit | undefined> {
    const queued = this.#pending.get(key);
    let entry: StoredEntry | undefined;
    if (queued) {
      entry = queued;
    } else {
      const row = this.#run(() => this.#get.get(key) as StoredRow | undefined);
      entry = row && {
        codec: row.codec,
        body: row.body,
        createdAt: row.created_at,
        expiresAt: row.expires_at,
        model: row.model,
      };
    }
    return entry && hitOf(entry, this.#deps.clock.now(), opts.allowStale ?? false);
  }

  async put(key: string, entry: CacheEntryInput): Promise<void> {
    const raw = Buffer.from(entry.body, 'utf8');
    const now = this.#deps.clock.now();
    const lifetime = entryLifetime(this.#settings, this.#deps.random);
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
      expiresAt: lifetime === null ? null : now + lifetime,
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
    const packed = packBody(row.body, this.#codec, this.#settings.compressThresholdBytes);
    // The queued row itself: get() reads it until the commit, and decodes either form.
    if (packed.body !== row.body) Object.assign(row, { ...packed, storedBytes: packed.body.length });
    return row;
  }

  /** Commits queued puts now (close() does this too). */
  flush(): void {
    this.#run(() => this.#writes.flush());
  }

  async recordRun(run: CacheRun): Promise<void> {
    this.flush();
    this.#run(() => this.#recordRun.run(run));
  }

  async close(): Promise<void> {
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
