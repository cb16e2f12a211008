import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jobOutcome, LEASE_MS, type RunOutcome } from '../batch/runner.ts';
import type { BatchRecord, BatchResults, ClaimedItem, JobOutcome, WorkQueue } from '../batch/store.ts';
import { type ChatRequest, chatRequestBody, parseCompletion } from '../client/chat-client.ts';
import type { Clock } from '../core/clock.ts';
import { errorMessage, FlashcardsError, isFlashcardsError, isProviderError } from '../core/errors.ts';
import { executeJob, type JobContext } from '../job/execute.ts';
import { isStopping, sleepOrStop, stoppedError } from '../job/stop.ts';
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

/** Leases are taken for one pass, and renewed with the run's registration while it lasts. */
const PASS_LEASE_MS = 10 * 60_000;
/** How often the run's registration (--lock) and its leases are renewed, as the runner does. */
const HEARTBEAT_MS = 10_000;
const MAX_POLL_MS = 60_000;
/** Refusals for a full queue, with nothing else of the batch out, before a file is split in two. */
const REFUSALS_BEFORE_SPLIT = 2;

export async function runBatchApi(o: BatchApiRunOptions): Promise<BatchApiOutcome> {
  // The registration --lock relies on lapses after LEASE_MS unless renewed: renew it (and the
  // leases) for the whole run, --wait's sleeps included, so no second run gets in meanwhile.
  const stopHeartbeat = o.clock.timer(
    HEARTBEAT_MS,
    () => {
      o.queue.heartbeat(o.batch.id, o.owner, LEASE_MS).catch(() => {
        // A missed renewal is retried on the next tick; the registration outlives several.
      });
    },
    { repeat: true },
  );
  try {
    return await passes(o);
  } finally {
    stopHeartbeat();
  }
}

async function passes(o: BatchApiRunOptions): Promise<BatchApiOutcome> {
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
    if (isStopping(o.job.stop) && out.length === 0) {
      return { status: 'stopped', reason: stoppedError(o.job.stop), counts };
    }
    // Nothing out, nothing sent, nothing settled: a pass that would repeat itself forever.
    if (out.length === 0 && pass.submittedLines === 0 && !pass.settled) {
      return {
        status: 'stopped',
        counts,
        reason: new FlashcardsError(
          'internal',
          `${counts.pending} item(s) are pending, yet none could be submitted and none is with the provider`,
        ),
      };
    }
    if (!o.wait && out.length > 0) return { status: 'waiting', counts, out: out.length, submittedLines };
    // Settled here without anything out (cache hits, --fallback sync): the next pass goes at once.
    if (out.length > 0) {
      try {
        await sleepOrStop(o.job.stop, pollMs);
      } catch {
        // Stopped while waiting: what is out stays out; the next run collects it.
      }
      if (isStopping(o.job.stop)) return { status: 'waiting', counts, out: out.length, submittedLines };
      pollMs = Math.min(MAX_POLL_MS, Math.round(pollMs * 1.5));
    }
  }
}

interface Pass {
  submittedLines: number;
  /** Jobs settled in this pass (answers collected, cache hits, ordinary requests, failures). */
  settled: boolean;
  stopped: FlashcardsError | undefined;
}

