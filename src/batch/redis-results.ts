import { stageCounters } from './redis-catalog.ts';
import type { RedisBatchDb } from './redis-db.ts';
import { int, list, pairs, text } from './redis-db.ts';
import type {
  BatchCounts,
  BatchResults,
  FinishedItem,
  ItemData,
  ItemFailure,
  JobOutcome,
  JobTotals,
} from './store.ts';

/** Items read per page (the deck, a dry run's estimate): bounded memory and bounded script time. */
const PAGE = 256;

/**
 * Lua kept by the outcome scripts: a job's row (SQLite's `jobs` columns but the result), and the
 * per-stage counters in STATS that move with it. A job exists when its stage was loaded
 * (insertItems counted it); an outcome for a stage the batch has no jobs for changes no job, as
 * SQLite's UPDATE finds no row, but still settles the item.
 */
const jobLua = `
local function job_exists(stage)
  return redis.call('HEXISTS', STATS, 'total:' .. stage) == 1
end
local function load_job(key)
  local raw = redis.call('HGET', JOBS, key)
  if raw then return cjson.decode(raw) end
  return { status = 'pending', attempts = 0, requests = 0, prompt_tokens = 0, completion_tokens = 0, cached = 0 }
end
local function count(field, stage, n)
  if n ~= 0 then redis.call('HINCRBY', STATS, field .. ':' .. stage, n) end
end
-- Adds an outcome's attempts, requests and tokens to the job and to the stage's counters.
-- ARGV from 5: attempts, requests, prompt tokens, completion tokens, duration ms, request ms.
local function add_outcome(job, stage, now)
  local requests, prompt, completion = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  job.attempts = job.attempts + tonumber(ARGV[5])
  job.requests = job.requests + requests
  job.prompt_tokens = job.prompt_tokens + prompt
  job.completion_tokens = job.completion_tokens + completion
  job.duration_ms = tonumber(ARGV[9])
  job.request_ms = tonumber(ARGV[10])
  job.finished_at = now
  count('requests', stage, requests)
  count('prompt', stage, prompt)
  count('completion', stage, completion)
end
`;

/**
 * Lua of the paged item reads: the first `limit` of `idxs` (input order), each as idx, data, the
 * number of finished stages, then stage and result of each.
 */
const pageLua = `
local function page(idxs, limit)
  local stages = job_stages()
  local out = {}
  for n = 1, math.min(limit, #idxs) do
    local idx = idxs[n]
    local found = {}
    for _, stage in ipairs(stages) do
      local result = redis.call('HGET', RESULTS, idx .. ':' .. stage)
      if result then
        found[#found + 1] = stage
        found[#found + 1] = result
      end
    end
    out[#out + 1] = tonumber(idx)
    out[#out + 1] = redis.call('HGET', DATA, idx)
    out[#out + 1] = #found / 2
    for _, v in ipairs(found) do out[#out + 1] = v end
  end
  return out
end
`;

