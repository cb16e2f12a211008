import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { type JsonSchema, sampleFromSchema } from '../src/client/schema-sample.ts';
import { isFlashcardsError } from '../src/core/errors.ts';

function toSchema(schema: z.ZodType, target: 'draft-2020-12' | 'draft-7' = 'draft-2020-12'): JsonSchema {
  return z.toJSONSchema(schema, { target, reused: 'ref' }) as JsonSchema;
}

const example = z.strictObject({ sentence: z.string(), translation: z.string() });

const analysis = z.strictObject({
  term: z.string(),
  lemma: z.string(),
  partOfSpeech: z.string(),
  pronunciation: z.strictObject({ romanization: z.string(), ipa: z.string().nullable() }),
  meanings: z
    .array(z.strictObject({ gloss: z.string(), explanation: z.string() }))
    .min(1)
    .max(4),
  examples: z.array(example).min(1).max(3),
  usageNotes: z.string(),
  mnemonic: z.string(),
  nearSynonyms: z.array(z.strictObject({ term: z.string(), difference: z.string() })).max(3),
});

const cards = z.strictObject({
  cards: z
    .array(
      z.strictObject({
        front: z.string(),
        back: z.string(),
        cardType: z.enum(['recognition', 'production', 'cloze', 'usage']),
        tags: z.array(z.string()).max(5),
      }),
    )
    .min(1)
    .max(4),
});