/** What a pass learns while it advances the submissions. */
interface PassState {
  claimed: ReadonlyMap<number, ClaimedItem>;
  failures: Map<string, JobFailures>;
  /** Items failed in this pass: nothing more is asked for them. */
  failedNow: Set<number>;
  settled: boolean;
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
    const st: PassState = {
      claimed,
      failures: await o.submissions.failures(batch.id),
      failedNow: new Set(),
      settled: false,
    };
    for (const s of (await o.submissions.list(batch.id)).filter(isOpen)) {
      await advance(o, s, st);
    }
    const all = await o.submissions.list(batch.id);
    const out = new Set(all.filter(isOpen).flatMap((s) => s.jobs.map((j) => jobKey(j.idx, j.stage))));
    // A file split for a full queue: its successors are no bigger than half of it.
    const splitTo = Math.min(...all.map((s) => s.splitTo ?? Number.POSITIVE_INFINITY));
    const limits = { ...o.limits, maxRequests: Math.min(o.limits.maxRequests, splitTo) };
    const ready = new Map<string, { stage: Stage; lines: RequestLine[] }>();
    for (const item of [...claimed.values()].sort((a, b) => a.idx - b.idx)) {
      if (st.failedNow.has(item.idx) || isStopping(o.job.stop)) continue;
      const next = await nextRequest(o, item, out, st);
      if (next === undefined) continue;
      const group = ready.get(next.stage.name) ?? { stage: next.stage, lines: [] };
      group.lines.push(next.line);
      ready.set(next.stage.name, group);
    }
    let submittedLines = 0;
    for (const { stage, lines } of ready.values()) {
      for (const chunk of chunks(lines, limits)) {
        if (isStopping(o.job.stop)) break;
        const made = await submit(o, stage, chunk);
        submittedLines += chunk.length;
        if (!made) return { submittedLines, settled: st.settled, stopped: undefined };
      }
    }
    return { submittedLines, settled: st.settled, stopped: undefined };
  } catch (e) {
    // The provider refused the key, is not there, or has no batch API: the run stops with its error.
    if (isFlashcardsError(e)) return { submittedLines: 0, settled: false, stopped: e };
    throw e;
  } finally {
    await queue.releaseLeases(batch.id, o.owner);
  }
}

/** A provider's refusal that will not change by asking again: a 4xx other than auth and 429. */
function isPermanent(e: unknown): boolean {
  return (
    isProviderError(e) &&
    e.status !== undefined &&
    e.status >= 400 &&
    e.status < 500 &&
    ![401, 403, 408, 409, 429].includes(e.status)
  );
}

/** Moves a submission on from the step it was left in: found again, created, polled, collected. */
async function advance(o: BatchApiRunOptions, s: Submission, st: PassState): Promise<void> {
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
  // The provider will never take this submission (its file is gone or refused, the batch is
  // unknown): its jobs go again in a new one, each counting an attempt.
  const giveUp = async (e: unknown): Promise<void> => {
    await save({ state: 'abandoned', error: errorMessage(e) });
    tell('abandoned', { remoteId: s.remoteId, detail: errorMessage(e) });
    await failAll(o, s, st, errorMessage(e));
  };
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
      try {
        remote = await create(o, s);
      } catch (e) {
        if (!isPermanent(e)) throw e;
        return giveUp(e);
      }
      if (!remote) return splitIfStuck(o, s, st);
    }
    await save({ state: 'created', remoteId: remote.id, remoteState: remote.state, counts: remote.counts });
  }
  if (s.state !== 'created' || s.remoteId === undefined) return;
  let remote: RemoteBatch;
  try {
    remote = await o.adapter.status(s.remoteId, signal);
  } catch (e) {
    if (!isPermanent(e)) throw e;
    return giveUp(e);
  }
  await save({ remoteState: remote.state, counts: remote.counts, error: remote.errors });
  tell('polled', { remoteId: remote.id, state: remote.state, counts: remote.counts });
  if (!FINAL_STATES.has(remote.state)) return;
  const { answered, failed } = await collect(o, s, remote, st);
  await save({ state: 'collected' });
  st.settled = true;
  tell('collected', { remoteId: remote.id, state: remote.state, answered, failed });
}

/**
 * A file the provider keeps refusing for a full queue while nothing else of the batch is out
 * would be refused forever: after a few refusals it is dropped and its jobs go again in files
 * half its size; a single request refused so is that job's failure.
 */
async function splitIfStuck(o: BatchApiRunOptions, s: Submission, st: PassState): Promise<void> {
  if ((s.refusals ?? 0) < REFUSALS_BEFORE_SPLIT) return;
  const others = (await o.submissions.list(s.batchId)).some((x) => x.tag !== s.tag && x.state === 'created');
  if (others) return;
  const splitTo = Math.max(1, Math.ceil(s.jobs.length / 2));
  Object.assign(s, { state: 'abandoned', splitTo, updatedAt: o.clock.now() });
  await o.submissions.save(s);
  o.job.events.emit({
    type: 'batch_api',
    batchId: s.batchId,
    action: 'abandoned',
    stage: s.stage,
    tag: s.tag,
    detail: `refused ${s.refusals} times for a full queue; its ${s.jobs.length} request(s) go again in files of at most ${splitTo}`,
  });
  if (s.jobs.length === 1) await failAll(o, s, st, s.error ?? 'refused for a full queue');
}

