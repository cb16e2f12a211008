import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunOutcome } from '../batch/runner.ts';
import type { BatchRecord, BatchResults, ClaimedItem, JobOutcome, WorkQueue } from '../batch/store.ts';
import { type ChatRequest, chatRequestBody, parseCompletion } from '../client/chat-client.ts';
import type { Clock } from '../core/clock.ts';
import { errorMessage, FlashcardsError, isFlashcardsError, isProviderError } from '../core/errors.ts';
import { executeJob, type JobContext } from '../job/execute.ts';
import { isStopping, sleepOrStop } from '../job/stop.ts';
import { repairRequest } from '../job/validation.ts';
import type { Pipeline, Stage } from '../pipeline/types.ts';
import { validateAnswer } from '../pipeline/validate.ts';
import {
  type BatchApiAdapter,
  FINAL_STATES,
  type RemoteBatch,
  type RequestLine,
  type ResultLine,
  type SubmissionLimits,
} from './adapter.ts';
import { ENQUEUED_LIMIT_PATTERN } from './openai.ts';
import { isOpen, type JobFailures, jobKey, type Submission, type SubmissionStore } from './submissions.ts';

/**
 * `process --batch-api`: one pass collects whatever the provider finished, then submits whatever
 * is ready (a stage only once the stage before it is in), then the command exits 75 while work is
 * out with the provider, 0 once the batch is complete. `--wait` repeats the pass at growing
 * intervals until then. Answers are joined to their jobs by `custom_id`, checked against the
 * stage's schema as synchronous answers are, and put in the response cache (a later synchronous
 * run pays nothing); a failed line goes into the next submission (with the repair request for a
 * rejected answer) until --max-attempts, or to an ordinary request with `--fallback sync`.
 */

export interface BatchApiRunOptions {
  batch: BatchRecord;
  queue: WorkQueue;
  results: BatchResults;
  submissions: SubmissionStore;
  adapter: BatchApiAdapter;
  pipeline: Pipeline;
  /** The run's job context: model, parameters, cache, events, counters, stop, and the policies for --fallback sync. */
  job: JobContext;
  owner: string;
  clock: Clock;
  /** Where output and error files are saved before they are parsed. */
  rawDir: string;
  maxAttempts: number;
  limits: SubmissionLimits;
  fallback: 'none' | 'sync';
  /** Poll until the batch is complete instead of exiting 75. */
  wait: boolean;
  /** First poll interval of --wait (grows by half each time, up to a minute). */
  pollMs?: number;
  /** Told of each remote batch's state after every pass (the terminal display). */
  onStatus?: (out: readonly Submission[]) => void;
}

export type BatchApiOutcome = RunOutcome;

/** Leases are held for one pass; a pass that takes longer than this (a huge download) renews them. */
const PASS_LEASE_MS = 10 * 60_000;
const MAX_POLL_MS = 60_000;

export async function runBatchApi(o: BatchApiRunOptions): Promise<BatchApiOutcome> {
  let pollMs = o.pollMs ?? 2000;
  let submittedLines = 0;
  for (;;) {
    const pass = await onePass(o);
    submittedLines += pass.submittedLines;
    const counts = await o.results.counts(o.batch.id);
    const out = (await o.submissions.list(o.batch.id)).filter(isOpen);
    o.onStatus?.(out);
    if (pass.stopped) return { status: 'stopped', reason: pass.stopped, counts };
    if (counts.pending === 0) return { status: 'complete', counts };
    if (out.length === 0 && pass.submittedLines === 0) {
      return {
        status: 'stopped',
        counts,
        reason: new FlashcardsError(
          'internal',
          `${counts.pending} item(s) are pending, yet none could be submitted and none is with the provider`,
        ),
      };
    }
    if (!o.wait) return { status: 'waiting', counts, out: out.length, submittedLines };
    try {
      await sleepOrStop(o.job.stop, pollMs);
    } catch {
      // Stopped while waiting: what is out stays out; the next run collects it.
    }
    if (isStopping(o.job.stop)) return { status: 'waiting', counts, out: out.length, submittedLines };
    pollMs = Math.min(MAX_POLL_MS, Math.round(pollMs * 1.5));
  }
}

