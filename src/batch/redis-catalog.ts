import type { RedisBatchDb, Reply } from './redis-db.ts';
import { int, list, pairs, text } from './redis-db.ts';
import { type BatchRow, toBatch } from './sqlite-schema.ts';
import type {
  BatchCatalog,
  BatchMeta,
  BatchOverview,
  BatchRecord,
  BatchStatus,
  LoadedItem,
  StageStats,
  TimingSummary,
} from './store.ts';

/** Scripts of the catalog; each is one atomic operation on one batch's keys (see redis-db.ts). */
const scripts = {
  // Creates the batch unless it exists. ARGV: time, then field/value pairs of the `batches` row.
  fcBatchCreate: `
    if redis.call('EXISTS', META) == 1 then return 0 end
    local now = now_ms()
    local fields = {}
    for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
    redis.call('HSET', META, 'created_at', now, 'updated_at', now, 'status', 'loading', 'total', 0, unpack(fields))
    return 1`,
  // A chunk of consecutive items and their stages' jobs, all or nothing (an item loaded twice is
  // refused, as SQLite's primary key refuses it). ARGV: time, first idx, stage count, stages, data...
  fcBatchInsert: `
    if redis.call('EXISTS', META) == 0 then return redis.error_reply('no batch to load items into') end
    local first, nstages = tonumber(ARGV[2]), tonumber(ARGV[3])
    local from = 4 + nstages
    local n = #ARGV - from + 1
    for i = 0, n - 1 do
      if redis.call('HEXISTS', DATA, first + i) == 1 then
        return redis.error_reply('item ' .. (first + i) .. ' is already loaded')
      end
    end
    for i = 0, n - 1 do
      redis.call('HSET', DATA, first + i, ARGV[from + i])
      redis.call('ZADD', FREE, first + i, first + i)
    end
    for s = 4, 3 + nstages do redis.call('HINCRBY', STATS, 'total:' .. ARGV[s], n) end
    return n`,
  fcBatchFinishLoading: `
    if redis.call('EXISTS', META) == 0 then return 0 end
    redis.call('HSET', META, 'status', 'running', 'total', ARGV[2], 'updated_at', now_ms())
    redis.call('HDEL', META, 'loader')
    return 1`,
  // ARGV: time, '1' and the loader, or '0' for a batch with no loader (SQLite's "loader IS NULL").
  fcBatchDeleteLoading: `
    local meta = redis.call('HMGET', META, 'status', 'loader')
    if meta[1] ~= 'loading' then return 0 end
    if (ARGV[2] == '1' and meta[2] ~= ARGV[3]) or (ARGV[2] == '0' and meta[2]) then return 0 end
    redis.call('UNLINK', unpack(KEYS))
    return 1`,
  fcBatchDelete: `
    redis.call('UNLINK', unpack(KEYS))
    return 1`,
  // Sets meta fields on an existing batch, with the time of the change. ARGV: time, then
  // field/value pairs; a field written '-name' is removed (a NULL column), its value ignored.
  fcBatchUpdate: `
    if redis.call('EXISTS', META) == 0 then return 0 end
    for i = 2, #ARGV, 2 do
      local removed = string.match(ARGV[i], '^-(.*)$')
      if removed then redis.call('HDEL', META, removed)
      else redis.call('HSET', META, ARGV[i], ARGV[i + 1]) end
    end
    redis.call('HSET', META, 'updated_at', now_ms())
    return 1`,
  // Compare-and-set of the settings: optimistic concurrency for patchSettings, whose JSON merge
  // happens in JavaScript (no JSON round trip through Lua, which would turn [] into {}).
  // ARGV: time, the settings read, the settings to write.
  fcBatchSettingsCas: `
    local current = redis.call('HGET', META, 'settings')
    if not current then return -1 end
    if current ~= ARGV[2] then return 0 end
    redis.call('HSET', META, 'settings', ARGV[3], 'updated_at', now_ms())
    return 1`,
  // One batch as `batches list` and `batches show` read it: the row, item counts, job counters.
  fcBatchSummary: `
    local meta = redis.call('HGETALL', META)
    if #meta == 0 then return {} end
    return { meta, { redis.call('HLEN', DATA), redis.call('ZCARD', DONE), redis.call('ZCARD', FAILED) },
      redis.call('HGETALL', STATS) }`,
  // rules.ts timingSummary over the done, uncached jobs' request times, by rank in TIMES: the
  // nearest rank of p is min(n - 1, floor(p / 100 * n)), 0-based. Returns n and the p50, p90,
  // p99 and max values.
  fcBatchTimes: `
    local n = redis.call('ZCARD', TIMES)
    if n == 0 then return { 0 } end
    local out = { n }
    for _, p in ipairs({ 50, 90, 99 }) do
      local rank = math.min(n - 1, math.floor((p / 100) * n))
      out[#out + 1] = redis.call('ZRANGE', TIMES, rank, rank, 'WITHSCORES')[2]
    end
    out[#out + 1] = redis.call('ZRANGE', TIMES, -1, -1, 'WITHSCORES')[2]
    return out`,
} as const;