/** Counts an attempt for every job of a submission that came to nothing. */
async function failAll(o: BatchApiRunOptions, s: Submission, st: PassState, detail: string): Promise<void> {
  for (const job of s.jobs) {
    const item = st.claimed.get(job.idx);
    const stage = o.pipeline.stages.find((x) => x.name === job.stage);
    if (!item || !stage) continue;
    await noteFailure(
      o,
      st,
      item,
      stage,
      job.customId,
      baseOutcome(o, item, job.stage, s),
      detail,
      undefined,
    );
  }
  st.settled = true;
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
      s.refusals = (s.refusals ?? 0) + 1;
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

function baseOutcome(o: BatchApiRunOptions, item: ClaimedItem, stage: string, s: Submission): JobOutcome {
  return {
    batchId: o.batch.id,
    idx: item.idx,
    stage,
    token: item.token,
    attempts: 1,
    requests: 0,
    promptTokens: 0,
    completionTokens: 0,
    cached: false,
    durationMs: Math.max(0, o.clock.now() - s.createdAt),
    requestMs: 0,
  };
}

/** Lines of an expired or cancelled batch that were never worked on: not the lines' fault. */
const UNSTARTED = /^(batch_expired|batch_cancelled|expired|cancelled)$/;

/** Reads a finished remote batch's files (saved first) and settles each of its jobs. */
async function collect(
  o: BatchApiRunOptions,
  s: Submission,
  remote: RemoteBatch,
  st: PassState,
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
    const item = st.claimed.get(job.idx);
    const stage = stages.find((x) => x.name === job.stage);
    if (!item || !stage) continue;
    // Collected before (a run killed after writing some results): settled once.
    const done = await o.results.results(o.batch.id, job.idx);
    if (job.stage in done) continue;
    const line = lines.get(job.customId);
    const outcome = baseOutcome(o, item, job.stage, s);
    if (line && line.statusCode === 200) {
      let problem: { detail: string; rejected?: string } | undefined;
      try {
        const parsed = parseCompletion(JSON.stringify(line.body), () => 0);
        const checked = validateAnswer(stage, parsed.content);
        if (checked.ok) {
          const last = stage === stages[stages.length - 1];
          o.job.counters.requests++;
          await o.results.completeJob({ ...outcome, requests: 1, ...parsed.usage }, checked.value, last);
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
      await noteFailure(
        o,
        st,
        item,
        stage,
        job.customId,
        { ...outcome, requests: 1 },
        problem.detail,
        problem.rejected,
      );
      continue;
    }
    // An expired or cancelled batch keeps what it finished; the rest goes again without counting,
    // as does a batch the provider failed for its queue being full (OpenAI: token_limit_exceeded).
    const unstarted = line === undefined || UNSTARTED.test(line.error?.code ?? '');
    if (unstarted && (remote.state === 'expired' || remote.state === 'cancelled' || queueWasFull(remote)))
      continue;
    failed++;
    if (line) o.job.counters.requests++;
    const detail = line
      ? `${line.statusCode ? `HTTP ${line.statusCode}` : 'error'}${line.error ? `: ${line.error.message}` : ''}`
      : remote.state === 'failed'
        ? `the provider failed the whole batch${remote.errors ? `: ${remote.errors}` : ''}`
        : "missing from the provider's output and error files";
    await noteFailure(
      o,
      st,
      item,
      stage,
      job.customId,
      { ...outcome, requests: line ? 1 : 0 },
      detail,
      undefined,
    );
  }
  return { answered, failed };
}

/** A batch failed as a whole because the provider's queue of enqueued tokens was full: not the lines' fault. */
function queueWasFull(remote: RemoteBatch): boolean {
  return (
    remote.state === 'failed' && remote.errors !== undefined && ENQUEUED_LIMIT_PATTERN.test(remote.errors)
  );
}

/** The attempt a request line was (its custom id is `idx:stage:attempt`). */
function attemptOf(customId: string): number {
  const n = Number(customId.split(':').at(-1));
  return Number.isInteger(n) && n > 0 ? n : 1;
}

/**
 * One more failed attempt at the provider, counted by the line's own attempt number, so that
 * collecting the same file twice counts it once. The job fails when it has had --max-attempts
 * (with --fallback sync, the next pass sends it as an ordinary request instead).
 */
async function noteFailure(
  o: BatchApiRunOptions,
  st: PassState,
  item: ClaimedItem,
  stage: Stage,
  customId: string,
  outcome: JobOutcome,
  detail: string,
  rejected: string | undefined,
): Promise<void> {
  const key = jobKey(item.idx, stage.name);
  const before = st.failures.get(key);
  const f: JobFailures = {
    count: Math.max(before?.count ?? 0, attemptOf(customId)),
    lastError: detail,
    rejected: rejected === undefined ? before?.rejected : { content: rejected, detail },
  };
  st.failures.set(key, f);
  st.settled = true;
  await o.submissions.saveFailures(o.batch.id, key, f);
  if (f.count >= o.maxAttempts && o.fallback === 'none') {
    st.failedNow.add(item.idx);
    await o.results.failJob(
      { ...outcome, attempts: f.count },
      'batch_api',
      `${detail} (after ${f.count} attempt(s) through the batch API)`,
    );
  }
}

/**
 * The next request of an item: its first stage not done, unless that one is out. Cache hits are
 * settled on the way, and with --fallback sync a job the batch API failed --max-attempts times
 * is sent as an ordinary request here, so the stage after it can go in this same pass.
 */
async function nextRequest(
  o: BatchApiRunOptions,
  item: ClaimedItem,
  out: ReadonlySet<string>,
  st: PassState,
): Promise<{ stage: Stage; line: RequestLine } | undefined> {
  const results = item.attempts > 1 ? { ...(await o.results.results(o.batch.id, item.idx)) } : {};
  const stages = o.pipeline.stages;
  for (const stage of stages) {
    if (stage.name in results) continue;
    const key = jobKey(item.idx, stage.name);
    if (out.has(key)) return undefined;
    let f = st.failures.get(key);
    if (f && f.count >= o.maxAttempts) {
      if (o.fallback === 'sync') {
        const value = await requestSync(o, item, stage, results);
        st.settled = true;
        if (value === undefined) return undefined;
        results[stage.name] = value;
        continue;
      }
      // Still pending after its last attempt: it was queued again (--retry-failed, `batches
      // retry`) or --max-attempts was raised. Its attempts start over.
      f = { count: 0, lastError: f.lastError, rejected: f.rejected };
      st.failures.set(key, f);
      await o.submissions.saveFailures(o.batch.id, key, f);
    }
    const request = requestOf(o, stage, item, results, f);
    if (o.job.cacheMode === 'normal' && o.job.cache) {
      const hit = await cachedAnswer(o, stage, request.messages);
      if (hit !== undefined) {
        o.job.counters.cacheHits++;
        st.settled = true;
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

/** --fallback sync: one job the batch API failed --max-attempts times, as an ordinary request. */
async function requestSync(
  o: BatchApiRunOptions,
  item: ClaimedItem,
  stage: Stage,
  previous: Readonly<Record<string, unknown>>,
): Promise<unknown> {
  const stages = o.pipeline.stages;
  const started = o.clock.now();
  const result = await executeJob(o.job, stage, { item, previous }, item.idx);
  const outcome = jobOutcome(o.batch.id, item, stage.name, result, o.clock.now() - started);
  if (!result.ok) {
    await o.results.failJob(outcome, result.error.kind, result.error.message);
    return undefined;
  }
  await o.results.completeJob(outcome, result.value, stage === stages[stages.length - 1]);
  return result.value;
}
