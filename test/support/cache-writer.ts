/**
 * One of several OS processes hammering one cache.db (see test/cache-processes.test.ts).
 * Usage: node cache-writer.ts <cache.db> <writer-id> <writers> <puts>
 * Waits until every writer is ready, then opens the cache (possibly creating it) and alternates
 * puts of shared and own keys with reads. Prints a JSON summary; any error exits non-zero.
 */
import fs from 'node:fs';
import { ResponseCache } from '../../src/cache/index.ts';
import { systemClock } from '../../src/core/clock.ts';
import { seededRandom } from '../../src/core/random.ts';

const [file = '', id = '', writersText = '2', putsText = '500'] = process.argv.slice(2);
const writers = Number(writersText);
const puts = Number(putsText);

// A start line: both processes reach the database together, so their writes really overlap.
fs.writeFileSync(`${file}.ready-${id}`, '');
const allReady = (): boolean =>
  Array.from({ length: writers }, (_, i) => fs.existsSync(`${file}.ready-${i}`)).every(Boolean);
while (!allReady()) await new Promise((r) => setTimeout(r, 2));

const cache = ResponseCache.open(
  file,
  { ttlMs: 0, jitter: 0.1, compressThresholdBytes: 64 },
  { clock: systemClock, random: seededRandom(Number(id)) },
);
let reads = 0;
for (let i = 0; i < puts; i++) {
  const key = i % 2 === 0 ? `shared-${i / 2}` : `own-${id}-${(i - 1) / 2}`;
  await cache.put(key, {
    body: `{"writer":"${id}","i":${i},"text":"${'사과 apple '.repeat(10)}"}`,
    model: 'm',
    term: key,
  });
  if (await cache.get(`shared-${Math.floor(i / 4)}`)) reads++;
}
await cache.close();
process.stdout.write(JSON.stringify({ id, puts, reads }));
