import type Database from 'better-sqlite3';
import { runConflicts } from './rules.ts';
import type { SqliteBatchDb } from './sqlite-db.ts';
import { itemRules } from './sqlite-schema.ts';
import type { ClaimedItem, ItemData, JoinOutcome, RunInfo, WorkQueue } from './store.ts';

interface ClaimRow {
  idx: number;
  data: string;
  attempts: number;
}

interface RunRow {
  owner: string;
  exclusive: number;
  aliveUntil: number;
}

function statements(db: SqliteBatchDb['db']) {
  return {
    claim: db.prepare<
      [{ owner: string; until: number; now: number; batch: string; after: number; limit: number }],
      ClaimRow
    >(
      // attempts is the lease token: one more with every claim.
      `UPDATE items SET owner = @owner, lease_until = @until, attempts = attempts + 1, updated_at = @now
       WHERE batch_id = @batch AND idx IN (
         SELECT idx FROM items WHERE batch_id = @batch AND ${itemRules.claimable} AND idx > @after
         ORDER BY idx LIMIT @limit)
       RETURNING idx, data, attempts`,
    ),
    renewLeases: db.prepare<[{ batch: string; owner: string; until: number }]>(
      // Leases not released (a lapsed one nobody claimed since is still this owner's).
      "UPDATE items SET lease_until = @until WHERE batch_id = @batch AND status = 'pending' AND owner = @owner AND lease_until > 0",
    ),
    renewRun: db.prepare<[{ batch: string; owner: string; until: number }]>(
      'UPDATE runs SET alive_until = @until WHERE batch_id = @batch AND owner = @owner',
    ),
    releaseOne: db.prepare<[{ batch: string; idx: number; token: number }]>(
      `UPDATE items SET lease_until = 0, owner = NULL
       WHERE batch_id = @batch AND idx = @idx AND ${itemRules.fenceAdmits}`,
    ),
    releaseOwner: db.prepare<[{ batch: string; owner: string }]>(
      "UPDATE items SET lease_until = 0, owner = NULL WHERE batch_id = @batch AND status = 'pending' AND owner = @owner",
    ),
    leaseOwners: db
      .prepare<[{ batch: string; now: number }], string>(
        `SELECT DISTINCT owner FROM items WHERE batch_id = @batch AND ${itemRules.leaseLive}`,
      )
      .pluck(),
    runsOf: db.prepare<[string], RunRow>(
      'SELECT owner, exclusive, alive_until AS aliveUntil FROM runs WHERE batch_id = ?',
    ),
    liveRuns: db.prepare<[{ batch: string; now: number }], RunRow & { startedAt: number }>(
      `SELECT owner, exclusive, started_at AS startedAt, alive_until AS aliveUntil FROM runs
       WHERE batch_id = @batch AND alive_until >= @now ORDER BY started_at, owner`,
    ),
    dropLapsedRuns: db.prepare<[string, number]>('DELETE FROM runs WHERE batch_id = ? AND alive_until < ?'),
    addRun: db.prepare<[string, string, number, number, number]>(
      'INSERT OR REPLACE INTO runs (batch_id, owner, exclusive, started_at, alive_until) VALUES (?, ?, ?, ?, ?)',
    ),
    dropRun: db.prepare<[string, string]>('DELETE FROM runs WHERE batch_id = ? AND owner = ?'),
  };
}

/**
 * The work queue in state.db. Claims, heartbeats, joins and leaves are BEGIN IMMEDIATE
 * transactions that read the clock once the write lock is held (time spent waiting for another
 * process does not shorten a lease); claims keep a per-batch cursor in this process.
 */
export class SqliteWorkQueue implements WorkQueue {
  readonly #s: SqliteBatchDb;
  readonly #stmts: ReturnType<typeof statements>;
  /** Where the next claim starts looking, per batch: claims walk the input once, not from the top each time. */
  readonly #cursor = new Map<string, number>();
  readonly #claimTx: Database.Transaction<
    (batchId: string, owner: string, leaseMs: number, limit: number) => ClaimRow[]
  >;
  readonly #heartbeatTx: Database.Transaction<(batchId: string, owner: string, leaseMs: number) => void>;
  readonly #joinTx: Database.Transaction<
    (batchId: string, owner: string, exclusive: boolean, aliveMs: number) => JoinOutcome
  >;
  readonly #leaveTx: Database.Transaction<(batchId: string, owner: string) => void>;

