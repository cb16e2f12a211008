import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConcurrencyController } from '../src/batch/concurrency.ts';
import { FakeClock } from '../src/core/clock.ts';

const waiting = { waiting: true, remaining: 1000 };

function controller(o: { fixed?: number; initial?: number; max?: number } = {}) {
  const clock = new FakeClock(0);
  // Headroom 1.2 (the default is 1.5) keeps the expected numbers easy to follow.
  const c = new ConcurrencyController(
    { fixed: o.fixed, initial: o.initial ?? 4, max: o.max ?? 256, headroom: 1.2 },
    clock,
  );
  return { clock, c };
}

describe('ConcurrencyController', () => {
  test('--concurrency pins the limit: nothing moves it', async () => {
    const { clock, c } = controller({ fixed: 8 });
    for (let i = 0; i < 20; i++) c.callEnded({ latencyMs: 3000, ok: i % 2 === 0 });
    await clock.advance(10_000);
    assert.equal(c.decide({ ...waiting, ratePerSec: 10 }), undefined);
    assert.equal(c.decide({ ...waiting, ratePerSec: null }), undefined);
    assert.equal(c.limit, 8);
    assert.equal(c.pinned, true);
  });

  test('rate known, no answer yet: doubles while the limiter has budget, stops once it holds requests', () => {
    const { c } = controller({ initial: 4 });
    assert.deepEqual(
      [1, 2].map(() => c.decide({ ...waiting, ratePerSec: 10 })?.to),
      [8, 16],
    );
    c.limiterHeld();
    assert.equal(c.decide({ ...waiting, ratePerSec: 10 }), undefined);
    assert.equal(c.decide({ ...waiting, ratePerSec: 10, waiting: false }), undefined, 'nothing waiting');
    assert.equal(c.limit, 16);
  });

  test('no answer yet: the oldest request’s age bounds the latency, and the pool grows with it while held', async () => {
    const { clock, c } = controller({ initial: 4 });
    for (let i = 0; i < 4; i++) c.sent();
    await clock.advance(2500);
    c.limiterHeld();
    assert.equal(c.decide({ ...waiting, ratePerSec: 10 })?.to, Math.ceil(10 * 2.5 * 1.2));
  });

  test('answers so far and the requests still out both count: early fast answers do not shrink the estimate', async () => {
    const { clock, c } = controller({ initial: 4 });
    const slow = [c.sent(), c.sent(), c.sent()];
    const fast = c.sent();
    await clock.advance(1000);
    fast('ok');
    await clock.advance(3000);
    assert.equal(c.latencyMs(0.75), 4000, 'three requests out for 4 s, one answered in 1 s');
    for (const end of slow) end('ok');
    assert.equal(c.latencyMs(0.5), 4000);
  });

  test('rate known: jumps to rate x p75 latency x 1.2 (+2) once answers come', async () => {
    const { clock, c } = controller({ initial: 4 });
    // Latencies 2.0 .. 4.0 s: p75 is 3.5 s.
    for (const ms of [2000, 2500, 3000, 3500, 4000]) c.callEnded({ latencyMs: ms, ok: true });
    await clock.advance(250);
    const change = c.decide({ ...waiting, ratePerSec: 10 });
    assert.equal(change?.to, Math.ceil(10 * 3.5 * 1.2) + 2);
    assert.equal(change?.reason, 'budget');
    assert.match(change?.detail ?? '', /600 requests\/min x 3\.5 s latency/);
    assert.equal(c.peak, 44);
  });

  test('while the limiter holds requests, the pool is sized to the throughput this run gets (its share)', async () => {
    const { clock, c } = controller({ initial: 4 });
    for (let i = 0; i < 4; i++) c.callEnded({ latencyMs: 3000, ok: true });
    assert.equal(c.decide({ ...waiting, ratePerSec: 10 })?.to, 38);
    // Another process takes half the budget: this one completes 5 a second for 8 s, held throughout.
    for (let t = 0; t < 40; t++) {
      await clock.advance(200);
      c.callEnded({ latencyMs: 3000, ok: true });
      c.limiterHeld();
    }
    const change = c.decide({ ...waiting, ratePerSec: 10 });
    assert.equal(change?.to, Math.ceil(5 * 3 * 1.2) + 2);
    assert.equal(change?.reason, 'rate');
  });

  test('no rate known: climbs while throughput follows, and rests where more in flight only adds latency', async () => {
    const { clock, c } = controller({ initial: 4 });
    const second = async (perSecond: number, latencyMs: number) => {
      for (let i = 0; i < perSecond; i++) {
        await clock.advance(1000 / perSecond);
        c.callEnded({ latencyMs, ok: true });
      }
    };
    // A server that works on 4 requests at once, 500 ms each: 8/s at most.
    await second(8, 500);
    assert.equal(c.decide({ ...waiting, ratePerSec: null })?.to, 7, '4 gave 8/s: try 7');
    await second(8, 875);
    await second(8, 875);
    const back = c.decide({ ...waiting, ratePerSec: null });
    assert.equal(back?.to, 4);
    assert.equal(back?.reason, 'latency');
    await second(8, 500);
    assert.equal(c.decide({ ...waiting, ratePerSec: null }), undefined, 'rests for a while');
    await clock.advance(30_000);
    for (let i = 0; i < 4; i++) c.callEnded({ latencyMs: 500, ok: true });
    assert.equal(c.decide({ ...waiting, ratePerSec: null })?.to, 7, 'then tries again');
  });

  test('no rate known: a step that raises throughput is kept and the climb goes on', async () => {
    const { clock, c } = controller({ initial: 4 });
    const run = async (seconds: number, perSecond: number) => {
      for (let i = 0; i < seconds * perSecond; i++) {
        await clock.advance(1000 / perSecond);
        c.callEnded({ latencyMs: 500, ok: true });
      }
    };
    await run(1, 8);
    assert.equal(c.decide({ ...waiting, ratePerSec: null })?.to, 7);
    await run(1, 20);
    assert.equal(c.decide({ ...waiting, ratePerSec: null })?.to, 12);
  });

  test('a fifth of recent calls failing cuts the limit to 70%, and it does not grow again for a while', async () => {
    const { clock, c } = controller({ initial: 4 });
    for (let i = 0; i < 4; i++) c.callEnded({ latencyMs: 1000, ok: true });
    assert.equal(c.decide({ ...waiting, ratePerSec: 100 })?.to, 122);
    for (let i = 0; i < 10; i++) c.callEnded({ latencyMs: 1000, ok: i >= 3 });
    const cut = c.decide({ ...waiting, ratePerSec: 100 });
    assert.deepEqual([cut?.to, cut?.reason], [85, 'errors']);
    assert.equal(c.decide({ ...waiting, ratePerSec: 100 }), undefined, 'frozen');
    await clock.advance(2000);
    assert.equal(c.decide({ ...waiting, ratePerSec: 100 })?.to, 122, 'grows back once calls succeed');
  });

  test('never above --max-concurrency, nor above the work left', () => {
    const { c } = controller({ initial: 4, max: 10 });
    for (let i = 0; i < 5; i++) c.decide({ ...waiting, ratePerSec: 1000 });
    assert.equal(c.limit, 10);
    const small = controller({ initial: 4 }).c;
    for (let i = 0; i < 5; i++) small.decide({ waiting: true, remaining: 6, ratePerSec: 1000 });
    assert.equal(small.limit, 6);
  });
});

