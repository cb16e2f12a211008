import type { Db } from '../db/open.ts';
import { migrate } from '../db/open.ts';
import type { BatchRecord, BatchStatus } from './store.ts';

/**
 * The batch tables in state.db, numbered once and for all: a state.db written by any release opens
 * with its batches. The lease token of an item is its `attempts` column: every claim adds one and
 * nothing else changes it, so it is the growing counter fencing needs, with no new column.
 */
const migrations = [
  `CREATE TABLE batches (
     id TEXT PRIMARY KEY,
     input_name TEXT NOT NULL,
     input_digest TEXT NOT NULL,
     settings_hash TEXT NOT NULL,
     pipeline TEXT NOT NULL,
     stages TEXT NOT NULL,
     model TEXT NOT NULL,
     base_url TEXT NOT NULL,
     output_path TEXT,
     format TEXT NOT NULL,
     settings TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     status TEXT NOT NULL,
     total INTEGER NOT NULL DEFAULT 0,
     loader TEXT
   );
   CREATE TABLE runs (
     batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
     owner TEXT NOT NULL,
     exclusive INTEGER NOT NULL,
     started_at INTEGER NOT NULL,
     alive_until INTEGER NOT NULL,
     PRIMARY KEY (batch_id, owner)
   ) WITHOUT ROWID;
   CREATE TABLE items (
     batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
     idx INTEGER NOT NULL,
     data TEXT NOT NULL,
     status TEXT NOT NULL DEFAULT 'pending',
     stage_done INTEGER NOT NULL DEFAULT 0,
     owner TEXT,
     lease_until INTEGER NOT NULL DEFAULT 0,
     attempts INTEGER NOT NULL DEFAULT 0,
     error_kind TEXT,
     error TEXT,
     updated_at INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (batch_id, idx)
   ) WITHOUT ROWID;
   CREATE INDEX items_by_status ON items (batch_id, status, idx);
   -- A rowid table: job rows grow to a few KB when their result arrives, which WITHOUT ROWID
   -- tables handle poorly (updates measured 25% slower).
   CREATE TABLE jobs (
     batch_id TEXT NOT NULL,
     idx INTEGER NOT NULL,
     stage TEXT NOT NULL,
     status TEXT NOT NULL DEFAULT 'pending',
     attempts INTEGER NOT NULL DEFAULT 0,
     requests INTEGER NOT NULL DEFAULT 0,
     result TEXT,
     error_kind TEXT,
     error TEXT,
     prompt_tokens INTEGER NOT NULL DEFAULT 0,
     completion_tokens INTEGER NOT NULL DEFAULT 0,
     cached INTEGER NOT NULL DEFAULT 0,
     duration_ms INTEGER,
     finished_at INTEGER,
     PRIMARY KEY (batch_id, idx, stage),
     FOREIGN KEY (batch_id, idx) REFERENCES items(batch_id, idx) ON DELETE CASCADE
   );`,
  // A job's time on the wire, apart from its waits (limiter, breaker, backoff): `batches show`'s
  // request times were mostly limiter wait for a fast provider.
  'ALTER TABLE jobs ADD COLUMN request_ms INTEGER;',
];

/** Creates or updates the batch tables (idempotent; two processes starting together apply each step once). */
export function migrateBatches(db: Db): void {
  migrate(db, 'batch', migrations);
}

export interface BatchRow {
  id: string;
  input_name: string;
  input_digest: string;
  settings_hash: string;
  pipeline: string;
  stages: string;
  model: string;
  base_url: string;
  output_path: string | null;
  format: string;
  settings: string;
  created_at: number;
  updated_at: number;
  status: BatchStatus;
  total: number;
  loader: string | null;
}

export function toBatch(row: BatchRow): BatchRecord {
  return {
    id: row.id,
    inputName: row.input_name,
    inputDigest: row.input_digest,
    settingsHash: row.settings_hash,
    pipeline: row.pipeline,
    stages: JSON.parse(row.stages) as string[],
    model: row.model,
    baseUrl: row.base_url,
    outputPath: row.output_path,
    format: row.format,
    settings: JSON.parse(row.settings) as Record<string, unknown>,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    status: row.status,
    total: row.total,
    loader: row.loader,
  };
}

/**
 * SQL for rules.ts over an `items` row, so every statement states a rule the same way (the
 * conformance suite holds the backend to the functions).
 */
export const itemRules = {
  /** rules.ts `claimable`, with the parameter @now. */
  claimable: "status = 'pending' AND lease_until < @now",
  /** rules.ts `leaseLive`, with the parameter @now. */
  leaseLive: "status = 'pending' AND owner IS NOT NULL AND lease_until >= @now",
  /** rules.ts `fenceAdmits`, with the parameter @token (the lease token is the `attempts` column). */
  fenceAdmits: "status = 'pending' AND attempts = @token",
} as const;
