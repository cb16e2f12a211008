import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ChatRequest } from '../src/client/chat-client.ts';
import { FakeClock } from '../src/core/clock.ts';
import { FlashcardsError, isFlashcardsError, ProviderError } from '../src/core/errors.ts';
import type { RunEvent } from '../src/core/events.ts';
import type { RateLimitInfo } from '../src/core/headers.ts';
import { breakerGate } from '../src/job/breaker-gate.ts';
import { CircuitWaits } from '../src/job/circuit-waits.ts';
import { limiterGate } from '../src/job/limiter-gate.ts';
import { type Answer, type Attempt, type Step, wrap } from '../src/job/policy.ts';
import type { Booking as Reservation } from '../src/job/ports.ts';
import { retrying } from '../src/job/retrying.ts';
import type { RunStop } from '../src/job/stop.ts';
import { validatingWithRepair } from '../src/job/validation.ts';
import { noRateLimitInfo } from '../src/limiter/headers.ts';
import { loadPipeline } from '../src/pipeline/registry.ts';
import type { BreakerDecision, CallOutcome } from '../src/resilience/index.ts';
import { RetryPolicy } from '../src/resilience/index.ts';
import { drive } from './support/drive.ts';

const cardsStage = loadPipeline('vocabulary', process.cwd(), {
  sourceLanguage: 'Korean',
  targetLanguage: 'English',
}).stages[1]!;
const goodCards = JSON.stringify({
  cards: [{ front: '사과', back: 'apple', cardType: 'recognition', tags: ['food'] }],
});
const request: ChatRequest = {
  model: 'm',
  messages: [{ role: 'user', content: 'cards for 사과' }],
  responseFormat: cardsStage.responseFormat,
  temperature: 0,
  maxTokens: 100,
};
const info = (over: Partial<RateLimitInfo> = {}): RateLimitInfo => ({ ...noRateLimitInfo, ...over });

function attempt(): Attempt {
  return { request, number: 1, jobId: 'b:0:cards', promptTokens: 40, tally: { requests: 0, requestMs: 0 } };
}

function setup(start = 0) {
  const clock = new FakeClock(start);
  const stopper = new AbortController();
  const hard = new AbortController();
  const stop: RunStop = { clock, signal: hard.signal, stopSignal: stopper.signal, deadlineMs: undefined };
  const events: RunEvent[] = [];
  return { clock, stop, stopper, events, sink: { emit: (e: RunEvent) => void events.push(e) } };
}

/** A step that answers from a script, counting its calls like the provider call does. */
function scripted(
  answers: (string | ProviderError)[],
  rateLimit?: RateLimitInfo,
  clock?: FakeClock,
): Step & { calls: Attempt[]; times: number[] } {
  const calls: Attempt[] = [];
  const times: number[] = [];
  const step = async (a: Attempt): Promise<Answer> => {
    calls.push(a);
    times.push(clock?.now() ?? 0);
    a.tally.requests++;
    const next = answers.length > 1 ? answers.shift()! : answers[0]!;
    if (typeof next !== 'string') throw next;
    return {
      content: next,
      usage: { promptTokens: 40, completionTokens: 10, totalTokens: 50 },
      cached: false,
      rateLimit,
    };
  };
  return Object.assign(step, { calls, times });
}

const serverError = (): ProviderError =>
  new ProviderError('server', 'HTTP 500', { retryable: true, status: 500 });

describe('wrap', () => {
  test('runs policies outermost first around the inner step', async () => {
    const trace: string[] = [];
    const tracer =
      (name: string) =>
      (next: Step): Step =>
      async (a) => {
        trace.push(`${name}>`);
        const answer = await next(a);
        trace.push(`<${name}`);
        return answer;
      };
    await wrap(tracer('retry'), tracer('breaker'), tracer('limiter'))(scripted([goodCards]))(attempt());
    assert.deepEqual(trace, ['retry>', 'breaker>', 'limiter>', '<limiter', '<breaker', '<retry']);
  });
});