  constructor(shared: SqliteBatchDb) {
    this.#s = shared;
    const db = shared.db;
    const clock = shared.clock;
    const s = statements(db);
    this.#stmts = s;

    this.#claimTx = db.transaction((batchId: string, owner: string, leaseMs: number, limit: number) => {
      const now = clock.now();
      const claimFrom = (after: number): ClaimRow[] =>
        s.claim.all({ owner, until: now + leaseMs, now, batch: batchId, after, limit });
      const after = this.#cursor.get(batchId) ?? -1;
      // From the cursor first; then from the top, for items released or whose leases lapsed.
      const rows = claimFrom(after);
      return rows.length === 0 && after >= 0 ? claimFrom(-1) : rows;
    });
    this.#heartbeatTx = db.transaction((batchId: string, owner: string, leaseMs: number) => {
      const p = { batch: batchId, owner, until: clock.now() + leaseMs };
      s.renewRun.run(p);
      s.renewLeases.run(p);
    });
    // The exclusivity rule is rules.ts `runConflicts`, decided here on the rows this transaction read.
    this.#joinTx = db.transaction(
      (batchId: string, owner: string, exclusive: boolean, aliveMs: number): JoinOutcome => {
        const now = clock.now();
        s.dropLapsedRuns.run(batchId, now);
        const runs = s.runsOf.all(batchId).map((r) => ({ ...r, exclusive: r.exclusive === 1 }));
        const conflicts = runConflicts(runs, { owner, exclusive }, now);
        if (conflicts.length > 0) return { joined: false, conflicts };
        s.addRun.run(batchId, owner, exclusive ? 1 : 0, now, now + aliveMs);
        return { joined: true };
      },
    );
    this.#leaveTx = db.transaction((batchId: string, owner: string) => {
      s.releaseOwner.run({ batch: batchId, owner });
      s.dropRun.run(batchId, owner);
    });
  }

  async claim(batchId: string, owner: string, leaseMs: number, limit: number): Promise<ClaimedItem[]> {
    const rows = this.#claimTx.immediate(batchId, owner, leaseMs, limit);
    if (rows.length === 0) return [];
    rows.sort((x, y) => x.idx - y.idx);
    this.#cursor.set(batchId, rows[rows.length - 1]!.idx);
    return rows.map((row) => ({
      idx: row.idx,
      attempts: row.attempts,
      token: row.attempts,
      ...(JSON.parse(row.data) as ItemData),
    }));
  }

  async heartbeat(batchId: string, owner: string, leaseMs: number): Promise<void> {
    this.#heartbeatTx.immediate(batchId, owner, leaseMs);
  }

  async releaseItem(batchId: string, idx: number, token: number): Promise<void> {
    this.#s.afterQueued(() => this.#stmts.releaseOne.run({ batch: batchId, idx, token }));
  }

  async releaseLeases(batchId: string, owner: string): Promise<void> {
    this.#s.afterQueued(() => this.#stmts.releaseOwner.run({ batch: batchId, owner }));
  }

  async leaseOwners(batchId: string): Promise<string[]> {
    return this.#s.afterQueued(() =>
      this.#stmts.leaseOwners.all({ batch: batchId, now: this.#s.clock.now() }),
    );
  }

  async joinRun(
    batchId: string,
    owner: string,
    run: { exclusive: boolean; aliveMs: number },
  ): Promise<JoinOutcome> {
    return this.#joinTx.immediate(batchId, owner, run.exclusive, run.aliveMs);
  }

  /**
   * Synchronous underneath: the work is done before the promise is returned, which is what lets a
   * second Ctrl-C hand the leases back on its way to process.exit (see commands/process/open.ts).
   */
  async leaveRun(batchId: string, owner: string): Promise<void> {
    // After the queued outcomes: the run's last results are committed before its leases go.
    this.#s.afterQueued(() => this.#leaveTx.immediate(batchId, owner));
  }

  async runs(batchId: string): Promise<RunInfo[]> {
    return this.#stmts.liveRuns
      .all({ batch: batchId, now: this.#s.clock.now() })
      .map((r) => ({ ...r, exclusive: r.exclusive === 1 }));
  }
}