/**
 * A whole run on fake time: a provider (with a rate limit or a server's parallelism), a token
 * bucket in front of it as the limiter, and the pool steered every 250 ms.
 */
async function simulate(o: {
  items: number;
  latencyMs: (i: number) => number;
  ratePerSec: number | null;
  burst?: number;
  /** A server that works on this many at once and queues the rest. */
  parallel?: number;
}): Promise<{ seconds: number; peakInFlight: number; limitPeak: number }> {
  const clock = new FakeClock(0);
  const c = new ConcurrencyController({ initial: 4, max: 256 }, clock);
  let started = 0;
  let done = 0;
  let inFlight = 0;
  let peakInFlight = 0;
  let tokens = o.burst ?? 1;
  let lastRefill = 0;
  const serverQueue: (() => void)[] = [];
  let serverBusy = 0;
  const serve = (i: number, ended: (end: 'ok' | 'failed' | 'cancelled') => void): void => {
    const finish = (): void => {
      clock.timer(o.latencyMs(i), () => {
        serverBusy--;
        serverQueue.shift()?.();
        inFlight--;
        done++;
        ended('ok');
      });
    };
    if (o.parallel === undefined || serverBusy < o.parallel) {
      serverBusy++;
      finish();
    } else
      serverQueue.push(() => {
        serverBusy++;
        finish();
      });
  };
  const pump = (): void => {
    if (o.ratePerSec !== null) {
      const now = clock.now();
      tokens = Math.min(o.burst ?? 1, tokens + ((now - lastRefill) / 1000) * o.ratePerSec);
      lastRefill = now;
    }
    while (started < o.items && inFlight < c.limit) {
      if (o.ratePerSec !== null && tokens < 1) {
        c.limiterHeld();
        break;
      }
      if (o.ratePerSec !== null) tokens -= 1;
      inFlight++;
      peakInFlight = Math.max(peakInFlight, inFlight);
      serve(started++, c.sent());
    }
  };
  clock.timer(10, pump, { repeat: true });
  clock.timer(
    250,
    () => {
      c.decide({
        ratePerSec: o.ratePerSec,
        waiting: started < o.items && inFlight >= c.limit,
        remaining: o.items - done,
      });
    },
    { repeat: true },
  );
  while (done < o.items) await clock.advance(10);
  return { seconds: clock.now() / 1000, peakInFlight, limitPeak: c.peak };
}

describe('ConcurrencyController in a simulated run', () => {
  test('600 RPM, 3 s +- 1.5 s latency, 200 requests: at least 85% of the limit', async () => {
    const r = await simulate({
      items: 200,
      ratePerSec: 10,
      burst: 10,
      latencyMs: (i) => 1500 + ((i * 7919) % 3001),
    });
    const ideal = 200 / 10;
    assert.ok(ideal / r.seconds >= 0.85, `${r.seconds} s for an ideal of ${ideal} s`);
    assert.ok(r.limitPeak <= 60, `peak limit ${r.limitPeak}`);
  });

  test('600 RPM at 10 s latency: the pool grows to rate x latency', async () => {
    const r = await simulate({ items: 300, ratePerSec: 10, burst: 10, latencyMs: () => 10_000 });
    const ideal = 300 / 10 + 10;
    assert.ok(ideal / r.seconds >= 0.85, `${r.seconds} s for an ideal of ${ideal} s`);
  });

  test('a local server working on 4 at once (500 ms), no limit: full throughput, never more than 32 open', async () => {
    const r = await simulate({ items: 100, ratePerSec: null, parallel: 4, latencyMs: () => 500 });
    const ideal = (100 / 4) * 0.5;
    assert.ok(ideal / r.seconds >= 0.85, `${r.seconds} s for an ideal of ${ideal} s`);
    assert.ok(r.peakInFlight <= 32, `peak in flight ${r.peakInFlight}`);
  });
});