interface Pass {
  submittedLines: number;
  stopped: FlashcardsError | undefined;
}

async function onePass(o: BatchApiRunOptions): Promise<Pass> {
  const { batch, queue } = o;
  const claimed = new Map<number, ClaimedItem>();
  // This run holds the batch alone (--lock): leases of anyone else are a killed run's leftovers.
  for (const other of await queue.leaseOwners(batch.id)) {
    if (other !== o.owner) await queue.releaseLeases(batch.id, other);
  }
  for (;;) {
    const got = await queue.claim(batch.id, o.owner, PASS_LEASE_MS, 512);
    if (got.length === 0) break;
    for (const item of got) claimed.set(item.idx, item);
  }
  try {
    const failures = await o.submissions.failures(batch.id);
    const syncJobs: { item: ClaimedItem; stage: Stage }[] = [];
    for (const s of (await o.submissions.list(batch.id)).filter(isOpen)) {
      await advance(o, s, claimed, failures);
    }
    const out = new Set(
      (await o.submissions.list(batch.id))
        .filter(isOpen)
        .flatMap((s) => s.jobs.map((j) => jobKey(j.idx, j.stage))),
    );
    const ready = new Map<string, { stage: Stage; lines: RequestLine[] }>();
    for (const item of [...claimed.values()].sort((a, b) => a.idx - b.idx)) {
      const next = await nextRequest(o, item, out, failures);
      if (next === undefined) continue;
      if ('sync' in next) {
        syncJobs.push({ item, stage: next.sync });
        continue;
      }
      const group = ready.get(next.stage.name) ?? { stage: next.stage, lines: [] };
      group.lines.push(next.line);
      ready.set(next.stage.name, group);
    }
    if (syncJobs.length > 0) await runSync(o, syncJobs);
    let submittedLines = 0;
    for (const { stage, lines } of ready.values()) {
      for (const chunk of chunks(lines, o.limits)) {
        if (isStopping(o.job.stop)) break;
        const made = await submit(o, stage, chunk);
        if (!made) return { submittedLines, stopped: undefined };
        submittedLines += chunk.length;
      }
    }
    return { submittedLines, stopped: undefined };
  } catch (e) {
    // The provider refused the key, is not there, or has no batch API: the run stops with its error.
    if (isFlashcardsError(e)) return { submittedLines: 0, stopped: e };
    throw e;
  } finally {
    await queue.releaseLeases(batch.id, o.owner);
  }
}

/** Moves a submission on from the step it was left in: found again, created, polled, collected. */
async function advance(
  o: BatchApiRunOptions,
  s: Submission,
  claimed: ReadonlyMap<number, ClaimedItem>,
  failures: Map<string, JobFailures>,
): Promise<void> {
  const signal = o.job.stop.signal;
  const save = async (change: Partial<Submission>): Promise<void> => {
    Object.assign(s, change, { updatedAt: o.clock.now() });
    await o.submissions.save(s);
  };
  const tell = (action: 'found' | 'abandoned' | 'refused' | 'polled' | 'collected', extra: object = {}) =>
    o.job.events.emit({
      type: 'batch_api',
      batchId: s.batchId,
      action,
      stage: s.stage,
      tag: s.tag,
      ...extra,
    });
  if (s.state === 'uploading') {
    // Killed while uploading: the file may or may not have arrived.
    const fileId = await o.adapter.findUpload(s.fileName, signal);
    if (fileId === undefined) {
      await save({ state: 'abandoned' });
      tell('abandoned', { detail: 'its upload never arrived' });
      return;
    }
    await save({ state: 'uploaded', fileId });
    tell('found', { detail: `file ${fileId}` });
  }
  if (s.state === 'uploaded' && s.fileId !== undefined) {
    // Killed (or refused) between the upload and the batch: find the batch by its tag, or make it now.
    let remote = await o.adapter.findBatch(s.tag, signal);
    if (remote) tell('found', { remoteId: remote.id });
    else {
      remote = await create(o, s);
      if (!remote) return;
    }
    await save({ state: 'created', remoteId: remote.id, remoteState: remote.state, counts: remote.counts });
  }
  if (s.state !== 'created' || s.remoteId === undefined) return;
  const remote = await o.adapter.status(s.remoteId, signal);
  await save({ remoteState: remote.state, counts: remote.counts, error: remote.errors });
  tell('polled', { remoteId: remote.id, state: remote.state, counts: remote.counts });
  if (!FINAL_STATES.has(remote.state)) return;
  const { answered, failed } = await collect(o, s, remote, claimed, failures);
  await save({ state: 'collected' });
  tell('collected', { remoteId: remote.id, state: remote.state, answered, failed });
}

