import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import {
  breakerClose,
  breakerHistory,
  breakerIsolate,
  breakerRm,
  breakerStatus,
} from '../src/commands/breaker.ts';
import { type CommandContext, memoryIo } from '../src/commands/context.ts';
import { FakeClock } from '../src/core/clock.ts';
import { isFlashcardsError } from '../src/core/errors.ts';
import { openDatabase } from '../src/db/open.ts';
import {
  CircuitBreaker,
  classifyHttpError,
  defaultBreakerSettings,
  SqliteBreakerStore,
} from '../src/resilience/index.ts';

const keyA = 'https://api.example.com/v1|gpt-a|abc123def456';
const keyB = 'https://api.example.com/v1|gpt-b|abc123def456';
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function context(home?: string): CommandContext & { io: ReturnType<typeof memoryIo>; clock: FakeClock } {
  const root = mkdtempSync(join(tmpdir(), 'fc-'));
  dirs.push(root);
  return {
    home: home ?? join(root, 'home'),
    cwd: root,
    env: {},
    io: memoryIo(),
    clock: new FakeClock(),
    verbose: false,
  };
}

/** Opens `key` by ten server errors, as a batch run would have. */
async function tripBreaker(ctx: CommandContext, key: string): Promise<void> {
  const db = openDatabase(join(ctx.home, 'state.db'));
  const b = new CircuitBreaker(new SqliteBreakerStore(db, ctx.clock), key, defaultBreakerSettings, {
    clock: ctx.clock,
    ownerId: 'run-1',
  });
  for (let i = 0; i < 10; i++)
    await b.record(
      { ok: false, error: classifyHttpError(503, '{"error":{"message":"overloaded"}}', new Headers(), 0) },
      { probe: false },
    );
  db.close();
}

const json = (ctx: { io: ReturnType<typeof memoryIo> }): Record<string, unknown> => {
  assert.equal(ctx.io.stdout.length, 1, 'exactly one JSON object on stdout');
  return JSON.parse(ctx.io.stdout[0] ?? '') as Record<string, unknown>;
};

describe('breaker status', () => {
  test('with no data directory prints a closed state and creates nothing', async () => {
    const ctx = context();
    assert.equal(await breakerStatus(ctx, { json: true }), 0);
    assert.deepEqual(json(ctx), { state: 'closed', breakers: [] });
    assert.equal(existsSync(ctx.home), false);
  });

  test('--json puts the most recently active breaker at the top level and lists all', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    await ctx.clock.advance(5000);
    const db = openDatabase(join(ctx.home, 'state.db'));
    const other = new CircuitBreaker(new SqliteBreakerStore(db, ctx.clock), keyB, defaultBreakerSettings, {
      clock: ctx.clock,
      ownerId: 'run-2',
    });
    await other.record({ ok: true }, { probe: false });
    await other.flush(); // successes are written in batches; a run flushes before it ends
    db.close();
    await ctx.clock.advance(1000);
    assert.equal(await breakerStatus(ctx, { json: true }), 0);
    const out = json(ctx);
    assert.equal(out['key'], keyB);
    assert.equal(out['state'], 'closed');
    assert.equal(out['calls'], 1);
    const breakers = out['breakers'] as Record<string, unknown>[];
    assert.deepEqual(
      breakers.map((b) => b['key']),
      [keyB, keyA],
    );
    assert.deepEqual(breakers[1], {
      key: keyA,
      state: 'open',
      failureRatio: 1,
      calls: 10,
      failures: 10,
      windowSeconds: 30,
      openedAt: '2026-01-01T00:00:00.000Z',
      retryAfter: '2026-01-01T00:00:30.000Z',
      retryAfterSeconds: 24,
      consecutiveOpens: 1,
      reason:
        '10 of 10 calls failed in the last 30.0s (ratio 1.00 >= 0.5); last: server: provider returned HTTP 503 Service Unavailable: overloaded',
      lastError: {
        kind: 'server',
        message: 'provider returned HTTP 503 Service Unavailable: overloaded',
        at: '2026-01-01T00:00:00.000Z',
      },
      probe: null,
      lastActiveAt: '2026-01-01T00:00:00.000Z',
    });
    assert.deepEqual(ctx.io.stderr, []);
  });

  test('human output is a table on stdout, nothing on stderr', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    assert.equal(await breakerStatus(ctx, { json: false }), 0);
    assert.deepEqual(ctx.io.stderr, []);
    const text = ctx.io.stdout.join('');
    assert.match(text, /gpt-a/);
    assert.match(text, /open/);
    assert.match(text, /10\/10 failed \(100%\)/);
    assert.match(text, /2026-01-01T00:00:30\.000Z \(in 30\.0s\)/);
  });

  test('--all prints a full block per breaker', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    await breakerStatus(ctx, { json: false, all: true });
    const text = ctx.io.stdout.join('');
    assert.match(text, /^breaker {5}https:\/\/api\.example\.com\/v1\|gpt-a\|abc123def456$/m);
    assert.match(text, /^state {7}open \(1 consecutive open\)$/m);
    assert.match(text, /^last error {2}server: provider returned HTTP 503 Service Unavailable: overloaded/m);
  });
});