/** A compare-and-set that keeps losing means writers never stop: give up rather than spin. */
const maxSettingsRounds = 50;

/** RFC 7396 JSON merge patch, as SQLite's json_patch applies it: null removes, objects merge, the rest replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

function toRecord(meta: Record<string, string>): BatchRecord {
  const row: BatchRow = {
    id: meta['id'] ?? '',
    input_name: meta['input_name'] ?? '',
    input_digest: meta['input_digest'] ?? '',
    settings_hash: meta['settings_hash'] ?? '',
    pipeline: meta['pipeline'] ?? '',
    stages: meta['stages'] ?? '[]',
    model: meta['model'] ?? '',
    base_url: meta['base_url'] ?? '',
    output_path: meta['output_path'] ?? null,
    format: meta['format'] ?? '',
    settings: meta['settings'] ?? '{}',
    created_at: Number(meta['created_at']),
    updated_at: Number(meta['updated_at']),
    status: meta['status'] as BatchStatus,
    total: Number(meta['total'] ?? 0),
    loader: meta['loader'] ?? null,
  };
  return toBatch(row);
}

/** Job counters of a batch by stage, from its `stats` hash ("<field>:<stage>" -> count). */
export function stageCounters(stats: Record<string, string>): Map<string, Record<string, number>> {
  const byStage = new Map<string, Record<string, number>>();
  for (const [field, value] of Object.entries(stats)) {
    const cut = field.indexOf(':');
    const stage = field.slice(cut + 1);
    const counters = byStage.get(stage) ?? {};
    counters[field.slice(0, cut)] = Number(value);
    byStage.set(stage, counters);
  }
  return byStage;
}

interface Summary {
  batch: BatchRecord;
  items: { total: number; done: number; failed: number };
  stages: Map<string, Record<string, number>>;
}

/**
 * The batch catalog on Redis. Each method is one script on the batch's slot; the ids of all
 * batches are kept in a set of their own (another slot), which create adds to before and after
 * making the batch, and delete takes from after removing it, so a listing never misses a batch
 * that exists (an id whose batch is gone is skipped).
 */
export class RedisBatchCatalog implements BatchCatalog {
  readonly #r: RedisBatchDb;

  constructor(shared: RedisBatchDb) {
    this.#r = shared;
    for (const [name, body] of Object.entries(scripts)) shared.define(name, body);
  }