/** Creates the remote batch over an uploaded file; undefined when the provider says not now. */
async function create(o: BatchApiRunOptions, s: Submission): Promise<RemoteBatch | undefined> {
  try {
    return await o.adapter.create(
      s.fileId ?? '',
      { flashcards_tag: s.tag, flashcards_batch: s.batchId, flashcards_stage: s.stage },
      o.job.stop.signal,
    );
  } catch (e) {
    // An enqueued-tokens limit (or any 429): the file waits for the next run, the breaker is not told.
    if (isProviderError(e) && e.kind === 'rate_limit') {
      s.error = e.message;
      s.updatedAt = o.clock.now();
      await o.submissions.save(s);
      o.job.events.emit({
        type: 'batch_api',
        batchId: s.batchId,
        action: 'refused',
        stage: s.stage,
        tag: s.tag,
        detail: e.message,
      });
      return undefined;
    }
    throw e;
  }
}

/** Reads a finished remote batch's files (saved first) and settles each of its jobs. */
async function collect(
  o: BatchApiRunOptions,
  s: Submission,
  remote: RemoteBatch,
  claimed: ReadonlyMap<number, ClaimedItem>,
  failures: Map<string, JobFailures>,
): Promise<{ answered: number; failed: number }> {
  const lines = new Map<string, ResultLine>();
  mkdirSync(o.rawDir, { recursive: true });
  for (const [kind, fileId] of [
    ['error', remote.errorFileId],
    ['output', remote.outputFileId],
  ] as const) {
    if (fileId === undefined) continue;
    const text = await o.adapter.download(fileId, o.job.stop.signal);
    writeFileSync(join(o.rawDir, `${remote.id}-${kind}.jsonl`), text);
    for (const line of o.adapter.parseResults(text).lines) lines.set(line.customId, line);
  }
  const stages = o.pipeline.stages;
  let answered = 0;
  let failed = 0;
  for (const job of s.jobs) {
    const item = claimed.get(job.idx);
    const stage = stages.find((st) => st.name === job.stage);
    if (!item || !stage) continue;
    // Collected before (a run killed after writing some results): settled once.
    const done = await o.results.results(o.batch.id, job.idx);
    if (job.stage in done) continue;
    const line = lines.get(job.customId);
    const outcome = (usage = { promptTokens: 0, completionTokens: 0 }): JobOutcome => ({
      batchId: o.batch.id,
      idx: job.idx,
      stage: job.stage,
      token: item.token,
      attempts: 1,
      requests: line ? 1 : 0,
      ...usage,
      cached: false,
      durationMs: Math.max(0, o.clock.now() - s.createdAt),
      requestMs: 0,
    });
    if (line && line.statusCode === 200) {
      let problem: { detail: string; rejected?: string } | undefined;
      try {
        const parsed = parseCompletion(JSON.stringify(line.body), () => 0);
        const checked = validateAnswer(stage, parsed.content);
        if (checked.ok) {
          const last = stage === stages[stages.length - 1];
          o.job.counters.requests++;
          await o.results.completeJob(outcome(parsed.usage), checked.value, last);
          try {
            // Keyed by the plain request: a repair request's answer answers it too.
            await o.job.cache?.put(o.job.cacheKey(stage, stage.buildMessages({ item, previous: done })), {
              body: parsed.content,
              model: o.job.model,
              term: item.term,
              stage: stage.name,
            });
          } catch {
            // The result is stored with the job; a cache that cannot be written costs a later re-run only.
          }
          answered++;
          continue;
        }
        problem = { detail: checked.detail, rejected: parsed.content };
      } catch (e) {
        problem = { detail: errorMessage(e) };
      }
      o.job.counters.requests++;
      failed++;
      await noteFailure(o, item, stage, failures, outcome(), problem.detail, problem.rejected);
      continue;
    }
    // An expired or cancelled batch keeps what it finished; the rest goes again without counting,
    // as does a batch the provider failed for its queue being full (OpenAI: token_limit_exceeded).
    if (!line && (remote.state === 'expired' || remote.state === 'cancelled' || queueWasFull(remote)))
      continue;
    failed++;
    if (line) o.job.counters.requests++;
    const detail = line
      ? `${line.statusCode ? `HTTP ${line.statusCode}` : 'error'}${line.error ? `: ${line.error.message}` : ''}`
      : remote.state === 'failed'
        ? `the provider failed the whole batch${remote.errors ? `: ${remote.errors}` : ''}`
        : "missing from the provider's output and error files";
    await noteFailure(o, item, stage, failures, outcome(), detail, undefined);
  }
  return { answered, failed };
}

