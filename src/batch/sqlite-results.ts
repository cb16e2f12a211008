import type { SqliteBatchDb } from './sqlite-db.ts';
import { itemRules } from './sqlite-schema.ts';
import type {
  BatchCounts,
  BatchResults,
  FinishedItem,
  ItemData,
  ItemFailure,
  JobOutcome,
  JobTotals,
} from './store.ts';

/** Finished items read per page for the deck: bounded memory, and no statement left open across an await. */
const PAGE = 256;

/** rules.ts `fenceAdmits` for the item of a job outcome (@batchId, @idx, @token). */
const admitted = `EXISTS (SELECT 1 FROM items WHERE batch_id = @batchId AND idx = @idx AND ${itemRules.fenceAdmits})`;

type OutcomeParams = Omit<JobOutcome, 'cached'> & { cached: number; now: number };

function statements(db: SqliteBatchDb['db']) {
  return {
    results: db.prepare<[string, number], { stage: string; result: string }>(
      "SELECT stage, result FROM jobs WHERE batch_id = ? AND idx = ? AND status = 'done'",
    ),
    jobDone: db.prepare<[OutcomeParams & { result: string }]>(
      `UPDATE jobs SET status = 'done', result = @result, attempts = attempts + @attempts, requests = requests + @requests,
         prompt_tokens = prompt_tokens + @promptTokens, completion_tokens = completion_tokens + @completionTokens,
         cached = @cached, duration_ms = @durationMs, request_ms = @requestMs, finished_at = @now, error_kind = NULL, error = NULL
       WHERE batch_id = @batchId AND idx = @idx AND stage = @stage AND ${admitted}`,
    ),
    jobFailed: db.prepare<[OutcomeParams & { errorKind: string; error: string }]>(
      `UPDATE jobs SET status = 'failed', attempts = attempts + @attempts, requests = requests + @requests,
         prompt_tokens = prompt_tokens + @promptTokens, completion_tokens = completion_tokens + @completionTokens,
         duration_ms = @durationMs, request_ms = @requestMs, finished_at = @now, error_kind = @errorKind, error = @error
       WHERE batch_id = @batchId AND idx = @idx AND stage = @stage AND status <> 'done' AND ${admitted}`,
    ),
    itemDone: db.prepare<[{ batchId: string; idx: number; token: number; now: number }]>(
      `UPDATE items SET status = 'done', owner = NULL, lease_until = 0, updated_at = @now
       WHERE batch_id = @batchId AND idx = @idx AND ${itemRules.fenceAdmits}`,
    ),
    itemFailed: db.prepare<
      [{ batchId: string; idx: number; token: number; now: number; errorKind: string; error: string }]
    >(
      `UPDATE items SET status = 'failed', owner = NULL, lease_until = 0, error_kind = @errorKind, error = @error,
         updated_at = @now
       WHERE batch_id = @batchId AND idx = @idx AND ${itemRules.fenceAdmits}`,
    ),
    counts: db.prepare<[{ batch: string; now: number }], BatchCounts>(
      `SELECT count(*) AS total,
         coalesce(sum(status = 'done'), 0) AS done,
         coalesce(sum(status = 'failed'), 0) AS failed,
         coalesce(sum(status = 'pending'), 0) AS pending,
         coalesce(sum(${itemRules.leaseLive}), 0) AS leased
       FROM items WHERE batch_id = @batch`,
    ),
    totals: db.prepare<[string], JobTotals>(
      `SELECT coalesce(sum(requests), 0) AS requests, coalesce(sum(prompt_tokens), 0) AS promptTokens,
         coalesce(sum(completion_tokens), 0) AS completionTokens, coalesce(sum(cached), 0) AS cachedJobs
       FROM jobs WHERE batch_id = ?`,
    ),
    failures: db.prepare<[string, number], { idx: number; data: string; errorKind: string; error: string }>(
      "SELECT idx, data, error_kind AS errorKind, error FROM items WHERE batch_id = ? AND status = 'failed' ORDER BY idx LIMIT ?",
    ),
    requeueItems: db.prepare<[string]>(
      // attempts (the lease token) is kept: a claim with attempts > 1 reloads the stages that already finished.
      "UPDATE items SET status = 'pending', error_kind = NULL, error = NULL, owner = NULL, lease_until = 0 WHERE batch_id = ? AND status = 'failed'",
    ),
    requeueJobs: db.prepare<[string]>(
      "UPDATE jobs SET status = 'pending', error_kind = NULL, error = NULL WHERE batch_id = ? AND status = 'failed'",
    ),
    finishedPage: db.prepare<[string, number, number], { idx: number; data: string; results: string }>(
      `SELECT i.idx AS idx, i.data AS data, group_concat(j.stage || char(31) || j.result, char(30)) AS results
       FROM items i JOIN jobs j ON j.batch_id = i.batch_id AND j.idx = i.idx AND j.status = 'done'
       WHERE i.batch_id = ? AND i.status = 'done' AND i.idx >= ?
       GROUP BY i.idx ORDER BY i.idx LIMIT ?`,
    ),
    unfinishedPage: db.prepare<
      [{ batchId: string; failed: number; from: number; limit: number }],
      { idx: number; data: string; results: string | null }
    >(
      `SELECT i.idx AS idx, i.data AS data, group_concat(j.stage || char(31) || j.result, char(30)) AS results
       FROM items i LEFT JOIN jobs j ON j.batch_id = i.batch_id AND j.idx = i.idx AND j.status = 'done'
       WHERE i.batch_id = @batchId AND (i.status = 'pending' OR (@failed AND i.status = 'failed')) AND i.idx >= @from
       GROUP BY i.idx ORDER BY i.idx LIMIT @limit`,
    ),
  };
}

