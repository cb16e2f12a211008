import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isFlashcardsError } from '../src/core/errors.ts';
import { compilePipeline } from '../src/pipeline/compile.ts';
import { loadDefinition, parseDefinition } from '../src/pipeline/definition.ts';
import { builtinPipelineNames, loadPipeline, loadPipelineDefinition } from '../src/pipeline/registry.ts';
import { providerJsonSchema } from '../src/pipeline/schemas.ts';
import { compileTemplate, type Scope } from '../src/pipeline/template.ts';

const renderTemplate = (template: string, scope: Scope): string => compileTemplate(template).render(scope);

const english = { sourceLanguage: 'Korean', targetLanguage: 'English' };
const root = fileURLToPath(new URL('..', import.meta.url));

describe('templates', () => {
  const template =
    'Term: {{term}}\n{{#type}}Type: {{type}}\n{{/type}}{{#context}}Context:\n{{context}}\n{{/context}}end';
  test('insert values and keep sections only when their value is non-empty', () => {
    assert.equal(
      renderTemplate(template, { term: '사과', type: 'noun', context: undefined }),
      'Term: 사과\nType: noun\nend',
    );
    assert.equal(
      renderTemplate(template, { term: 'x', type: '', context: '- a: b' }),
      'Term: x\nContext:\n- a: b\nend',
    );
    assert.equal(renderTemplate('{{term}}', { term: '$&' }), '$&');
  });
  test('follow dotted paths; lists of strings join, objects become JSON, missing values are empty', () => {
    const scope = { a: { b: 'x', list: ['p', 'q'], obj: { k: 1 }, n: 3 } };
    assert.equal(renderTemplate('{{a.b}}|{{a.list}}|{{a.n}}|{{a.none}}|{{a.list.1}}', scope), 'x|p, q|3||q');
    assert.equal(renderTemplate('{{a.obj}}', scope), '{\n  "k": 1\n}');
    assert.equal(renderTemplate('{{#a.none}}hidden{{/a.none}}{{#a.list}}shown{{/a.list}}', scope), 'shown');
  });
  test('list the variables they use, and keep a lone variable’s raw value', () => {
    const t = compileTemplate('{{#row.level}}{{row.level}}{{/row.level}} {{explain.pattern}}');
    assert.deepEqual([...t.variables].sort(), ['explain.pattern', 'row.level']);
    assert.deepEqual(compileTemplate('{{card.tags}}').value({ card: { tags: ['a', 'b'] } }), ['a', 'b']);
  });
});