/** A batch failed as a whole because the provider's queue of enqueued tokens was full: not the lines' fault. */
function queueWasFull(remote: RemoteBatch): boolean {
  return (
    remote.state === 'failed' && remote.errors !== undefined && ENQUEUED_LIMIT_PATTERN.test(remote.errors)
  );
}

/** One more failed attempt at the provider; the job fails when it has had --max-attempts (unless --fallback sync). */
async function noteFailure(
  o: BatchApiRunOptions,
  item: ClaimedItem,
  stage: Stage,
  failures: Map<string, JobFailures>,
  outcome: JobOutcome,
  detail: string,
  rejected: string | undefined,
): Promise<void> {
  const key = jobKey(item.idx, stage.name);
  const before = failures.get(key);
  const f: JobFailures = {
    count: (before?.count ?? 0) + 1,
    lastError: detail,
    rejected: rejected === undefined ? before?.rejected : { content: rejected, detail },
  };
  failures.set(key, f);
  await o.submissions.saveFailures(o.batch.id, key, f);
  if (f.count >= o.maxAttempts && o.fallback === 'none') {
    await o.results.failJob(
      { ...outcome, attempts: f.count },
      'batch_api',
      `${detail} (after ${f.count} attempt(s) through the batch API)`,
    );
  }
}

type Next = { stage: Stage; line: RequestLine } | { sync: Stage } | undefined;

/** The next request of an item: its first stage not done, unless that one is out or answered from the cache. */
async function nextRequest(
  o: BatchApiRunOptions,
  item: ClaimedItem,
  out: ReadonlySet<string>,
  failures: ReadonlyMap<string, JobFailures>,
): Promise<Next> {
  const results = item.attempts > 1 ? { ...(await o.results.results(o.batch.id, item.idx)) } : {};
  const stages = o.pipeline.stages;
  for (const stage of stages) {
    if (stage.name in results) continue;
    const key = jobKey(item.idx, stage.name);
    if (out.has(key)) return undefined;
    const f = failures.get(key);
    if (f && f.count >= o.maxAttempts) return o.fallback === 'sync' ? { sync: stage } : undefined;
    const request = requestOf(o, stage, item, results, f);
    if (o.job.cacheMode === 'normal' && o.job.cache) {
      const hit = await cachedAnswer(o, stage, request.messages);
      if (hit !== undefined) {
        o.job.counters.cacheHits++;
        await o.results.completeJob(
          {
            batchId: o.batch.id,
            idx: item.idx,
            stage: stage.name,
            token: item.token,
            attempts: 0,
            requests: 0,
            promptTokens: 0,
            completionTokens: 0,
            cached: true,
            durationMs: 0,
            requestMs: 0,
          },
          hit,
          stage === stages[stages.length - 1],
        );
        results[stage.name] = hit;
        continue;
      }
      o.job.counters.cacheMisses++;
    }
    const attempt = (f?.count ?? 0) + 1;
    return {
      stage,
      line: { customId: `${item.idx}:${stage.name}:${attempt}`, body: chatRequestBody(request) },
    };
  }
  return undefined;
}