const everything = z.strictObject({
  level: z.literal('A1'),
  score: z.number().min(0).max(1),
  open: z.number().gt(0).lt(1),
  count: z.int().min(2).max(4),
  anyInt: z.int(),
  fives: z.int().multipleOf(5),
  ok: z.boolean(),
  nothing: z.null(),
  note: z.string().nullable(),
  nested: example.nullable(),
  either: z.union([z.string(), z.number()]),
  kind: z.discriminatedUnion('t', [
    z.strictObject({ t: z.literal('a') }),
    z.strictObject({ t: z.literal('b'), x: z.number() }),
  ]),
  exact: z.string().length(4),
  short: z.string().max(5),
  long: z.string().min(60),
  hex: z.string().regex(/^#[0-9a-f]{6}$/),
  code: z.string().regex(/^[A-Z]{2}-\d{3}(?:-[a-z]+)?$/),
  id: z.uuid(),
  at: z.iso.datetime(),
  day: z.iso.date(),
  time: z.iso.time(),
  email: z.email(),
  url: z.url(),
  ip: z.ipv4(),
  pair: z.tuple([z.string(), z.number()]),
  scores: z.record(z.string(), z.number()),
  exactlyTwo: z.array(z.string()).length(2),
  none: z.array(z.number()).max(0),
  maybe: z.string().optional(),
});

const pairOfExamples = z.strictObject({ a: example, b: example });
const shared = example.meta({ id: 'Example' });
const withDefs = z.strictObject({ first: shared, rest: z.array(shared) });

interface Tree {
  name: string;
  children: Tree[];
}
const tree: z.ZodType<Tree> = z.strictObject({
  name: z.string(),
  get children() {
    return z.array(tree).max(3);
  },
});

const cases: [string, z.ZodType, JsonSchema][] = [
  ['the vocabulary analysis', analysis, toSchema(analysis)],
  ['the vocabulary cards', cards, toSchema(cards)],
  ['every supported keyword', everything, toSchema(everything)],
  ['$defs reached through $ref', withDefs, toSchema(withDefs)],
  ['draft-7 definitions reached through $ref', pairOfExamples, toSchema(pairOfExamples, 'draft-7')],
  ['a recursive schema ($ref "#")', tree, toSchema(tree)],
];

describe('sampleFromSchema', () => {
  for (const [name, zod, json] of cases) {
    test(`samples for ${name} parse with the zod schema, for 40 seeds and both modes`, () => {
      for (let i = 0; i < 40; i++) {
        for (const placeholder of [false, true]) {
          const value = sampleFromSchema(json, {
            seed: `seed-${i}`,
            term: i % 2 ? '사과' : 'apple',
            placeholder,
          });
          const result = zod.safeParse(value);
          assert.ok(result.success, `${JSON.stringify(value)}\n${result.error?.message}`);
        }
      }
    });
  }

  test('zod 4 emits $defs/$ref for a schema with an id, and the sample resolves them', () => {
    const json = toSchema(withDefs);
    assert.deepEqual(json.properties?.['first'], { $ref: '#/$defs/Example' });
    assert.deepEqual(Object.keys(toSchema(pairOfExamples, 'draft-7').definitions ?? {}), ['__schema0']);
    const value = sampleFromSchema(json, { seed: 's', term: 'apple' }) as { first: { sentence: string } };
    assert.match(value.first.sentence, /apple/);
  });

  test('the same seed gives the same value; another seed gives another', () => {
    const json = toSchema(analysis);
    const a = sampleFromSchema(json, { seed: 'apple/analyze', term: 'apple' });
    const b = sampleFromSchema(json, { seed: 'apple/analyze', term: 'apple' });
    assert.deepEqual(a, b);
    const others = new Set(
      Array.from({ length: 10 }, (_, i) =>
        JSON.stringify(sampleFromSchema(json, { seed: `s${i}`, term: 'apple' })),
      ),
    );
    assert.ok(others.size > 5, `only ${others.size} distinct samples of 10`);
  });

  test('strings read like a card about the term', () => {
    const value = analysis.parse(sampleFromSchema(toSchema(analysis), { seed: 'x', term: 'gato' }));
    assert.equal(value.term, 'gato');
    assert.equal(value.lemma, 'gato');
    assert.equal(value.pronunciation.romanization, 'ga-to');
    for (const ex of value.examples) assert.match(ex.sentence, /gato/);
    assert.match(value.mnemonic, /gato/);
    const c = cards.parse(sampleFromSchema(toSchema(cards), { seed: 'x', term: 'gato' }));
    for (const card of c.cards) {
      assert.equal(card.front, 'gato');
      for (const tag of card.tags) assert.match(tag, /^[a-z]+(-[a-z]+)*$/);
      assert.equal(new Set(card.tags).size, card.tags.length);
    }
  });

  test('a non-Latin term gets a romanisation made of Latin letters', () => {
    const value = analysis.parse(sampleFromSchema(toSchema(analysis), { seed: 'x', term: '사과' }));
    assert.match(value.pronunciation.romanization, /^[a-z]+$/);
    assert.equal(value.term, '사과');
  });

  test('placeholder mode prefixes generated strings with [mock] but leaves enums and consts alone', () => {
    const schema: JsonSchema = {
      type: 'object',
      properties: {
        front: { type: 'string' },
        kind: { type: 'string', enum: ['noun'] },
        fixed: { type: 'string', const: 'x' },
      },
      required: ['front', 'kind', 'fixed'],
      additionalProperties: false,
    };
    assert.deepEqual(sampleFromSchema(schema, { seed: 's', term: 'apple', placeholder: true }), {
      front: '[mock] apple',
      kind: 'noun',
      fixed: 'x',
    });
  });

  test('arrays have between minItems and maxItems items, 1 to 3 by default', () => {
    const counts = new Set<number>();
    for (let i = 0; i < 60; i++) {
      const value = sampleFromSchema(
        { type: 'array', items: { type: 'string' } },
        { seed: `${i}` },
      ) as unknown[];
      counts.add(value.length);
      const bounded = sampleFromSchema(
        { type: 'array', items: { type: 'integer' }, minItems: 4, maxItems: 6 },
        { seed: `${i}` },
      ) as unknown[];
      assert.ok(bounded.length >= 4 && bounded.length <= 6, `got ${bounded.length}`);
    }
    assert.deepEqual([...counts].sort(), [1, 2, 3]);
  });

  test('hand-written schemas: type lists with null, anyOf, definitions and numbers in range', () => {
    const schema: JsonSchema = {
      type: 'object',
      properties: {
        maybe: { type: ['string', 'null'] },
        choice: { anyOf: [{ $ref: '#/definitions/n' }, { type: 'null' }] },
        level: { type: 'integer', minimum: 1, maximum: 3 },
      },
      required: ['maybe', 'choice', 'level'],
      additionalProperties: false,
      definitions: { n: { type: 'number', minimum: 10, maximum: 20 } },
    };
    for (let i = 0; i < 20; i++) {
      const v = sampleFromSchema(schema, { seed: `${i}` }) as {
        maybe: unknown;
        choice: number;
        level: number;
      };
      assert.equal(typeof v.maybe, 'string');
      assert.ok(v.choice >= 10 && v.choice <= 20, `choice ${v.choice}`);
      assert.ok([1, 2, 3].includes(v.level), `level ${v.level}`);
    }
  });

  test('a $ref that does not resolve is a FlashcardsError naming it', () => {
    assert.throws(
      () => sampleFromSchema({ $ref: '#/$defs/missing' }, { seed: 's' }),
      (e: unknown) => isFlashcardsError(e) && e.message.includes('"#/$defs/missing" does not resolve'),
    );
  });
});