describe('breakerGate', () => {
  function fakeBreaker(decisions: BreakerDecision[]) {
    const recorded: CallOutcome[] = [];
    let released = 0;
    return {
      recorded,
      get released() {
        return released;
      },
      acquire: async () => (decisions.length > 1 ? decisions.shift()! : decisions[0]!),
      record: async (outcome: CallOutcome) => void recorded.push(outcome),
      release: async () => void released++,
      flush: async () => {},
    };
  }
  const allowed: BreakerDecision = { allowed: true, probe: false };

  test('lets an allowed call through and records its outcome, success or provider failure', async () => {
    const { stop, sink } = setup();
    const breaker = fakeBreaker([allowed]);
    const gate = breakerGate({
      breaker,
      providerKey: 'k',
      maxWaitMs: 60_000,
      waits: new CircuitWaits(),
      stop,
      events: sink,
      batchId: 'b',
    });
    await gate(scripted([goodCards]))(attempt());
    await assert.rejects(gate(scripted([serverError()]))(attempt()), /HTTP 500/);
    assert.deepEqual(
      breaker.recorded.map((o) => (o.ok ? 'ok' : o.error.kind)),
      ['ok', 'server'],
    );
  });

  test('an attempt that stops before it is sent gives the decision back instead of recording it', async () => {
    const { stop, sink } = setup();
    const breaker = fakeBreaker([{ allowed: true, probe: true }]);
    const gate = breakerGate({
      breaker,
      providerKey: 'k',
      maxWaitMs: 60_000,
      waits: new CircuitWaits(),
      stop,
      events: sink,
      batchId: 'b',
    });
    const stopped: Step = async () => {
      throw new FlashcardsError('deadline', 'the run reached its --max-duration');
    };
    await assert.rejects(gate(stopped)(attempt()), /max-duration/);
    assert.equal(breaker.recorded.length, 0);
    assert.equal(breaker.released, 1);
  });

  test('waits for an open circuit, asking again every second, then calls once it is closed', async () => {
    const { clock, stop, sink, events } = setup(0);
    const open: BreakerDecision = { allowed: false, state: 'open', retryAtMs: 2500, reason: 'circuit open' };
    const breaker = fakeBreaker([open, open, open, allowed]);
    const step = scripted([goodCards], undefined, clock);
    const gate = breakerGate({
      breaker,
      providerKey: 'k',
      maxWaitMs: 60_000,
      waits: new CircuitWaits(),
      stop,
      events: sink,
      batchId: 'b',
    });
    const answer = await drive(clock, gate(step)(attempt()));
    assert.equal(answer.content, goodCards);
    assert.deepEqual(step.times, [2500], 'asked at 0, 1 s and 2 s; called when the break ended');
    assert.equal(step.calls.length, 1);
    assert.deepEqual(
      events.map((e) => (e.type === 'breaker_wait' ? e.phase : e.type)),
      ['began', 'ended'],
      'the run’s wait is logged where it begins and where it ends, not every second',
    );
  });

  test('a circuit open longer than --max-wait stops the run at once with circuit_open, sending nothing', async () => {
    const { stop, sink } = setup(0);
    const breaker = fakeBreaker([
      { allowed: false, state: 'open', retryAtMs: 300_000, reason: 'circuit open: x' },
    ]);
    const step = scripted([goodCards]);
    const gate = breakerGate({
      breaker,
      providerKey: 'k',
      maxWaitMs: 60_000,
      waits: new CircuitWaits(),
      stop,
      events: sink,
      batchId: 'b',
    });
    await assert.rejects(gate(step)(attempt()), (e) => isFlashcardsError(e) && e.kind === 'circuit_open');
    assert.equal(step.calls.length, 0);
  });

  test("the break's end is in the shared store's time: a host clock 90 s behind it does not give up early", async () => {
    const { clock, stop, sink } = setup(0);
    // The store says the next probe may go at its 100 s; its time is this host's + 90 s.
    const open: BreakerDecision = {
      allowed: false,
      state: 'open',
      retryAtMs: 100_000,
      reason: 'circuit open: x',
    };
    const gate = (breaker: ReturnType<typeof fakeBreaker>, stateNow?: () => number) =>
      breakerGate({
        breaker,
        providerKey: 'k',
        maxWaitMs: 60_000,
        waits: new CircuitWaits(),
        stop,
        events: sink,
        batchId: 'b',
        stateNow,
      });
    // Read with the host's clock the break looks 100 s long, past --max-wait: the run would stop.
    await assert.rejects(
      gate(fakeBreaker([open]))(scripted([goodCards]))(attempt()),
      (e) => isFlashcardsError(e) && e.kind === 'circuit_open',
    );
    // In the store's time it ends in 10 s: the gate waits, and calls once the breaker allows it.
    const step = scripted([goodCards], undefined, clock);
    const waited = gate(fakeBreaker([open, open, open, allowed]), () => clock.now() + 90_000);
    const answer = await drive(clock, waited(step)(attempt()));
    assert.equal(answer.content, goodCards);
    assert.equal(step.calls.length, 1);
  });

  test('serves the fallback (a stale cache entry) while the circuit is open', async () => {
    const { stop, sink } = setup(0);
    const breaker = fakeBreaker([{ allowed: false, state: 'isolated', retryAtMs: null, reason: 'isolated' }]);
    const stale: Answer = {
      content: goodCards,
      usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
      cached: true,
    };
    const gate = breakerGate({
      breaker,
      providerKey: 'k',
      maxWaitMs: 60_000,
      waits: new CircuitWaits(),
      stop,
      events: sink,
      batchId: 'b',
      fallback: async () => stale,
    });
    assert.equal(await gate(scripted([goodCards]))(attempt()), stale);
  });
});

