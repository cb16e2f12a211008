import type { Db } from '../db/open.ts';
import { migrate } from '../db/open.ts';
import type { RedisConnection } from '../store/redis/connection.ts';

/**
 * What a batch sent to a provider's batch API, step by step, so that no run submits twice or
 * loses a result: a submission is saved as `uploading` before its file goes up, `uploaded` with
 * the file's id once it is there, `created` with the remote batch's id once that exists, and
 * `collected` once its answers are in the batch's results (`abandoned`: its upload never
 * happened). A run killed between two steps leaves the step it was in, and the next run finds the
 * work by the file's name or the batch's `flashcards_tag`.
 *
 * Beside them, each job's failed attempts at the provider (how many, the last error, and the
 * rejected answer the repair request quotes), since a job's attempts span several runs.
 */

export type SubmissionState = 'uploading' | 'uploaded' | 'created' | 'collected' | 'abandoned';

export interface SubmittedJob {
  idx: number;
  stage: string;
  customId: string;
}

export interface Submission {
  /** Random; the remote batch's `metadata.flashcards_tag`, and part of the file name. */
  tag: string;
  batchId: string;
  stage: string;
  state: SubmissionState;
  fileName: string;
  fileId?: string | undefined;
  remoteId?: string | undefined;
  /** The provider's word for the remote batch (`in_progress`, `completed`...) when last asked. */
  remoteState?: string | undefined;
  counts?: { total: number; completed: number; failed: number } | undefined;
  jobs: SubmittedJob[];
  bytes: number;
  createdAt: number;
  updatedAt: number;
  /** When the provider refused it or failed it as a whole. */
  error?: string | undefined;
  /** Times the provider refused to create it for a full queue (429, enqueued tokens). */
  refusals?: number | undefined;
  /** Dropped after too many refusals: the files that replace it hold at most this many lines. */
  splitTo?: number | undefined;
}

export interface JobFailures {
  count: number;
  lastError: string;
  /** The rejected answer and why, for the repair request of the next attempt. */
  rejected?: { content: string; detail: string } | undefined;
}

export interface SubmissionStore {
  list(batchId: string): Promise<Submission[]>;
  save(submission: Submission): Promise<void>;
  /** Failed attempts by job (`idx:stage`). */
  failures(batchId: string): Promise<Map<string, JobFailures>>;
  saveFailures(batchId: string, job: string, failures: JobFailures): Promise<void>;
  /** Forgets a batch's submissions (`batches rm`). */
  remove(batchId: string): Promise<void>;
}

export const jobKey = (idx: number, stage: string): string => `${idx}:${stage}`;

/** The submissions still with the provider (or on their way to it). */
export function isOpen(s: Submission): boolean {
  return s.state === 'uploading' || s.state === 'uploaded' || s.state === 'created';
}

const migrations = [
  `CREATE TABLE batch_api_submissions (
     batch_id TEXT NOT NULL,
     tag TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     doc TEXT NOT NULL,
     PRIMARY KEY (batch_id, tag)
   ) WITHOUT ROWID;
   CREATE TABLE batch_api_failures (
     batch_id TEXT NOT NULL,
     job TEXT NOT NULL,
     doc TEXT NOT NULL,
     PRIMARY KEY (batch_id, job)
   ) WITHOUT ROWID;`,
];

/** On state.db; each save is its own commit (a step must be on disk before the next one starts). */
export function sqliteSubmissionStore(db: Db): SubmissionStore {
  migrate(db, 'batch_api', migrations);
  const list = db.prepare(
    'SELECT doc FROM batch_api_submissions WHERE batch_id = ? ORDER BY created_at, tag',
  );
  const save = db.prepare(
    'INSERT INTO batch_api_submissions (batch_id, tag, created_at, doc) VALUES (?, ?, ?, ?) ON CONFLICT(batch_id, tag) DO UPDATE SET doc = excluded.doc',
  );
  const failures = db.prepare('SELECT job, doc FROM batch_api_failures WHERE batch_id = ?');
  const saveFailure = db.prepare(
    'INSERT INTO batch_api_failures (batch_id, job, doc) VALUES (?, ?, ?) ON CONFLICT(batch_id, job) DO UPDATE SET doc = excluded.doc',
  );
  return {
    list: async (batchId) =>
      (list.all(batchId) as { doc: string }[]).map((r) => JSON.parse(r.doc) as Submission),
    save: async (s) => {
      save.run(s.batchId, s.tag, s.createdAt, JSON.stringify(s));
    },
    failures: async (batchId) =>
      new Map(
        (failures.all(batchId) as { job: string; doc: string }[]).map((r) => [
          r.job,
          JSON.parse(r.doc) as JobFailures,
        ]),
      ),
    saveFailures: async (batchId, job, f) => {
      saveFailure.run(batchId, job, JSON.stringify(f));
    },
    remove: async (batchId) => {
      db.prepare('DELETE FROM batch_api_submissions WHERE batch_id = ?').run(batchId);
      db.prepare('DELETE FROM batch_api_failures WHERE batch_id = ?').run(batchId);
    },
  };
}

/** On Redis: two hashes per batch under the batch's hash tag (one slot on a cluster). */
export function redisSubmissionStore(conn: RedisConnection, o: { prefix: string }): SubmissionStore {
  // The batch's own hash tag (redis-db.ts `key`): its submissions share its slot.
  const keys = (batchId: string) => {
    const tag = `${o.prefix}{b:${batchId.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}}`;
    return { subs: `${tag}:api-subs`, failures: `${tag}:api-failures` };
  };
  return {
    list: async (batchId) =>
      Object.values(await conn.hgetall(keys(batchId).subs))
        .map((doc) => JSON.parse(doc) as Submission)
        .sort((a, b) => a.createdAt - b.createdAt || a.tag.localeCompare(b.tag)),
    save: async (s) => {
      await conn.hset(keys(s.batchId).subs, s.tag, JSON.stringify(s));
    },
    failures: async (batchId) =>
      new Map(
        Object.entries(await conn.hgetall(keys(batchId).failures)).map(([job, doc]) => [
          job,
          JSON.parse(doc) as JobFailures,
        ]),
      ),
    saveFailures: async (batchId, job, f) => {
      await conn.hset(keys(batchId).failures, job, JSON.stringify(f));
    },
    remove: async (batchId) => {
      const k = keys(batchId);
      await conn.del(k.subs, k.failures);
    },
  };
}
