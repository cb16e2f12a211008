import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findCodec } from '../src/cache/codec.ts';
import { CODEC_NAMES, type CodecName, cacheKey, ResponseCache } from '../src/cache/index.ts';
import { systemClock } from '../src/core/clock.ts';
import { type Random, seededRandom } from '../src/core/random.ts';
import type { Bench, BenchRow } from './types.ts';

const WORDS: readonly [string, string, string][] = [
  ['사과', 'sagwa', 'apple'],
  ['학교', 'hakgyo', 'school'],
  ['친구', 'chingu', 'friend'],
  ['도서관', 'doseogwan', 'library'],
  ['바다', 'bada', 'sea'],
  ['기다리다', 'gidarida', 'to wait'],
  ['아름답다', 'areumdapda', 'to be beautiful'],
  ['공부하다', 'gongbuhada', 'to study'],
  ['날씨', 'nalssi', 'weather'],
  ['음식', 'eumsik', 'food'],
];
const KO_SENTENCES = [
  '저는 매일 아침 {w}에 대해 생각해요.',
  '어제 친구와 함께 {w}를 봤어요.',
  '이 {w}는 정말 마음에 들어요.',
  '주말에 {w} 때문에 바빴어요.',
  '선생님이 {w}에 대해 설명해 주셨어요.',
  '{w}가 없으면 살 수 없어요.',
];
const EN_SENTENCES = [
  'I think about {w} every morning.',
  'Yesterday I saw {w} with a friend.',
  'I really like this {w}.',
  'I was busy at the weekend because of {w}.',
  'The teacher explained {w} to us.',
  'I could not live without {w}.',
];

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/** A flashcard response like the vocabulary pipeline produces: 1.5-3 KB of Korean and English JSON. */
export function cardJson(random: Random, i: number): string {
  const [ko, roman, en] = pick(random, WORDS);
  const examples = Array.from({ length: 7 + Math.floor(random() * 8) }, () => {
    const k = Math.floor(random() * KO_SENTENCES.length);
    return {
      ko: (KO_SENTENCES[k] ?? '').replace('{w}', ko),
      en: (EN_SENTENCES[k] ?? '').replace('{w}', en),
      level: pick(random, ['A1', 'A2', 'B1', 'B2']),
      formality: pick(random, ['polite', 'casual', 'formal']),
    };
  });
  return JSON.stringify({
    id: `card-${i}`,
    word: ko,
    romanization: roman,
    partOfSpeech: en.startsWith('to ') ? 'verb' : 'noun',
    meanings: [en, `${en} (formal)`, `${en} (colloquial)`],
    hanja: random() < 0.5 ? '學校' : null,
    pronunciation: `[${ko}] /${roman}/`,
    examples,
    usageNotes: `“${ko}” is common in everyday speech. Compare with related words before using it in writing; ${en} in English covers a wider range of meanings than ${ko} does in Korean.`,
    synonyms: WORDS.slice(0, 2 + Math.floor(random() * 3)).map(([w]) => w),
    tags: ['vocabulary', 'korean', `topik-${1 + Math.floor(random() * 6)}`],
    frequencyRank: Math.floor(random() * 5000),
    mnemonic: `Picture ${en} when you hear "${roman}": say it aloud three times, then write ${ko} from memory.`,
  });
}

const N = 5000;
const WARMUP = 500;

function timePerOp(n: number, fn: (i: number) => void): number {
  const start = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  return ((performance.now() - start) * 1000) / n;
}

/** The same for an asynchronous `fn`, awaited one call after another as a job does. */
async function timePerAwaitedOp(n: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return ((performance.now() - start) * 1000) / n;
}

export const bench: Bench = async () => {
  const random = seededRandom(2026);
  const cards = Array.from({ length: N }, (_, i) => cardJson(random, i));
  const keys = cards.map((_card, i) =>
    cacheKey({
      baseUrl: 'https://api.example.com/v1',
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: `word ${i}` }],
      responseFormat: { type: 'json_object' },
      params: { temperature: 0.2 },
    }),
  );
  const meanBytes = cards.reduce((sum, c) => sum + Buffer.byteLength(c), 0) / N;
  const rows: BenchRow[] = [];

  const keyInput = {
    baseUrl: 'https://api.example.com/v1',
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: 'You write Korean vocabulary flashcards as JSON.' },
      { role: 'user', content: cards[0] ?? '' },
    ],
    responseFormat: { type: 'json_schema', json_schema: { name: 'card', schema: { type: 'object' } } },
    params: { temperature: 0.2, top_p: 1, max_tokens: 800 },
  };
  rows.push({
    name: 'cache key (canonical JSON + SHA-256)',
    value: round(timePerOp(N, () => cacheKey(keyInput))),
    unit: 'µs/op',
  });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-bench-'));
  try {
    for (const codec of CODEC_NAMES) {
      const impl = findCodec(codec);
      if (!impl) continue;
      const cache = ResponseCache.open(
        path.join(dir, `${codec}.db`),
        { ttlMs: 30 * 86_400_000, jitter: 0.1, compressThresholdBytes: 1024, codec: codec as CodecName },
        { clock: systemClock, random },
      );
      await timePerAwaitedOp(WARMUP, (i) => cache.put(`warm-${i}`, { body: cards[i] ?? '', model: 'm' }));
      await timePerAwaitedOp(WARMUP, (i) => cache.get(`warm-${i}`));
      const put = await timePerAwaitedOp(N, (i) =>
        cache.put(keys[i] ?? '', { body: cards[i] ?? '', model: 'gpt-4o-mini', term: 'x' }),
      );
      let hits = 0;
      const get = await timePerAwaitedOp(N, async (i) => {
        if (await cache.get(keys[i] ?? '')) hits++;
      });
      await cache.close();
      if (hits !== N) throw new Error(`bench: expected ${N} hits with ${codec}, got ${hits}`);
      let stored = 0;
      let original = 0;
      for (const card of cards) {
        const raw = Buffer.from(card);
        original += raw.length;
        stored += impl.encode(raw).length;
      }
      const note = `${N} cards, mean ${Math.round(meanBytes)} B`;
      rows.push({ name: `cache put (${codec})`, value: round(put), unit: 'µs/op', note });
      rows.push({ name: `cache get hit (${codec})`, value: round(get), unit: 'µs/op', note });
      rows.push({
        name: `compression ratio (${codec})`,
        value: round(original / stored),
        unit: 'x',
        note: 'original / stored',
      });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return rows;
};

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const row of await bench())
    console.log(`${row.name}: ${row.value} ${row.unit}${row.note ? ` (${row.note})` : ''}`);
}
