import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { analysisSchema, cardsSchema, providerJsonSchema } from '../src/pipeline/schemas.ts';
import { renderTemplate } from '../src/pipeline/template.ts';
import { vocabularyPipeline } from '../src/pipeline/vocabulary.ts';

/** A reference renderer: regex replacement on every call, as the first version did. */
function renderTemplateSlow(template: string, values: Record<string, string | undefined>): string {
  const withSections = template.replace(
    /\{\{#(\w+)\}\}([\s\S]*?)\{\{\/\1\}\}/g,
    (_match, name: string, body: string) => (values[name] ? body : ''),
  );
  return withSections.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`prompt template uses {{${name}}} but no value was given`);
    return value;
  });
}

describe('prompt templates', () => {
  const template =
    'Term: {{term}}\n{{#type}}Type: {{type}}\n{{/type}}{{#context}}Context:\n{{context}}\n{{/context}}end';
  test('inserts values and keeps sections only when their value is non-empty', () => {
    assert.equal(
      renderTemplate(template, { term: '사과', type: 'noun', context: undefined }),
      'Term: 사과\nType: noun\nend',
    );
    assert.equal(
      renderTemplate(template, { term: 'x', type: '', context: '- a: b' }),
      'Term: x\nContext:\n- a: b\nend',
    );
  });
  test('the compiled renderer matches the reference renderer', () => {
    for (const values of [
      { term: 'a', type: 'b', context: 'c' },
      { term: '$&', type: undefined, context: undefined },
    ]) {
      assert.equal(renderTemplate(template, values), renderTemplateSlow(template, values));
    }
  });
  test('a missing value is an error naming it', () => {
    assert.throws(() => renderTemplate('{{term}} {{lemma}}', { term: 'x' }), /\{\{lemma\}\}/);
  });
});

describe('the vocabulary pipeline', () => {
  const pipeline = vocabularyPipeline({ sourceLanguage: 'Korean', targetLanguage: 'English' });
  test('has an analyze stage then a cards stage, each with a strict json_schema response format', () => {
    assert.deepEqual(
      pipeline.stages.map((s) => s.name),
      ['analyze', 'cards'],
    );
    for (const stage of pipeline.stages) {
      assert.equal(stage.responseFormat.type, 'json_schema');
      assert.equal(stage.responseFormat.json_schema.strict, true);
      assert.equal(stage.responseFormat.json_schema.name, stage.name);
      assert.equal(stage.jsonSchema['additionalProperties'], false);
      assert.equal('$schema' in stage.jsonSchema, false);
    }
  });
  test('the analyze prompt carries the term, its type and context columns; the cards prompt the analysis', () => {
    const [analyze, cards] = pipeline.stages;
    const item = { term: '먹다', type: 'verb', context: { notes: 'to eat', empty: '' } };
    const m1 = analyze!.buildMessages({ item, previous: {} });
    assert.equal(m1[0]!.role, 'system');
    assert.match(m1[0]!.content, /Korean/);
    assert.match(m1[1]!.content, /Term: 먹다/);
    assert.match(m1[1]!.content, /verb/);
    assert.match(m1[1]!.content, /- notes: to eat/);
    assert.doesNotMatch(m1[1]!.content, /empty/);
    const m2 = cards!.buildMessages({ item, previous: { analyze: { lemma: '먹다' } } });
    assert.match(m2[1]!.content, /"lemma": "먹다"/);
  });
  test('languages are settings', () => {
    const ja = vocabularyPipeline({ sourceLanguage: 'Japanese', targetLanguage: 'German' });
    const system = ja.stages[0]!.buildMessages({ item: { term: '食べる', context: {} }, previous: {} })[0]!
      .content;
    assert.match(system, /Japanese/);
    assert.match(system, /German/);
  });
  test('cards are mapped with part of speech and card-type tags, empty cards dropped', () => {
    const cards = pipeline.toCards(
      { term: '사과', context: {} },
      {
        analyze: { partOfSpeech: 'Noun' },
        cards: {
          cards: [
            { front: '사과', back: 'apple', cardType: 'recognition', tags: ['food'] },
            { front: ' ', back: 'x', cardType: 'usage', tags: [] },
          ],
        },
      },
    );
    assert.deepEqual(cards, [
      { front: '사과', back: 'apple', cardType: 'recognition', tags: ['food', 'noun', 'card::recognition'] },
    ]);
  });
});

describe('stage schemas', () => {
  test('the schema sent to the provider is no stricter than the local validator', () => {
    const sent = JSON.stringify(providerJsonSchema(cardsSchema));
    assert.doesNotMatch(sent, /minLength/);
    assert.match(sent, /"minItems":1/);
    assert.match(sent, /"maxItems":4/);
  });
  test('the analysis schema accepts a full analysis, strips extra fields and refuses missing ones', () => {
    const analysis = {
      term: '사과',
      lemma: '사과',
      partOfSpeech: 'noun',
      pronunciation: { romanization: 'sagwa', ipa: null },
      meanings: [{ gloss: 'apple', explanation: 'the fruit' }],
      examples: [{ sentence: '사과를 먹어요.', translation: 'I eat an apple.' }],
      usageNotes: '',
      mnemonic: '',
      nearSynonyms: [],
    };
    assert.equal(analysisSchema.safeParse(analysis).success, true);
    const extra = analysisSchema.safeParse({ ...analysis, extra: 1 });
    assert.equal(extra.success, true);
    assert.equal(extra.success && 'extra' in extra.data, false);
    const { mnemonic: _m, ...missing } = analysis;
    assert.equal(analysisSchema.safeParse(missing).success, false);
    assert.equal(analysisSchema.safeParse({ ...analysis, meanings: [] }).success, false);
  });
});

describe('the schema sent to the provider', () => {
  test('closes every object (additionalProperties: false) and requires every property', () => {
    const visit = (node: unknown): void => {
      if (Array.isArray(node)) {
        for (const child of node) visit(child);
        return;
      }
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if (n['type'] === 'object') {
        assert.equal(n['additionalProperties'], false);
        assert.deepEqual(
          [...(n['required'] as string[])].sort(),
          Object.keys(n['properties'] as object).sort(),
        );
      }
      for (const v of Object.values(n)) visit(v);
    };
    visit(providerJsonSchema(analysisSchema));
    visit(providerJsonSchema(cardsSchema));
  });
});