/** Stage results as the page queries concatenate them: stage US result RS stage US result ... */
function splitResults(text: string | null): Record<string, unknown> {
  const results: Record<string, unknown> = {};
  if (text === null) return results;
  for (const part of text.split('\x1e')) {
    const cut = part.indexOf('\x1f');
    results[part.slice(0, cut)] = JSON.parse(part.slice(cut + 1));
  }
  return results;
}

/**
 * Job outcomes and the reads made of them, in state.db. Outcomes go through the shared
 * write-behind queue (a group commit, the fence checked inside it); every read goes through
 * `afterQueued`, so it sees them.
 */
export class SqliteBatchResults implements BatchResults {
  readonly #s: SqliteBatchDb;
  readonly #stmts: ReturnType<typeof statements>;

  constructor(shared: SqliteBatchDb) {
    this.#s = shared;
    this.#stmts = statements(shared.db);
  }

  async completeJob(outcome: JobOutcome, result: unknown, lastStage: boolean): Promise<void> {
    const now = this.#s.clock.now();
    const params = { ...outcome, cached: outcome.cached ? 1 : 0, result: JSON.stringify(result), now };
    this.#s.queue(() => {
      this.#stmts.jobDone.run(params);
      if (lastStage)
        this.#stmts.itemDone.run({ batchId: outcome.batchId, idx: outcome.idx, token: outcome.token, now });
    });
  }

  async failJob(outcome: JobOutcome, errorKind: string, error: string): Promise<void> {
    const now = this.#s.clock.now();
    const params = { ...outcome, cached: outcome.cached ? 1 : 0, errorKind, error, now };
    this.#s.queue(() => {
      this.#stmts.jobFailed.run(params);
      this.#stmts.itemFailed.run({
        batchId: outcome.batchId,
        idx: outcome.idx,
        token: outcome.token,
        now,
        errorKind,
        error,
      });
    });
  }

  async flush(): Promise<void> {
    this.#s.flush();
  }

  async results(batchId: string, idx: number): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const row of this.#s.afterQueued(() => this.#stmts.results.all(batchId, idx))) {
      out[row.stage] = JSON.parse(row.result);
    }
    return out;
  }

  async counts(batchId: string): Promise<BatchCounts> {
    const row = this.#s.afterQueued(() =>
      this.#stmts.counts.get({ batch: batchId, now: this.#s.clock.now() }),
    );
    // An aggregate without GROUP BY always gives one row.
    return row!;
  }

  async totals(batchId: string): Promise<JobTotals> {
    return this.#s.afterQueued(() => this.#stmts.totals.get(batchId))!;
  }

  async failures(batchId: string, limit: number): Promise<ItemFailure[]> {
    return this.#s
      .afterQueued(() => this.#stmts.failures.all(batchId, limit))
      .map((r) => ({
        item: r.idx,
        term: (JSON.parse(r.data) as ItemData).term,
        errorKind: r.errorKind,
        message: r.error,
      }));
  }

  async requeueFailed(batchId: string): Promise<number> {
    return this.#s.afterQueued(() =>
      this.#s.db.transaction(() => {
        this.#stmts.requeueJobs.run(batchId);
        return this.#stmts.requeueItems.run(batchId).changes;
      })(),
    );
  }

  async *finishedItems(batchId: string, fromIdx = 0): AsyncGenerator<FinishedItem> {
    for (let from = fromIdx; ; ) {
      const page = this.#s.afterQueued(() => this.#stmts.finishedPage.all(batchId, from, PAGE));
      for (const row of page) {
        yield { idx: row.idx, item: JSON.parse(row.data) as ItemData, results: splitResults(row.results) };
      }
      if (page.length < PAGE) return;
      from = page[page.length - 1]!.idx + 1;
    }
  }

  async *unfinishedItems(batchId: string, options: { failed: boolean }): AsyncGenerator<FinishedItem> {
    const failed = options.failed ? 1 : 0;
    for (let from = 0; ; ) {
      const page = this.#s.afterQueued(() =>
        this.#stmts.unfinishedPage.all({ batchId, failed, from, limit: PAGE }),
      );
      for (const row of page) {
        yield { idx: row.idx, item: JSON.parse(row.data) as ItemData, results: splitResults(row.results) };
      }
      if (page.length < PAGE) return;
      from = page[page.length - 1]!.idx + 1;
    }
  }
}