describe('breaker isolate and close', () => {
  test('isolate before any run creates the configured breaker, isolated', async () => {
    const ctx = context();
    assert.equal(await breakerIsolate(ctx, { reason: 'provider outage', defaultKey: keyA }), 0);
    await breakerStatus(ctx, { json: true });
    const out = json(ctx);
    assert.equal(out['key'], keyA);
    assert.equal(out['state'], 'isolated');
    assert.equal(out['reason'], 'provider outage');
    assert.equal(out['retryAfter'], null);
    assert.match(ctx.io.stderr.join(''), /isolated breaker .*gpt-a.* \(was closed\)/);
  });

  test('isolate with no breaker and no provider is a usage error', async () => {
    const ctx = context();
    await assert.rejects(breakerIsolate(ctx, {}), (e) => isFlashcardsError(e) && e.exitCode === 2);
  });

  test('without --key, isolate and close act on every breaker', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    await tripBreaker(ctx, keyB);
    await breakerIsolate(ctx, { reason: 'stop' });
    await breakerStatus(ctx, { json: true });
    assert.deepEqual(
      (json(ctx)['breakers'] as { state: string }[]).map((b) => b.state),
      ['isolated', 'isolated'],
    );
    ctx.io.stdout.length = 0;
    await breakerClose(ctx, {});
    await breakerStatus(ctx, { json: true });
    assert.deepEqual(
      (json(ctx)['breakers'] as { state: string; calls: number }[]).map((b) => [b.state, b.calls]),
      [
        ['closed', 0],
        ['closed', 0],
      ],
    );
  });

  test('--key acts on one breaker only', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    await tripBreaker(ctx, keyB);
    await breakerClose(ctx, { key: keyB });
    await breakerStatus(ctx, { json: true });
    const states = Object.fromEntries(
      (json(ctx)['breakers'] as { key: string; state: string }[]).map((b) => [b.key, b.state]),
    );
    assert.deepEqual(states, { [keyA]: 'open', [keyB]: 'closed' });
  });

  test('close with an unknown --key names the known keys', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    await assert.rejects(breakerClose(ctx, { key: 'nope' }), (e) => {
      assert.ok(isFlashcardsError(e));
      assert.equal(e.message, 'no circuit breaker with key "nope"');
      assert.equal(e.hint, `known keys: ${keyA}`);
      return true;
    });
  });

  test('isolate refuses a --key no breaker has (exit 2, did you mean, the known keys) and creates nothing', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    const typo = keyA.replace('gpt-a', 'gpt-q');
    await assert.rejects(breakerIsolate(ctx, { key: typo, defaultKey: keyB }), (e) => {
      assert.ok(isFlashcardsError(e));
      assert.equal(e.exitCode, 2);
      assert.equal(e.message, `no circuit breaker with key "${typo}" (did you mean ${keyA}?)`);
      assert.equal(e.hint, `known keys: ${keyA}; pass --create to isolate a breaker no run has used yet`);
      return true;
    });
    await breakerStatus(ctx, { json: true });
    assert.deepEqual(
      (json(ctx)['breakers'] as { key: string; state: string }[]).map((b) => [b.key, b.state]),
      [[keyA, 'open']],
    );
  });

  test('isolate --key nope before any run leaves no data directory behind', async () => {
    const ctx = context();
    await assert.rejects(breakerIsolate(ctx, { key: 'nope' }), {
      exitCode: 2,
      hint: /^no breaker exists yet/,
    });
    assert.equal(existsSync(ctx.home), false);
  });

  test("isolate --key takes the configured provider's key, or any key with --create", async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    assert.equal(await breakerIsolate(ctx, { key: keyB, defaultKey: keyB }), 0);
    const other = 'https://other.example/v1|m|0123456789ab';
    assert.equal(await breakerIsolate(ctx, { key: other, create: true }), 0);
    await breakerStatus(ctx, { json: true });
    const states = Object.fromEntries(
      (json(ctx)['breakers'] as { key: string; state: string }[]).map((b) => [b.key, b.state]),
    );
    assert.deepEqual(states, { [keyA]: 'open', [keyB]: 'isolated', [other]: 'isolated' });
  });
});