describe('limiterGate', () => {
  function fakeLimiter(script: Reservation[]) {
    const log: string[] = [];
    return {
      log,
      reserve: async () => {
        const r = script.length > 1 ? script.shift()! : script[0]!;
        log.push(`reserve:${r.ok ? 'ok' : 'refused'}:${r.delayMs}`);
        return r;
      },
      observe: async (o: { status: number }) => void log.push(`observe:${o.status}`),
    };
  }
  const booked = (delayMs: number, log: string[]): Reservation => ({
    ok: true,
    delayMs,
    settle: async (tokens) => void log.push(`settle:${tokens}`),
    cancel: async () => void log.push('cancel'),
  });

  test('books before the call, waits its send time, then hands the headers over and settles the tokens used', async () => {
    const { clock, stop, sink } = setup(0);
    const log: string[] = [];
    const limiter = fakeLimiter([booked(300, log)]);
    limiter.log.push = log.push.bind(log);
    const gate = limiterGate({ limiter, maxTokens: 100, stop, events: sink, batchId: 'b' });
    const step = scripted([goodCards], info({ limitRequests: 60 }), clock);
    await drive(clock, gate(step)(attempt()));
    assert.deepEqual(step.times, [300], 'sent at its booked time');
    assert.deepEqual(log, ['reserve:ok:300', 'observe:200', 'settle:50']);
  });

  test('a refused booking is asked again (after at most 1 s); a 429 is cancelled, a 500 settled at its prompt', async () => {
    const { clock, stop, sink } = setup(0);
    const log: string[] = [];
    const refused: Reservation = { ok: false, delayMs: 5000, message: 'no room yet' };
    const limiter = fakeLimiter([refused, booked(0, log)]);
    limiter.log.push = log.push.bind(log);
    const gate = limiterGate({ limiter, maxTokens: 100, stop, events: sink, batchId: 'b' });
    const limited = new ProviderError('rate_limit', 'HTTP 429', {
      retryable: true,
      status: 429,
      rateLimit: info({ retryAfterMs: 2000 }),
    });
    const first = scripted([limited], undefined, clock);
    await assert.rejects(drive(clock, gate(first)(attempt())), /429/);
    assert.deepEqual(first.times, [1000]);
    await assert.rejects(gate(scripted([serverError()]))(attempt()), /500/);
    assert.deepEqual(log, [
      'reserve:refused:5000',
      'reserve:ok:0',
      'observe:429',
      'cancel',
      'reserve:ok:0',
      'observe:500',
      'settle:40',
    ]);
  });

  test('a booking that would go past --max-duration stops the run; a stop during the wait cancels the booking', async () => {
    const { clock, stop, stopper, sink } = setup(0);
    const log: string[] = [];
    const late = limiterGate({
      limiter: fakeLimiter([{ ok: false, delayMs: 90_000, message: 'full' }]),
      maxTokens: 100,
      stop: { ...stop, deadlineMs: 60_000 },
      events: sink,
      batchId: 'b',
    });
    await assert.rejects(
      late(scripted([goodCards]))(attempt()),
      (e) => isFlashcardsError(e) && e.kind === 'deadline',
    );
    const limiter = fakeLimiter([booked(10_000, log)]);
    const waiting = limiterGate({ limiter, maxTokens: 100, stop, events: sink, batchId: 'b' })(
      scripted([goodCards]),
    )(attempt());
    await clock.advance(1000);
    stopper.abort();
    await assert.rejects(waiting, (e) => isFlashcardsError(e) && e.kind === 'cancelled');
    assert.deepEqual(log, ['cancel']);
  });
});

