/**
 * A child process for the multi-process limiter test and benchmark: opens the shared state
 * database and acquires from one key. Prints one JSON line on stdout.
 *   admit: from `startAt` for `durationMs`, reserve with maxWait 0 as fast as allowed; report
 *          the wall-clock time of every admission.
 *   cost:  from `startAt`, `ops` times reserve + observe + settle on a key with no room
 *          problems; report the elapsed time.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../../src/core/clock.ts';
import { openDatabase } from '../../src/db/open.ts';
import { createLimiter } from '../../src/limiter/index.ts';

interface Args {
  mode: 'admit' | 'cost';
  file: string;
  key: string;
  rpm?: number;
  tpm?: number;
  burstSeconds: number;
  shards: number | 'auto';
  startAt: number;
  durationMs?: number;
  ops?: number;
  id: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const db = openDatabase(args.file);
const limiter = createLimiter(
  db,
  args.key,
  {
    rpm: args.rpm,
    tpm: args.tpm,
    burstSeconds: args.burstSeconds,
    shards: args.shards,
    maxRequestTokens: 1000,
  },
  { clock: systemClock },
);
// A ref'd timer: systemClock's sleeps are unref'd and would let this process exit early.
await sleep(Math.max(0, args.startAt - Date.now()));

if (args.mode === 'admit') {
  const admitted: number[] = [];
  const end = args.startAt + (args.durationMs ?? 2000);
  let n = 0;
  while (Date.now() < end) {
    const r = limiter.reserve({ jobId: `${args.id}:${n++}`, tokens: 0 }, { maxWaitMs: 0 });
    if (r.ok) admitted.push(Date.now());
    else await sleep(Math.max(0, Math.min(r.delayMs, end - Date.now())));
  }
  process.stdout.write(`${JSON.stringify({ admitted })}\n`);
} else {
  const headers = new Headers({
    'x-ratelimit-limit-requests': String(args.rpm),
    'x-ratelimit-remaining-requests': String(args.rpm),
  });
  const ops = args.ops ?? 10_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    const r = limiter.reserve(
      { jobId: `${args.id}:${i}`, tokens: 500 },
      { maxWaitMs: Number.POSITIVE_INFINITY },
    );
    limiter.observe({ status: 200, headers });
    if (r.ok) r.settle(400);
  }
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(`${JSON.stringify({ ops, elapsedMs })}\n`);
}
db.close();