describe('breaker rm', () => {
  test('forgets one breaker, by argument or --key; the others stay', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    await tripBreaker(ctx, keyB);
    assert.equal(await breakerRm(ctx, { key: keyA }), 0);
    assert.match(
      ctx.io.stderr.join(''),
      /^removed breaker https:\/\/api\.example\.com\/v1\|gpt-a\|abc123def456 \(was open\)/,
    );
    assert.equal(await breakerRm(ctx, { keyOption: keyB }), 0);
    await breakerStatus(ctx, { json: true });
    assert.deepEqual(json(ctx), { state: 'closed', breakers: [] });
  });

  test('an unknown key is refused with exit 2, a did-you-mean and the known keys', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    const typo = keyA.replace('gpt-a', 'gpt-b');
    await assert.rejects(breakerRm(ctx, { key: typo }), {
      exitCode: 2,
      message: `no circuit breaker with key "${typo}" (did you mean ${keyA}?)`,
      hint: `known keys: ${keyA}`,
    });
  });

  test('without a key, with two different keys, or with no state at all: exit 2, nothing created', async () => {
    const ctx = context();
    await assert.rejects(breakerRm(ctx, {}), { exitCode: 2, message: /needs the key/ });
    await assert.rejects(breakerRm(ctx, { key: keyA, keyOption: keyB }), {
      exitCode: 2,
      message: /two different keys/,
    });
    await assert.rejects(breakerRm(ctx, { key: keyA }), {
      exitCode: 2,
      hint: 'no breaker exists yet; nothing to remove',
    });
    assert.equal(existsSync(ctx.home), false);
  });
});

describe('breaker history', () => {
  test('--json lists transitions newest first with their causes', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    await ctx.clock.advance(2000);
    await breakerIsolate(ctx, { reason: 'checking' });
    await ctx.clock.advance(2000);
    await breakerClose(ctx, {});
    assert.equal(await breakerHistory(ctx, { json: true, limit: 2 }), 0);
    assert.deepEqual(json(ctx), {
      transitions: [
        {
          at: '2026-01-01T00:00:04.000Z',
          key: keyA,
          from: 'isolated',
          to: 'closed',
          cause: 'closed by hand',
        },
        {
          at: '2026-01-01T00:00:02.000Z',
          key: keyA,
          from: 'open',
          to: 'isolated',
          cause: 'isolated by hand: checking',
        },
      ],
    });
  });

  test('with no data directory prints an empty list and creates nothing', async () => {
    const ctx = context();
    assert.equal(await breakerHistory(ctx, { json: true }), 0);
    assert.deepEqual(json(ctx), { transitions: [] });
    assert.equal(existsSync(ctx.home), false);
  });

  test('human output is a table on stdout', async () => {
    const ctx = context();
    await tripBreaker(ctx, keyA);
    await breakerHistory(ctx, { json: false });
    assert.deepEqual(ctx.io.stderr, []);
    assert.match(ctx.io.stdout.join(''), /closed -> open/);
  });

  test('empty results are results too: said on stdout', async () => {
    const ctx = context();
    await breakerHistory(ctx, { json: false });
    await breakerStatus(ctx, { json: false });
    assert.deepEqual(ctx.io.stderr, []);
    assert.deepEqual(ctx.io.stdout, [
      'no breaker transitions recorded\n',
      'no circuit breaker yet: nothing has been sent to a provider from this data directory (closed)\n',
    ]);
  });

  test('rejects a --limit that is not a positive integer', async () => {
    const ctx = context();
    await assert.rejects(
      breakerHistory(ctx, { json: true, limit: 0 }),
      /--limit must be an integer >= 1, got 0/,
    );
  });
});