describe('retrying', () => {
  const make = (
    setupResult: ReturnType<typeof setup>,
    policy = new RetryPolicy({ maxAttempts: 4, baseDelayMs: 1000, maxDelayMs: 8000 }, { random: () => 0.5 }),
  ) =>
    retrying({
      policy,
      stop: setupResult.stop,
      events: setupResult.sink,
      batchId: 'b',
      item: 3,
      stage: 'cards',
      counters: { retries: 0 },
    });

  test('retries transient failures after jittered waits until an answer comes, reporting each retry', async () => {
    const s = setup(0);
    const step = scripted([serverError(), serverError(), goodCards], undefined, s.clock);
    const answer = await drive(s.clock, make(s)(step)(attempt()));
    assert.equal(answer.content, goodCards);
    assert.equal(step.calls.length, 3);
    assert.deepEqual(
      step.calls.map((a) => a.number),
      [1, 2, 3],
    );
    assert.deepEqual(
      s.events.map((e) => (e.type === 'retry_scheduled' ? [e.attempt, e.delayMs, e.errorKind] : e.type)),
      [
        [1, 500, 'server'],
        [2, 1000, 'server'],
      ],
    );
    assert.deepEqual(step.times, [0, 500, 1500]);
  });

  test('a permanent error fails the item at once; a rejected key is thrown as run-ending', async () => {
    const s = setup(0);
    const bad = new ProviderError('bad_request', 'HTTP 400', { retryable: false, status: 400 });
    const step = scripted([bad]);
    await assert.rejects(make(s)(step)(attempt()), (e) => e === bad);
    assert.equal(step.calls.length, 1);
    const auth = new ProviderError('auth', 'HTTP 401', { retryable: false, status: 401 });
    await assert.rejects(make(s)(scripted([auth]))(attempt()), (e) => e === auth);
    assert.equal(s.events.length, 0);
  });

  test('with the retry budget spent it waits the longest backoff instead of failing the item', async () => {
    const s = setup(0);
    const policy = new RetryPolicy(
      { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 8000 },
      { random: () => 0, budget: { maxTokens: 1, successCredit: 0 } },
    );
    const step = scripted([serverError(), goodCards]);
    await drive(s.clock, make(s, policy)(step)(attempt()));
    const retry = s.events[0];
    assert.ok(retry?.type === 'retry_scheduled');
    assert.equal(retry.delayMs, 8000);
    assert.match(retry.message, /retry budget spent/);
  });

  test('answers that never validate and a spent budget stop the run: the provider is unusable', async () => {
    const s = setup(0);
    const policy = new RetryPolicy(
      { maxAttempts: 6, baseDelayMs: 10, maxDelayMs: 100 },
      { random: () => 0, budget: { maxTokens: 2, successCredit: 0 } },
    );
    const invalid = new ProviderError('invalid_response', 'bad JSON', { retryable: true });
    await assert.rejects(
      drive(s.clock, make(s, policy)(scripted([invalid]))(attempt())),
      (e) => isFlashcardsError(e) && e.kind === 'config' && e.exitCode === 3 && /unusable/.test(e.message),
    );
  });

  test('a cancelled attempt or a stopped run ends with the stop error, not a retry', async () => {
    const s = setup(0);
    const cancelled = new ProviderError('cancelled', 'request cancelled', { retryable: false });
    await assert.rejects(
      make(s)(scripted([cancelled]))(attempt()),
      (e) => isFlashcardsError(e) && e.kind === 'cancelled',
    );
    s.stopper.abort();
    const step = scripted([goodCards]);
    await assert.rejects(make(s)(step)(attempt()), (e) => isFlashcardsError(e) && e.kind === 'cancelled');
    assert.equal(step.calls.length, 0);
  });
});

describe('validatingWithRepair', () => {
  test('a rejected answer is an invalid_response error, and the next attempt tells the model why', async () => {
    const step = scripted(['{"cards":[]}', '{"cards":"no"}', goodCards]);
    const validated = validatingWithRepair(cardsStage)(step);
    await assert.rejects(validated(attempt()), (e) => isFlashcardsError(e) && e.kind === 'invalid_response');
    await assert.rejects(validated(attempt()), /does not match its schema/);
    const answer = await validated(attempt());
    assert.deepEqual(answer.value, JSON.parse(goodCards));
    assert.equal(step.calls[0]!.request, request, 'the first attempt sends the request as it is');
    const repaired = step.calls[1]!.request.messages;
    assert.deepEqual(
      repaired.map((m) => m.role),
      ['user', 'assistant', 'user'],
    );
    assert.equal(repaired[1]!.content, '{"cards":[]}');
    assert.match(
      repaired[2]!.content,
      /^That answer was rejected: the cards answer does not match its schema \(cards:/,
    );
    assert.equal(step.calls[2]!.request, step.calls[1]!.request, 'later attempts resend the same repair');
  });
});