function requestOf(
  o: BatchApiRunOptions,
  stage: Stage,
  item: ClaimedItem,
  previous: Readonly<Record<string, unknown>>,
  failures: JobFailures | undefined,
): ChatRequest {
  const request: ChatRequest = {
    model: o.job.model,
    messages: stage.buildMessages({ item, previous }),
    responseFormat: stage.responseFormat,
    temperature: o.job.temperature,
    maxTokens: o.job.maxTokens,
  };
  // A rejected answer comes back with the reason, as the synchronous repair retry does.
  return failures?.rejected
    ? repairRequest(request, failures.rejected.content, failures.rejected.detail)
    : request;
}

async function cachedAnswer(o: BatchApiRunOptions, stage: Stage, messages: ChatRequest['messages']) {
  try {
    const hit = await o.job.cache?.get(o.job.cacheKey(stage, messages), { allowStale: false });
    if (!hit) return undefined;
    const checked = validateAnswer(stage, hit.body);
    return checked.ok ? checked.value : undefined;
  } catch {
    return undefined;
  }
}

/** Splits request lines by the provider's limits per file (lines and bytes of JSONL). */
export function chunks(lines: readonly RequestLine[], limits: SubmissionLimits): RequestLine[][] {
  const out: RequestLine[][] = [];
  let current: RequestLine[] = [];
  let bytes = 0;
  for (const line of lines) {
    // The line as the adapter writes it, and its newline.
    const size =
      Buffer.byteLength(
        JSON.stringify({
          custom_id: line.customId,
          method: 'POST',
          url: '/v1/chat/completions',
          body: line.body,
        }),
      ) + 1;
    if (current.length > 0 && (current.length >= limits.maxRequests || bytes + size > limits.maxBytes)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(line);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** Uploads one file and creates its batch, each step saved before the next; false when the provider said "not now". */
async function submit(o: BatchApiRunOptions, stage: Stage, lines: RequestLine[]): Promise<boolean> {
  const tag = randomUUID();
  const now = o.clock.now();
  const s: Submission = {
    tag,
    batchId: o.batch.id,
    stage: stage.name,
    state: 'uploading',
    fileName: `flashcards-${o.batch.id}-${stage.name}-${tag}.jsonl`,
    jobs: lines.map((l) => {
      const [idx = '0', name = stage.name] = l.customId.split(':');
      return { idx: Number(idx), stage: name, customId: l.customId };
    }),
    bytes: lines.reduce((n, l) => n + JSON.stringify(l.body).length, 0),
    createdAt: now,
    updatedAt: now,
  };
  await o.submissions.save(s);
  const fileId = await o.adapter.upload(s.fileName, lines, o.job.stop.signal);
  Object.assign(s, { state: 'uploaded', fileId, updatedAt: o.clock.now() });
  await o.submissions.save(s);
  const remote = await create(o, s);
  if (!remote) return false;
  Object.assign(s, {
    state: 'created',
    remoteId: remote.id,
    remoteState: remote.state,
    counts: remote.counts,
    updatedAt: o.clock.now(),
  });
  await o.submissions.save(s);
  o.job.events.emit({
    type: 'batch_api',
    batchId: o.batch.id,
    action: 'submitted',
    stage: stage.name,
    tag,
    remoteId: remote.id,
    lines: lines.length,
  });
  return true;
}

/** --fallback sync: jobs the batch API failed --max-attempts times go as ordinary requests. */
async function runSync(o: BatchApiRunOptions, jobs: { item: ClaimedItem; stage: Stage }[]): Promise<void> {
  const stages = o.pipeline.stages;
  for (const { item, stage } of jobs) {
    if (isStopping(o.job.stop)) return;
    const previous = await o.results.results(o.batch.id, item.idx);
    const started = o.clock.now();
    const result = await executeJob(o.job, stage, { item, previous }, item.idx);
    const outcome: JobOutcome = {
      batchId: o.batch.id,
      idx: item.idx,
      stage: stage.name,
      token: item.token,
      attempts: result.attempts,
      requests: result.requests,
      promptTokens: result.ok ? result.usage.promptTokens : 0,
      completionTokens: result.ok ? result.usage.completionTokens : 0,
      cached: result.ok && result.cached,
      durationMs: o.clock.now() - started,
      requestMs: result.requestMs,
    };
    if (result.ok) await o.results.completeJob(outcome, result.value, stage === stages[stages.length - 1]);
    else await o.results.failJob(outcome, result.error.kind, result.error.message);
  }
}