const scripts = {
  // Stores a stage's result if the token holds the item (rules.ts fenceAdmits); the item is done
  // after its last stage. ARGV: time, idx, token, stage, the outcome's six figures (see
  // add_outcome), cached ('1'/'0'), last stage ('1'/'0'), the result JSON.
  fcBatchComplete: `${jobLua}
    local now = now_ms()
    local idx, stage = ARGV[2], ARGV[4]
    if not fence_admits(idx, ARGV[3]) then return 0 end
    if job_exists(stage) then
      local key = idx .. ':' .. stage
      local job = load_job(key)
      -- The same outcome again (a reply that timed out, then the outbox): counted once.
      if job.status == 'done' and job.token == ARGV[3] then return 1 end
      local cached = tonumber(ARGV[11])
      if job.status ~= 'done' then count('done', stage, 1) end
      if job.status == 'failed' then count('failed', stage, -1) end
      count('cached', stage, cached - job.cached)
      add_outcome(job, stage, now)
      job.status, job.cached, job.error_kind, job.error, job.token = 'done', cached, nil, nil, ARGV[3]
      redis.call('HSET', JOBS, key, cjson.encode(job))
      redis.call('HSET', RESULTS, key, ARGV[13])
      -- Request times of finished, uncached jobs, for the percentiles of batches show.
      if cached == 1 then redis.call('ZREM', TIMES, key) else redis.call('ZADD', TIMES, job.request_ms, key) end
    end
    if ARGV[12] == '1' then settle(idx, DONE) end
    return 1`,
  // Fails the job (unless done) and its item, fenced like completion. ARGV: time, idx, token,
  // stage, the outcome's six figures, error kind, error message, JSON [kind, message].
  fcBatchFail: `${jobLua}
    local now = now_ms()
    local idx, stage = ARGV[2], ARGV[4]
    if not fence_admits(idx, ARGV[3]) then return 0 end
    if job_exists(stage) then
      local key = idx .. ':' .. stage
      local job = load_job(key)
      if job.status ~= 'done' then
        if job.status ~= 'failed' then count('failed', stage, 1) end
        add_outcome(job, stage, now)
        job.status, job.error_kind, job.error = 'failed', ARGV[11], ARGV[12]
        redis.call('HSET', JOBS, key, cjson.encode(job))
      end
    end
    settle(idx, FAILED)
    redis.call('HSET', ERRORS, idx, ARGV[13])
    return 1`,
  // Every finished stage's result of one item: stage, result, stage, result...
  fcBatchItemResults: `
    local out = {}
    for _, stage in ipairs(job_stages()) do
      local result = redis.call('HGET', RESULTS, ARGV[2] .. ':' .. stage)
      if result then
        out[#out + 1] = stage
        out[#out + 1] = result
      end
    end
    return out`,
  fcBatchCounts: `
    return { redis.call('HLEN', DATA), redis.call('ZCARD', DONE), redis.call('ZCARD', FAILED),
      redis.call('ZCOUNT', LEASED, now_ms(), '+inf') }`,
  // Failed items in input order: idx, data, JSON [kind, message]... ARGV: time, limit (< 0: all).
  fcBatchFailures: `
    local limit = tonumber(ARGV[2])
    if limit == 0 then return {} end
    local out = {}
    for _, idx in ipairs(redis.call('ZRANGE', FAILED, 0, limit < 0 and -1 or limit - 1)) do
      out[#out + 1] = tonumber(idx)
      out[#out + 1] = redis.call('HGET', DATA, idx)
      out[#out + 1] = redis.call('HGET', ERRORS, idx) or '["",""]'
    end
    return out`,
  // Failed items back to pending (claimable at once), their failed jobs too, errors cleared;
  // tokens (attempts) kept. Failed jobs belong to failed items only: failing a job fails its item
  // in the same script, and only this script takes an item out of FAILED.
  fcBatchRequeue: `
    local stages = job_stages()
    local items = redis.call('ZRANGE', FAILED, 0, -1)
    for _, idx in ipairs(items) do
      for _, stage in ipairs(stages) do
        local key = idx .. ':' .. stage
        local raw = redis.call('HGET', JOBS, key)
        if raw then
          local job = cjson.decode(raw)
          if job.status == 'failed' then
            job.status, job.error_kind, job.error = 'pending', nil, nil
            redis.call('HSET', JOBS, key, cjson.encode(job))
            redis.call('HINCRBY', STATS, 'failed:' .. stage, -1)
          end
        end
      end
      redis.call('ZREM', FAILED, idx)
      redis.call('HDEL', ERRORS, idx)
      redis.call('ZADD', FREE, idx, idx)
    end
    return #items`,
  // A page of finished items from idx ARGV[2] on, at most ARGV[3] (an item with no stage result
  // is left out by the reader, as SQLite's join leaves it out). See pageLua.
  fcBatchFinishedPage: `${pageLua}
    local from, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
    return page(redis.call('ZRANGEBYSCORE', DONE, from, '+inf', 'LIMIT', 0, limit), limit)`,
  // A page of the items still to do from idx ARGV[2] on, at most ARGV[3]: pending ones (FREE, and
  // LEASED, few, merged into input order) and with ARGV[4] == '1' failed ones. See pageLua.
  fcBatchUnfinishedPage: `${pageLua}
    local from, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
    local picked = redis.call('ZRANGEBYSCORE', FREE, from, '+inf', 'LIMIT', 0, limit)
    for _, idx in ipairs(redis.call('ZRANGE', LEASED, 0, -1)) do
      if tonumber(idx) >= from then picked[#picked + 1] = idx end
    end
    if ARGV[4] == '1' then
      for _, idx in ipairs(redis.call('ZRANGEBYSCORE', FAILED, from, '+inf', 'LIMIT', 0, limit)) do
        picked[#picked + 1] = idx
      end
    end
    table.sort(picked, function(x, y) return tonumber(x) < tonumber(y) end)
    return page(picked, limit)`,
} as const;

/**
 * Job outcomes and the reads made of them, on Redis. Each outcome is sent at once as one script
 * (fence and all) rather than group-committed: one round trip, a few hundred microseconds, beside
 * a model call of seconds, and outcomes sent by concurrent workers share the socket (the client
 * pipelines them); see bench/store-batches.ts. The promise settles with the server's answer, so
 * an outcome is stored once resolved, and reads wait for the outcomes still in flight.
 */
export class RedisBatchResults implements BatchResults {
  readonly #r: RedisBatchDb;