  async create(meta: BatchMeta, loader: string): Promise<boolean> {
    const fields: Record<string, string | null> = {
      id: meta.id,
      input_name: meta.inputName,
      input_digest: meta.inputDigest,
      settings_hash: meta.settingsHash,
      pipeline: meta.pipeline,
      stages: JSON.stringify(meta.stages),
      model: meta.model,
      base_url: meta.baseUrl,
      output_path: meta.outputPath,
      format: meta.format,
      settings: JSON.stringify(meta.settings),
      loader,
    };
    const args = Object.entries(fields).flatMap(([k, v]) => (v === null ? [] : [k, v]));
    await this.#r.conn.sadd(this.#r.batchIndex, meta.id);
    const made = int(await this.#r.run('fcBatchCreate', meta.id, args)) === 1;
    // Again after: a delete of the same id running meanwhile may have taken the first one out.
    if (made) await this.#r.conn.sadd(this.#r.batchIndex, meta.id);
    return made;
  }

  async insertItems(batchId: string, items: readonly LoadedItem[], stages: readonly string[]): Promise<void> {
    if (items.length === 0) return;
    const first = items[0]!.idx;
    const last = first + items.length - 1;
    // Positions come from the array (first + its index): a gap would renumber items silently.
    if (items.some((item, i) => item.idx !== first + i)) {
      throw new Error(`items ${first}-${last} of batch ${batchId} are not consecutive`);
    }
    const data = items.map(({ idx: _, ...rest }) => JSON.stringify(rest));
    await this.#r.run('fcBatchInsert', batchId, [first, stages.length, ...stages, ...data]);
  }

  async finishLoading(batchId: string, total: number): Promise<void> {
    await this.#r.run('fcBatchFinishLoading', batchId, [total]);
  }

  async deleteLoading(batchId: string, loader: string | null): Promise<void> {
    const args = loader === null ? ['0', ''] : ['1', loader];
    if (int(await this.#r.run('fcBatchDeleteLoading', batchId, args)) === 1) await this.#unlist(batchId);
  }

  async get(batchId: string): Promise<BatchRecord | undefined> {
    await this.#r.settled();
    const meta = await this.#r.conn.hgetall(this.#r.key(batchId, 'meta'));
    return meta['id'] === undefined ? undefined : toRecord(meta);
  }

  async overview(): Promise<BatchOverview[]> {
    await this.#r.settled();
    const ids = await this.#r.conn.smembers(this.#r.batchIndex);
    // One read per batch, sent together (each its own slot on a cluster).
    const summaries = await Promise.all(ids.map((id) => this.#summary(id)));
    return summaries
      .filter((s): s is Summary => s !== undefined)
      .sort((x, y) => y.batch.createdAt - x.batch.createdAt || (x.batch.id < y.batch.id ? -1 : 1))
      .map(({ batch, items, stages }) => {
        const sum = (field: string): number => {
          let n = 0;
          for (const c of stages.values()) n += c[field] ?? 0;
          return n;
        };
        const promptTokens = sum('prompt');
        const completionTokens = sum('completion');
        return {
          batch,
          ...items,
          requests: sum('requests'),
          tokens: promptTokens + completionTokens,
          promptTokens,
          completionTokens,
        };
      });
  }

  async delete(batchId: string): Promise<void> {
    await this.#r.settled();
    await this.#r.run('fcBatchDelete', batchId);
    await this.#unlist(batchId);
  }

  async setStatus(batchId: string, status: BatchStatus): Promise<void> {
    await this.#r.settled();
    await this.#r.run('fcBatchUpdate', batchId, ['status', status]);
  }

  async setOutput(batchId: string, outputPath: string | null, format: string): Promise<void> {
    await this.#r.settled();
    const path = outputPath === null ? ['-output_path', ''] : ['output_path', outputPath];
    await this.#r.run('fcBatchUpdate', batchId, [...path, 'format', format]);
  }

  /** Optimistic concurrency: read the settings, merge in JavaScript, write if they did not change meanwhile. */
  async patchSettings(batchId: string, patch: Record<string, unknown>): Promise<void> {
    await this.#r.settled();
    const key = this.#r.key(batchId, 'meta');
    for (let round = 1; round <= maxSettingsRounds; round++) {
      const current = await this.#r.conn.hget(key, 'settings');
      if (current === null) return;
      const next = JSON.stringify(mergePatch(JSON.parse(current), patch));
      const set = int(await this.#r.run('fcBatchSettingsCas', batchId, [current, next]));
      if (set !== 0) return;
    }
    throw new Error(`the settings of batch ${batchId} kept changing while being patched`);
  }

  async stageStats(batchId: string): Promise<StageStats[]> {
    await this.#r.settled();
    const summary = await this.#summary(batchId);
    if (!summary) return [];
    const order = summary.batch.stages;
    const rank = (stage: string): number => order.indexOf(stage);
    // Keys in a fixed order: they are `batches show --json`'s output.
    return [...summary.stages.entries()]
      .filter(([, c]) => (c['total'] ?? 0) > 0)
      .sort(([x], [y]) => rank(x) - rank(y) || (x < y ? -1 : x > y ? 1 : 0))
      .map(([stage, c]) => {
        const total = c['total'] ?? 0;
        const done = c['done'] ?? 0;
        const failed = c['failed'] ?? 0;
        return {
          stage,
          total,
          done,
          failed,
          pending: total - done - failed,
          cached: c['cached'] ?? 0,
          requests: c['requests'] ?? 0,
          promptTokens: c['prompt'] ?? 0,
          completionTokens: c['completion'] ?? 0,
        };
      });
  }

  async requestTimes(batchId: string): Promise<TimingSummary> {
    await this.#r.settled();
    const reply = list(await this.#r.run('fcBatchTimes', batchId));
    if (int(reply[0]) === 0) return { p50: null, p90: null, p99: null, max: null };
    const [p50, p90, p99, max] = reply.slice(1).map((v) => Number(text(v)));
    return { p50: p50 ?? null, p90: p90 ?? null, p99: p99 ?? null, max: max ?? null };
  }

  async #summary(batchId: string): Promise<Summary | undefined> {
    const reply = list(await this.#r.run('fcBatchSummary', batchId));
    if (reply.length === 0) return undefined;
    const [meta, counts, stats] = reply as [Reply, Reply, Reply];
    const [total, done, failed] = list(counts).map(int);
    return {
      batch: toRecord(pairs(meta)),
      items: { total: total ?? 0, done: done ?? 0, failed: failed ?? 0 },
      stages: stageCounters(pairs(stats)),
    };
  }

  /** Takes the id out of the listing, and puts it back if the batch was made again meanwhile. */
  async #unlist(batchId: string): Promise<void> {
    await this.#r.conn.srem(this.#r.batchIndex, batchId);
    if ((await this.#r.conn.exists(this.#r.key(batchId, 'meta'))) === 1) {
      await this.#r.conn.sadd(this.#r.batchIndex, batchId);
    }
  }
}