describe('the built-in pipelines', () => {
  test('the build compiles each one to JSON that makes the very same pipeline as its YAML', (t) => {
    for (const name of builtinPipelineNames()) {
      const compiled = join(root, 'dist', 'builtin', `${name}.json`);
      if (!existsSync(compiled)) {
        t.skip('no build in dist/ (npm test builds first)');
        return;
      }
      const fromYaml = compilePipeline(
        loadDefinition(join(root, 'src', 'pipeline', 'builtin', `${name}.yaml`)),
        english,
      );
      const fromJson = compilePipeline(loadDefinition(compiled, name, { compiled: true }), english);
      assert.equal(fromJson.version, fromYaml.version, name);
      assert.deepEqual(
        fromJson.stages.map((st) => [st.name, st.schemaDigest]),
        fromYaml.stages.map((st) => [st.name, st.schemaDigest]),
      );
      assert.deepEqual(fromJson.fields, fromYaml.fields);
    }
  });

  test('vocabulary, cloze and topics are all valid pipeline files', () => {
    assert.deepEqual(builtinPipelineNames(), ['cloze', 'topics', 'vocabulary']);
    for (const name of builtinPipelineNames()) {
      const p = loadPipeline(name, root, english);
      assert.equal(p.name, name);
      assert.equal(p.source, 'built-in');
      assert.ok(p.fields.length >= 2);
    }
  });

  const pipeline = loadPipeline('vocabulary', root, english);
  test('vocabulary: an analyze stage then a cards stage, each with a strict json_schema response format', () => {
    assert.deepEqual(
      pipeline.stages.map((s) => s.name),
      ['analyze', 'cards'],
    );
    assert.deepEqual(pipeline.fields, ['Front', 'Back']);
    for (const stage of pipeline.stages) {
      assert.equal(stage.responseFormat.type, 'json_schema');
      assert.equal(stage.responseFormat.json_schema.strict, true);
      assert.equal(stage.responseFormat.json_schema.name, stage.name);
      assert.equal(stage.jsonSchema['additionalProperties'], false);
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
    const ja = loadPipeline('vocabulary', root, { sourceLanguage: 'Japanese', targetLanguage: 'German' });
    const system = ja.stages[0]!.buildMessages({ item: { term: '食べる', context: {} }, previous: {} })[0]!
      .content;
    assert.match(system, /Japanese/);
    assert.match(system, /German/);
  });
  test('cards carry fields, tags (card, part of speech, card type) and a stable key; empty fronts are dropped', () => {
    const cards = pipeline.toCards(
      { term: '사과', context: {} },
      {
        analyze: { partOfSpeech: 'noun' },
        cards: {
          cards: [
            { front: '사과', back: 'apple', cardType: 'recognition', tags: ['food'] },
            { front: ' ', back: 'x', cardType: 'usage', tags: [] },
            { front: 'apple', back: '사과', cardType: 'recognition', tags: [] },
          ],
        },
      },
    );
    assert.deepEqual(cards, [
      {
        fields: { Front: '사과', Back: 'apple' },
        tags: ['food', 'noun', 'card::recognition'],
        key: '사과|recognition',
      },
      {
        fields: { Front: 'apple', Back: '사과' },
        tags: ['noun', 'card::recognition'],
        key: '사과|recognition#2',
      },
    ]);
  });
  test('the answer validator requires every property, refuses bad values and strips extra keys', () => {
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
    const schema = pipeline.stages[0]!.schema;
    assert.equal(schema.safeParse(analysis).success, true);
    const extra = schema.safeParse({ ...analysis, extra: 1 });
    assert.equal(extra.success, true);
    const { mnemonic: _m, ...missing } = analysis;
    assert.equal(schema.safeParse(missing).success, false);
    assert.equal(schema.safeParse({ ...analysis, meanings: [] }).success, false);
    assert.equal(
      pipeline.stages[1]!.schema.safeParse({ cards: [{ front: 'a', back: 'b', cardType: 'x', tags: [] }] })
        .success,
      false,
    );
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
      for (const [k, v] of Object.entries(n)) {
        if (k === 'properties') for (const p of Object.values(v as object)) visit(p);
        else visit(v);
      }
    };
    for (const name of builtinPipelineNames()) {
      for (const stage of loadPipeline(name, root, english).stages) visit(stage.jsonSchema);
    }
    // A property called "properties" is a property, not a keyword.
    const odd = providerJsonSchema({ type: 'object', properties: { properties: { type: 'string' } } });
    assert.deepEqual(odd['required'], ['properties']);
  });
});