  constructor(shared: RedisBatchDb) {
    this.#r = shared;
    for (const [name, body] of Object.entries(scripts)) shared.define(name, body);
  }

  async completeJob(outcome: JobOutcome, result: unknown, lastStage: boolean): Promise<void> {
    await this.#r.write('fcBatchComplete', outcome.batchId, [
      ...head(outcome),
      outcome.cached ? '1' : '0',
      lastStage ? '1' : '0',
      JSON.stringify(result),
    ]);
  }

  async failJob(outcome: JobOutcome, errorKind: string, error: string): Promise<void> {
    await this.#r.write('fcBatchFail', outcome.batchId, [
      ...head(outcome),
      errorKind,
      error,
      JSON.stringify([errorKind, error]),
    ]);
  }

  async flush(): Promise<void> {
    await this.#r.flush();
  }

  async results(batchId: string, idx: number): Promise<Record<string, unknown>> {
    await this.#r.settled();
    const found = pairs(await this.#r.run('fcBatchItemResults', batchId, [idx]));
    const out: Record<string, unknown> = {};
    for (const [stage, result] of Object.entries(found)) out[stage] = JSON.parse(result);
    return out;
  }

  async counts(batchId: string): Promise<BatchCounts> {
    await this.#r.settled();
    const [total = 0, done = 0, failed = 0, leased = 0] = list(
      await this.#r.run('fcBatchCounts', batchId),
    ).map(int);
    return { total, done, failed, pending: total - done - failed, leased };
  }

  async totals(batchId: string): Promise<JobTotals> {
    await this.#r.settled();
    const stats = await this.#r.conn.hgetall(this.#r.key(batchId, 'stats'));
    const totals = { requests: 0, promptTokens: 0, completionTokens: 0, cachedJobs: 0 };
    for (const c of stageCounters(stats).values()) {
      totals.requests += c['requests'] ?? 0;
      totals.promptTokens += c['prompt'] ?? 0;
      totals.completionTokens += c['completion'] ?? 0;
      totals.cachedJobs += c['cached'] ?? 0;
    }
    return totals;
  }

  async failures(batchId: string, limit: number): Promise<ItemFailure[]> {
    await this.#r.settled();
    const reply = list(await this.#r.run('fcBatchFailures', batchId, [limit]));
    const out: ItemFailure[] = [];
    for (let i = 0; i + 2 < reply.length; i += 3) {
      const [errorKind, message] = JSON.parse(text(reply[i + 2])) as [string, string];
      out.push({
        item: int(reply[i]),
        term: (JSON.parse(text(reply[i + 1])) as ItemData).term,
        errorKind,
        message,
      });
    }
    return out;
  }

  async requeueFailed(batchId: string): Promise<number> {
    await this.#r.settled();
    return int(await this.#r.run('fcBatchRequeue', batchId));
  }

  async *finishedItems(batchId: string, fromIdx = 0): AsyncGenerator<FinishedItem> {
    for await (const item of this.#pages(batchId, fromIdx, 'fcBatchFinishedPage', [])) {
      if (Object.keys(item.results).length > 0) yield item;
    }
  }

  unfinishedItems(batchId: string, options: { failed: boolean }): AsyncIterable<FinishedItem> {
    return this.#pages(batchId, 0, 'fcBatchUnfinishedPage', [options.failed ? '1' : '0']);
  }

  /** Reads a paged script (pageLua) page by page, each after the outcomes in flight. */
  async *#pages(
    batchId: string,
    fromIdx: number,
    script: string,
    extra: string[],
  ): AsyncGenerator<FinishedItem> {
    for (let from = fromIdx; ; ) {
      await this.#r.settled();
      const reply = list(await this.#r.run(script, batchId, [from, PAGE, ...extra]));
      let read = 0;
      for (let i = 0; i < reply.length; ) {
        const idx = int(reply[i]);
        const item = JSON.parse(text(reply[i + 1])) as ItemData;
        const n = int(reply[i + 2]);
        const results: Record<string, unknown> = {};
        for (let k = 0; k < n; k++) {
          results[text(reply[i + 3 + 2 * k])] = JSON.parse(text(reply[i + 4 + 2 * k]));
        }
        i += 3 + 2 * n;
        read++;
        from = idx + 1;
        yield { idx, item, results };
      }
      if (read < PAGE) return;
    }
  }
}

/** ARGV after the time, common to both outcome scripts: idx, token, stage and the six figures. */
function head(o: JobOutcome): (string | number)[] {
  // Whole numbers: HINCRBY refuses a fraction, and a provider's usage figures are not ours to trust.
  const whole = [o.attempts, o.requests, o.promptTokens, o.completionTokens, o.durationMs, o.requestMs].map(
    (n) => Math.round(n),
  );
  return [o.idx, o.token, o.stage, ...whole];
}