describe('pipeline files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-pipeline-'));
  const base = {
    name: 'mine',
    stages: [
      {
        name: 'one',
        user: 'Term: {{term}}',
        schema: { type: 'object', properties: { a: { type: 'string' } } },
      },
    ],
    cards: { from: 'one', fields: { Front: '{{term}}', Back: '{{one.a}}' } },
  };
  const problem = (text: string): string => {
    try {
      parseDefinition(text, 'p.yaml', dir);
    } catch (e) {
      assert.ok(isFlashcardsError(e), String(e));
      assert.equal(e.exitCode, 2);
      return e.message;
    }
    assert.fail('the definition was accepted');
  };

  test('JSON is accepted as well as YAML', () => {
    const def = parseDefinition(JSON.stringify(base), 'p.json', dir);
    const p = compilePipeline(def, english);
    assert.deepEqual(p.toCards({ term: 't', context: {} }, { one: { a: 'x' } }), [
      { fields: { Front: 't', Back: 'x' }, tags: [], key: 't' },
    ]);
  });
  test('every problem names the file and the place in it', () => {
    assert.match(problem('name: [unclosed'), /^pipeline p\.yaml: line 1, column \d+: /);
    assert.match(problem(JSON.stringify({ ...base, stages: [] })), /^pipeline p\.yaml: stages: /);
    assert.match(
      problem(JSON.stringify({ ...base, stages: [{ ...base.stages[0], usr: 'x' }] })),
      /^pipeline p\.yaml: stages\[0\]: unknown key "usr"/,
    );
    assert.match(
      problem(JSON.stringify({ ...base, stages: [{ ...base.stages[0], schema: { type: 'array' } }] })),
      /stages\[0\]\.schema\.type: must be "object"/,
    );
    assert.match(
      problem(
        JSON.stringify({
          ...base,
          stages: [{ ...base.stages[0], schema: { type: 'object', properties: { a: { type: 'strin' } } } }],
        }),
      ),
      /stages\[0\]\.schema: not a usable JSON Schema/,
    );
    assert.match(
      problem(JSON.stringify({ ...base, cards: { ...base.cards, fields: { Front: '{{one.a}} {{tern}}' } } })),
      /cards\.fields\.Front: \{\{tern\}\} is not a known variable \(did you mean term\?\)/,
    );
    assert.match(
      problem(JSON.stringify({ ...base, cards: { ...base.cards, from: 'two' } })),
      /cards\.from: "two" does not start with a stage name/,
    );
    assert.match(
      problem(JSON.stringify({ ...base, stages: [{ ...base.stages[0], user: { file: 'missing.md' } }] })),
      /stages\[0\]\.user\.file: cannot read missing\.md/,
    );
  });
  test('prompt files are read from the pipeline file’s folder and below; paths and links out of it are refused', () => {
    const outer = mkdtempSync(join(tmpdir(), 'fc-prompts-'));
    const folder = join(outer, 'pipelines');
    mkdirSync(join(folder, 'prompts'), { recursive: true });
    writeFileSync(join(outer, 'secret.txt'), 'TOP SECRET {{term}}');
    writeFileSync(join(folder, 'prompts', 'user.md'), 'Term: {{term}}');
    writeFileSync(join(folder, '..dots.md'), 'Dots: {{term}}');
    symlinkSync(join(outer, 'secret.txt'), join(folder, 'link.md'));
    symlinkSync(outer, join(folder, 'up'));
    symlinkSync(join(folder, 'prompts', 'user.md'), join(folder, 'inside-link.md'));
    const withSystem = (system: unknown, user: unknown = 'Term: {{term}}'): string =>
      JSON.stringify({ ...base, stages: [{ ...base.stages[0], system, user }] });
    const load = (system: unknown, user?: unknown) => {
      const file = join(folder, 'p.json');
      writeFileSync(file, withSystem(system, user));
      return loadDefinition(file, 'p.json');
    };
    const refused = (system: unknown, user?: unknown): string => {
      try {
        load(system, user);
      } catch (e) {
        assert.ok(isFlashcardsError(e), String(e));
        assert.equal(e.exitCode, 2);
        assert.doesNotMatch(e.message, /SECRET/);
        return e.message;
      }
      assert.fail('the prompt file was read');
    };

    assert.equal(load({ file: 'prompts/user.md' }).prompts[0]?.system, 'Term: {{term}}');
    assert.equal(load({ file: './prompts/../prompts/user.md' }).prompts[0]?.system, 'Term: {{term}}');
    assert.equal(load({ file: join(folder, 'prompts', 'user.md') }).prompts[0]?.system, 'Term: {{term}}');
    assert.equal(load({ file: 'inside-link.md' }).prompts[0]?.system, 'Term: {{term}}');
    assert.equal(load({ file: '..dots.md' }).prompts[0]?.system, 'Dots: {{term}}');

    assert.equal(
      refused({ file: '../secret.txt' }),
      "pipeline p.json: stages[0].system.file: ../secret.txt is outside the pipeline file's folder",
    );
    assert.equal(
      refused({ file: join(outer, 'secret.txt') }),
      `pipeline p.json: stages[0].system.file: ${join(outer, 'secret.txt')} is outside the pipeline file's folder`,
    );
    assert.match(
      refused('x', { file: 'prompts/../../secret.txt' }),
      /^pipeline p\.json: stages\[0\]\.user\.file: prompts\/\.\.\/\.\.\/secret\.txt is outside/,
    );
    // A file outside is refused without being looked at: a missing one gets the same answer.
    assert.match(refused({ file: '../missing.txt' }), /\.\.\/missing\.txt is outside/);
    assert.equal(
      refused({ file: 'link.md' }),
      "pipeline p.json: stages[0].system.file: link.md leads (through a symbolic link) outside the pipeline file's folder",
    );
    assert.match(
      refused({ file: 'up/secret.txt' }),
      /up\/secret\.txt leads \(through a symbolic link\) outside/,
    );
    assert.match(refused({ file: 'prompts' }), /stages\[0\]\.system\.file: prompts is not a file$/);
    assert.match(refused({ file: '.' }), /stages\[0\]\.system\.file: \. is outside/);
    // parseDefinition (text already read) applies the same rule to the folder it is given.
    assert.throws(
      () => parseDefinition(withSystem({ file: '../secret.txt' }), 'p.json', folder),
      /stages\[0\]\.system\.file: \.\.\/secret\.txt is outside/,
    );
  });
  test('paths into answers must exist in the schemas, with a suggestion', () => {
    const listing = {
      ...base,
      stages: [
        {
          name: 'one',
          user: 'Term: {{term}}',
          schema: {
            type: 'object',
            properties: {
              a: { type: 'string' },
              cards: { type: 'array', items: { type: 'object', properties: { front: { type: 'string' } } } },
            },
          },
        },
      ],
      cards: { from: 'one.cards', fields: { Front: '{{card.front}}' } },
    };
    assert.doesNotThrow(() => parseDefinition(JSON.stringify(listing), 'p.yaml', dir));
    assert.match(
      problem(
        JSON.stringify({ ...listing, cards: { ...listing.cards, fields: { Front: '{{card.frnt}}' } } }),
      ),
      /cards\.fields\.Front: \{\{card\.frnt\}\}: a card has no "frnt" in its schema \(did you mean front\?\)/,
    );
    assert.match(
      problem(JSON.stringify({ ...listing, cards: { ...listing.cards, from: 'one.card' } })),
      /cards\.from: one\.card: the one stage's answer has no "card" in its schema \(did you mean cards\?\)/,
    );
    assert.match(
      problem(JSON.stringify({ ...listing, cards: { ...listing.cards, tags: ['{{one.cards.first}}'] } })),
      /cards\.tags\[0\]: \{\{one\.cards\.first\}\}/,
    );
    assert.doesNotThrow(() =>
      parseDefinition(
        JSON.stringify({
          ...listing,
          cards: { ...listing.cards, tags: ['{{one.cards.0.front}}', '{{row.level}}'] },
        }),
        'p.yaml',
        dir,
      ),
    );
  });
  test('misspelt keys are named with a suggestion, at any level; index is reserved', () => {
    const { stages, ...rest } = base;
    assert.match(
      problem(JSON.stringify({ ...rest, stagse: stages })),
      /^pipeline p\.yaml: unknown key "stagse" \(did you mean "stages"\?\)/,
    );
    assert.match(
      problem(JSON.stringify({ ...base, cards: { ...base.cards, tag: ['x'] } })),
      /^pipeline p\.yaml: cards: unknown key "tag" \(did you mean "tags"\?\)/,
    );
    assert.match(
      problem(JSON.stringify({ ...base, stages: [{ ...base.stages[0], name: 'index' }] })),
      /stages\[0\]\.name: "index" is reserved/,
    );
    assert.throws(() => loadPipelineDefinition('vocab', root), /did you mean vocabulary\?/);
  });
  test('a stage may only read the stages before it', () => {
    const two = {
      ...base,
      stages: [
        { ...base.stages[0], user: '{{two.b}}' },
        { name: 'two', user: '{{one.a}}', schema: { type: 'object', properties: { b: { type: 'string' } } } },
      ],
    };
    assert.match(problem(JSON.stringify(two)), /stages\[0\]\.user: \{\{two\.b\}\} is not a known variable/);
  });
  test('the fixture pipeline loads from a path; an unknown name lists the built-in ones', () => {
    const def = loadPipelineDefinition('fixtures/pipelines/grammar.yaml', root);
    assert.deepEqual(
      def.stages.map((s) => s.name),
      ['explain', 'practice'],
    );
    assert.match(def.prompts[0]!.system ?? '', /grammar teacher/);
    assert.throws(
      () => loadPipelineDefinition('vocabluary', root),
      /unknown pipeline "vocabluary" \(did you mean vocabulary\?\); built-in: cloze, topics, vocabulary/,
    );
    const file = join(dir, 'x.yaml');
    writeFileSync(file, 'name: x\n');
    assert.throws(() => loadPipelineDefinition(file, root), /pipeline .*x\.yaml: stages: /);
  });

  /** The base pipeline with `schema` as its one stage's schema. */
  const withSchema = (schema: Record<string, unknown>): string =>
    JSON.stringify({ ...base, stages: [{ ...base.stages[0], schema }] });

  test('an unknown JSON Schema keyword is refused at any depth, with its place and a suggestion', () => {
    const meanings = (item: Record<string, unknown>) =>
      withSchema({
        type: 'object',
        properties: { a: { type: 'string' }, meanings: { type: 'array', items: item } },
      });
    assert.equal(
      problem(meanings({ type: 'object', propertes: { gloss: { type: 'string' } } })),
      'pipeline p.yaml: stages[0].schema.properties.meanings.items.propertes: unknown JSON Schema keyword "propertes" (did you mean "properties"?)',
    );
    assert.match(
      problem(withSchema({ typ: 'object', properties: { a: { type: 'string' } } })),
      /^pipeline p\.yaml: stages\[0\]\.schema\.typ: unknown JSON Schema keyword "typ" \(did you mean "type"\?\)$/,
    );
    assert.match(
      problem(
        withSchema({
          type: 'object',
          properties: { a: { anyOf: [{ type: 'string' }, { type: 'number', mininum: 0 }] } },
        }),
      ),
      /stages\[0\]\.schema\.properties\.a\.anyOf\[1\]\.mininum: unknown JSON Schema keyword "mininum" \(did you mean "minimum"\?\)/,
    );
    assert.match(
      problem(
        withSchema({
          type: 'object',
          properties: { a: { $ref: '#/$defs/x' } },
          $defs: { x: { type: 'string', maxLenght: 3 } },
        }),
      ),
      /stages\[0\]\.schema\.\$defs\.x\.maxLenght: .*\(did you mean "maxLength"\?\)/,
    );
    assert.match(
      problem(withSchema({ type: 'object', properties: { a: { type: 'string', colour: 'red' } } })),
      /stages\[0\]\.schema\.properties\.a\.colour: unknown JSON Schema keyword "colour"$/,
    );
  });

  test('property names, enum values, defaults and examples are data, and every keyword providers or the validator know passes', () => {
    const def = parseDefinition(
      withSchema({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        title: 'Answer',
        description: 'an answer',
        $comment: 'property names that look like keywords are names',
        type: 'object',
        properties: {
          a: { type: 'string', minLength: 1, maxLength: 80, pattern: '^\\S', format: 'email', default: 'x' },
          propertes: { type: ['string', 'null'], examples: [{ propertes: 1 }] },
          type: { enum: [{ colour: 'red' }, 'plain'], deprecated: false, readOnly: false, writeOnly: false },
          n: {
            type: 'number',
            minimum: 0,
            maximum: 10,
            exclusiveMinimum: -1,
            exclusiveMaximum: 11,
            multipleOf: 0.5,
          },
          list: {
            type: 'array',
            items: { $ref: '#/$defs/entry' },
            minItems: 0,
            maxItems: 3,
            uniqueItems: true,
            contains: { type: 'object' },
            minContains: 0,
            maxContains: 3,
          },
          tuple: { type: 'array', prefixItems: [{ type: 'string' }], items: false },
          map: {
            type: 'object',
            patternProperties: { '^x': { type: 'string' } },
            propertyNames: { pattern: '^[a-z]' },
            minProperties: 0,
            maxProperties: 5,
            additionalProperties: { type: 'string' },
          },
          either: { oneOf: [{ const: 1 }, { type: 'string', nullable: true }], allOf: [{}] },
        },
        required: ['a'],
        $defs: { entry: { type: 'object', properties: { b: { type: 'string' } } } },
      }),
      'p.yaml',
      dir,
    );
    assert.equal(def.stages.length, 1);
  });

  test('cards.from must name a list of objects or an object in its stage’s schema', () => {
    const shapes = {
      type: 'object',
      properties: {
        a: { type: 'string' },
        words: { type: 'array', items: { type: 'string' } },
        rows: { type: 'array', items: { type: 'array', items: { type: 'string' } } },
        card: { type: 'object', properties: { front: { type: 'string' } } },
        maybe: { type: ['array', 'null'], items: { anyOf: [{ type: 'object' }, { type: 'null' }] } },
      },
    };
    const from = (path: string): string =>
      JSON.stringify({
        ...base,
        stages: [{ ...base.stages[0], schema: shapes }],
        cards: { from: path, fields: { Front: '{{term}}' } },
      });
    assert.equal(
      problem(from('one.words')),
      `pipeline p.yaml: cards.from: "one.words" is a list of strings in the one stage's schema; cards come from a list of objects (a card each) or an object (one card)`,
    );
    assert.match(problem(from('one.a')), /cards\.from: "one\.a" is a string in the one stage's schema/);
    assert.match(problem(from('one.rows')), /"one\.rows" is a list of lists/);
    for (const usable of ['one', 'one.card', 'one.maybe'])
      assert.doesNotThrow(() => parseDefinition(from(usable), 'p.yaml', dir), usable);
  });

  test('a .json pipeline file with a syntax error says so, with the line and column', () => {
    const json = (text: string): string => {
      try {
        parseDefinition(text, 'p.json', dir);
      } catch (e) {
        assert.ok(isFlashcardsError(e), String(e));
        assert.equal(e.exitCode, 2);
        return e.message;
      }
      assert.fail('the definition was accepted');
    };
    const pretty = JSON.stringify(base, null, 2);
    assert.equal(
      json(pretty.replace('"mine",', '"mine",,')),
      'pipeline p.json: line 2, column 18: JSON syntax error: expected a key in double quotes (JSON allows no comma after the last entry)',
    );
    assert.equal(
      json(pretty.replace(/\n\s*\}\n\s*\]/, ',\n}]')),
      'pipeline p.json: line 15, column 1: JSON syntax error: expected a key in double quotes (JSON allows no comma after the last entry)',
    );
    assert.match(
      json(pretty.replace('"one"', 'one')),
      /^pipeline p\.json: line 5, column 15: JSON syntax error: unexpected text here \(strings and keys need double quotes\)/,
    );
    assert.match(
      json(pretty.replace('"mine"', '"mine')),
      /^pipeline p\.json: line 2, column 11: JSON syntax error: a string is not closed/,
    );
    assert.match(
      json(`{"name": "x", ${pretty.slice(1)}`),
      /^pipeline p\.json: line 2, column 3: JSON syntax error: the key "name" is given twice in the same object$/,
    );
    assert.match(
      json(pretty.slice(0, -1)),
      /line \d+, column 1: JSON syntax error: expected "}" to close the object; got the end of the file/,
    );
    // A byte order mark is not a mistake; YAML files stay YAML.
    assert.equal(parseDefinition(`\uFEFF${pretty}`, 'p.json', dir).name, 'mine');
    assert.match(problem('name: [unclosed'), /^pipeline p\.yaml: line 1, column \d+: /);
  });
});
