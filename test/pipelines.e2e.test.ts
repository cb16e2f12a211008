import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readAnkiPackage } from 'anki-reader';
import { ankiField } from '../src/output/anki.ts';
import { cliEnv, repoRoot, runCli, tempDir } from './support/cli.ts';
import { type FakeAnkiConnect, startFakeAnkiConnect } from './support/fake-anki-connect.ts';
import { type MockServer, startMockServer } from './support/mock-server.ts';

const API_KEY = 'sk-test-pipelines-0123456789';
const grammar = join(repoRoot, 'fixtures', 'pipelines', 'grammar.yaml');
const grammarInput = join(repoRoot, 'fixtures', 'grammar-points.csv');
const korean20 = join(repoRoot, 'fixtures', 'korean-20.csv');

interface JsonCard {
  item: number;
  term: string;
  fields: Record<string, string>;
  tags: string[];
  key: string;
}

describe('user-defined pipelines, output options and AnkiConnect, through the built CLI', () => {
  let server: MockServer;
  let anki: FakeAnkiConnect;
  before(async () => {
    server = await startMockServer({ seed: 11, requireAuth: true });
    anki = await startFakeAnkiConnect();
  });
  after(async () => {
    await server.close();
    await anki.close();
  });
  const env = (home: string): NodeJS.ProcessEnv =>
    cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: API_KEY, FLASHCARDS_BASE_URL: server.url });

  test('a two-stage pipeline file from fixtures/ runs end to end: both stages asked, cards from both', async () => {
    const home = tempDir();
    server.clear();
    const r = await runCli(
      ['process', grammarInput, '--pipeline', grammar, '--format', 'json', '--stdout', '-q'],
      {
        env: env(home),
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const names = server.requests.map(
      (q) =>
        (q.body as { response_format: { json_schema: { name: string } } }).response_format.json_schema.name,
    );
    assert.equal(names.filter((n) => n === 'explain').length, 3);
    // Identical practice prompts (the mock explains every pattern alike) are answered by the cache.
    assert.ok(names.includes('practice'));
    const practice = server.requests.find(
      (q) =>
        (q.body as { response_format: { json_schema: { name: string } } }).response_format.json_schema
          .name === 'practice',
    );
    // The second prompt is built from the first stage's answer.
    assert.match(JSON.stringify(practice?.body), /Grammar point .+ register/);
    const cards = JSON.parse(r.stdout) as JsonCard[];
    assert.deepEqual([...new Set(cards.map((c) => c.term))], ['-(으)ㄹ 수 있다', '-고 싶다', '-아/어서']);
    for (const card of cards) {
      assert.deepEqual(Object.keys(card.fields), ['Prompt', 'Answer', 'Pattern', 'Formation']);
      assert.ok(card.fields['Prompt']);
      assert.ok(card.tags.includes('grammar'));
    }
    assert.ok(
      cards.some((c) => c.tags.includes('intermediate')),
      'the level column reaches the tags',
    );
  });

  test('a .tsv deck of a pipeline with its own note type warns that Anki may not have it, and says what to do', async () => {
    const home = tempDir();
    const r = await runCli(['process', grammarInput, '--pipeline', grammar, '-o', join(home, 'g.tsv')], {
      env: env(home),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^warning: the deck's note type "Grammar Practice" .* write an \.apkg instead \(-o deck\.apkg\)/m,
    );
    const apkg = await runCli(['process', grammarInput, '--pipeline', grammar, '-o', join(home, 'g.apkg')], {
      env: env(home),
    });
    assert.equal(apkg.code, 0, apkg.stderr);
    assert.doesNotMatch(apkg.stderr, /warning: the deck's note type/);
  });

  test('pipelines show prints a self-contained file that runs as it is', async () => {
    const home = tempDir();
    const shown = await runCli(['pipelines', 'show', 'topics'], { env: env(home) });
    assert.equal(shown.code, 0, shown.stderr);
    const file = join(home, 'my-topics.yaml');
    writeFileSync(file, shown.stdout);
    const input = join(home, 'topics.txt');
    writeFileSync(input, 'Photosynthesis\nThe water cycle\n');
    const r = await runCli(['process', input, '--pipeline', file, '-o', join(home, 'q.csv'), '-q'], {
      env: env(home),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      readFileSync(join(home, 'q.csv'), 'utf8'),
      /^term,Question,Answer,Explanation,Topic,tags\r\n/,
    );
    const list = await runCli(['pipelines', 'list', '--json'], { env: env(home) });
    assert.deepEqual(
      (JSON.parse(list.stdout) as { pipelines: { name: string }[] }).pipelines.map((p) => p.name),
      ['cloze', 'topics', 'vocabulary'],
    );
  });

  test('a broken pipeline file fails at once, in one line naming the file and the place, exit 2', async () => {
    const home = tempDir();
    server.clear();
    const broken = join(repoRoot, 'fixtures', 'pipelines', 'broken.yaml');
    const r = await runCli(['process', grammarInput, '--pipeline', broken, '-q'], { env: env(home) });
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^error: pipeline .*broken\.yaml: stages\[1\]\.user: \{\{frist\.a\}\} is not a known variable \(did you mean first\?\)$/m,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(server.requests.length, 0);
  });

  test('a prompt file outside the pipeline file’s folder: exit 2 before any request, for process and pipelines show', async () => {
    const home = tempDir();
    server.clear();
    writeFileSync(join(home, 'secret.txt'), 'SECRET-NOT-A-PROMPT {{term}}');
    mkdirSync(join(home, 'shared'));
    writeFileSync(
      join(home, 'shared', 'p.yaml'),
      [
        'name: leak',
        'stages:',
        '  - name: one',
        '    system: { file: ../secret.txt }',
        '    user: "Term: {{term}}"',
        '    schema: { type: object, properties: { a: { type: string } } }',
        'cards:',
        '  from: one',
        '  fields: { Front: "{{term}}", Back: "{{one.a}}" }',
        '',
      ].join('\n'),
    );
    const line =
      /^error: pipeline shared\/p\.yaml: stages\[0\]\.system\.file: \.\.\/secret\.txt is outside the pipeline file's folder$/m;
    const r = await runCli(['process', grammarInput, '--pipeline', 'shared/p.yaml', '-q'], {
      env: env(home),
      cwd: home,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, line);
    assert.equal(r.stderr.match(/^error: /gm)?.length, 1);
    assert.doesNotMatch(r.stderr + r.stdout, /SECRET|\n\s+at /);
    assert.equal(server.requests.length, 0, 'nothing was sent');

    const shown = await runCli(['pipelines', 'show', 'shared/p.yaml'], { env: env(home), cwd: home });
    assert.equal(shown.code, 2, shown.stderr);
    assert.match(shown.stderr, line);
    assert.equal(shown.stdout, '');
    assert.doesNotMatch(shown.stderr, /SECRET/);
  });

  test('a schema keyword misspelt at any depth (propertes:) fails at once, naming the place, exit 2', async () => {
    const home = tempDir();
    server.clear();
    writeFileSync(
      join(home, 'typo.yaml'),
      [
        'name: typo',
        'stages:',
        '  - name: analyze',
        '    user: "Term: {{term}}"',
        '    schema:',
        '      type: object',
        '      properties:',
        '        meanings:',
        '          type: array',
        '          items:',
        '            type: object',
        '            propertes: { gloss: { type: string } }',
        'cards:',
        '  from: analyze.meanings',
        '  fields: { Front: "{{term}}", Back: "{{card.gloss}}" }',
        '',
      ].join('\n'),
    );
    const r = await runCli(['process', grammarInput, '--pipeline', 'typo.yaml', '-q'], {
      env: env(home),
      cwd: home,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^error: pipeline typo\.yaml: stages\[0\]\.schema\.properties\.meanings\.items\.propertes: unknown JSON Schema keyword "propertes" \(did you mean "properties"\?\)$/m,
    );
    assert.equal(r.stderr.match(/^error: /gm)?.length, 1);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(r.stdout, '');
    assert.equal(server.requests.length, 0, 'nothing was sent');
  });

  test('--fields, --tags and --deck shape the output', async () => {
    const home = tempDir();
    const r = await runCli(
      [
        'process',
        korean20,
        '--fields',
        'back,term',
        '--tags',
        'top20,korean',
        '--deck',
        'Mine::Top',
        '--stdout',
        '-q',
      ],
      { env: env(home) },
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.ok(lines.includes('#deck:Mine::Top'));
    assert.ok(lines.includes('#columns:Back\tterm\tGUID'));
    const first = lines.find((l) => !l.startsWith('#'))!.split('\t');
    assert.equal(first.length, 3);
    assert.equal(first[1], '내가');
  });

  test('--to anki-connect adds the notes in batches; a second push adds no duplicates', async () => {
    const home = tempDir();
    const args = [
      'process',
      korean20,
      '--to',
      'anki-connect',
      '--anki-url',
      anki.url,
      '--deck',
      'Korean::E2E',
      '--json',
    ];
    const r = await runCli(args, { env: env(home) });
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as {
      output: string | null;
      cards: number;
      ankiConnect: { added: number; duplicates: number; repeated: number; failed: number };
    };
    assert.equal(summary.output, null, 'no file is written unless -o is given');
    const added = anki.notes.filter((n) => n.deckName === 'Korean::E2E');
    assert.ok(added.length >= 20, `${added.length} notes`);
    assert.equal(summary.ankiConnect.added, added.length);
    const push = summary.ankiConnect;
    assert.equal(push.duplicates, 0, 'the deck was empty');
    assert.equal(push.added + push.repeated + push.failed, summary.cards);
    assert.ok(anki.requests.some((q) => q.action === 'addNotes'));
    assert.ok(anki.requests.some((q) => q.action === 'canAddNotes'));

    const again = await runCli(args, { env: env(home) });
    assert.equal(again.code, 0, again.stderr);
    const second = JSON.parse(again.stdout) as { ankiConnect: { added: number; duplicates: number } };
    assert.equal(second.ankiConnect.added, 0);
    assert.equal(anki.notes.filter((n) => n.deckName === 'Korean::E2E').length, added.length);
  });

  test('an .apkg of a 20-item batch reads back (anki-reader) with every stored card; GUIDs are stable', async () => {
    const home = tempDir();
    const apkg = join(home, 'deck.apkg');
    const r = await runCli(['process', korean20, '-o', apkg, '--json'], { env: env(home) });
    assert.equal(r.code, 0, r.stderr);
    const { batchId, cards: count } = JSON.parse(r.stdout) as { batchId: string; cards: number };
    // The stored results, exported without any request, are what the package must hold.
    const exported = await runCli(['batches', 'export', batchId, '-o', '-', '--format', 'json'], {
      env: env(home),
    });
    const stored = JSON.parse(exported.stdout) as JsonCard[];
    assert.equal(stored.length, count);
    assert.ok(count >= 20);

    const read = async (file: string) => {
      const { collection } = await readAnkiPackage(new Blob([readFileSync(file)]));
      const db = collection.getRawCollection() as {
        exec(sql: string): Array<{ values: unknown[][] }>;
      };
      const notes = (db.exec('SELECT guid, flds FROM notes ORDER BY id')[0]?.values ?? []) as [
        string,
        string,
      ][];
      const decks = Object.values(collection.getDecks()).map((d) => d.getName());
      return { notes, decks };
    };
    const first = await read(apkg);
    assert.ok(first.decks.includes('Korean Vocabulary'));
    assert.equal(first.notes.length, count);
    first.notes.forEach(([, flds], i) => {
      const card = stored[i]!;
      assert.deepEqual(flds.split('\x1f'), [
        ankiField(card.fields['Front']!),
        ankiField(card.fields['Back']!),
      ]);
    });

    const again = join(home, 'again.apkg');
    assert.equal((await runCli(['batches', 'export', batchId, '-o', again], { env: env(home) })).code, 0);
    const second = await read(again);
    assert.deepEqual(
      second.notes.map(([guid]) => guid),
      first.notes.map(([guid]) => guid),
    );
    assert.equal(new Set(first.notes.map(([guid]) => guid)).size, count);
  });

  test('-o deck.apkg writes a package even when the config or environment say another format', async () => {
    const home = tempDir();
    const apkg = join(home, 'deck.apkg');
    const r = await runCli(['process', grammarInput, '--pipeline', grammar, '-o', apkg, '-q'], {
      env: { ...env(home), FLASHCARDS_FORMAT: 'anki' },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(apkg).subarray(0, 2).toString('latin1'), 'PK');
  });

  test('a pipeline path in a config file is read from the config file’s directory', async () => {
    const home = tempDir();
    const project = join(home, 'project');
    mkdirSync(join(project, 'pipelines', 'prompts'), { recursive: true });
    mkdirSync(join(project, 'sub'));
    writeFileSync(join(project, 'pipelines', 'grammar.yaml'), readFileSync(grammar));
    writeFileSync(
      join(project, 'pipelines', 'prompts', 'explain.system.md'),
      readFileSync(join(repoRoot, 'fixtures', 'pipelines', 'prompts', 'explain.system.md')),
    );
    writeFileSync(join(project, '.flashcardrc'), 'pipeline: pipelines/grammar.yaml\n');
    const r = await runCli(['process', grammarInput, '--format', 'json', '--stdout', '-q'], {
      env: env(home),
      cwd: join(project, 'sub'),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok((JSON.parse(r.stdout) as JsonCard[]).every((c) => 'Prompt' in c.fields));
  });

  test('items whose answers make no card: a warning naming the pipeline, and exit 1 when none made any', async () => {
    const home = tempDir();
    const file = join(home, 'none.yaml');
    writeFileSync(
      file,
      [
        'name: none',
        'stages:',
        '  - name: one',
        '    user: "Term: {{term}}"',
        '    schema:',
        '      type: object',
        '      properties:',
        '        cards: { type: array, maxItems: 0, items: { type: object, properties: { q: { type: string } } } }',
        'cards:',
        '  from: one.cards',
        '  fields: { Q: "{{card.q}}" }',
        '',
      ].join('\n'),
    );
    const r = await runCli(
      ['process', grammarInput, '--pipeline', file, '-o', join(home, 'x.tsv'), '--no-progress'],
      {
        env: env(home),
      },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /warning: 3 of 3 finished item\(s\) made no card: .* check the cards section of .*none\.yaml/,
    );
    // The batch is stored as what the exit code says, not as done.
    const listed = await runCli(['batches', 'list', '--json'], { env: env(home) });
    const { batches } = JSON.parse(listed.stdout) as { batches: { status: string }[] };
    assert.deepEqual(
      batches.map((b) => b.status),
      ['failed'],
    );
  });

  test('batches export takes the last run’s deck, and --deck/--tags/--fields override it', async () => {
    const home = tempDir();
    const first = await runCli(
      ['process', korean20, '--deck', 'First', '-o', join(home, 'a.tsv'), '--json'],
      { env: env(home) },
    );
    const { batchId } = JSON.parse(first.stdout) as { batchId: string };
    await runCli(['process', korean20, '--deck', 'Second', '-o', join(home, 'b.tsv'), '-q'], {
      env: env(home),
    });
    const latest = await runCli(['batches', 'export', batchId, '-o', '-'], { env: env(home) });
    assert.match(latest.stdout, /^#deck:Second$/m);
    const over = await runCli(
      ['batches', 'export', batchId, '-o', '-', '--deck', 'Third', '--tags', 'x,y', '--fields', 'Front'],
      { env: env(home) },
    );
    assert.equal(over.code, 0, over.stderr);
    assert.match(over.stdout, /^#deck:Third$/m);
    assert.match(over.stdout, /^#columns:Front\tGUID$/m);
    assert.match(over.stdout, /^#tags:x y$/m);
    const spaced = await runCli(['batches', 'export', batchId, '-o', '-', '--tags', 'two words'], {
      env: env(home),
    });
    assert.equal(spaced.code, 2, 'a tag with a space is refused, as by process');
    assert.match(spaced.stderr, /--tags must be a list of tags without spaces/);
    assert.equal(spaced.stdout, '');
  });

  test('a term listed twice still gives every note its own GUID', async () => {
    const home = tempDir();
    const input = join(home, 'twice.txt');
    writeFileSync(input, '사과\n사과\n사과\n');
    const r = await runCli(['process', input, '--stdout', '-q'], { env: env(home) });
    assert.equal(r.code, 0, r.stderr);
    const guids = r.stdout
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.split('\t').at(-1));
    assert.ok(guids.length >= 3);
    assert.equal(new Set(guids).size, guids.length);
  });

  test('--anki-url without --to anki-connect is a usage error', async () => {
    const r = await runCli(['process', korean20, '--anki-url', 'http://127.0.0.1:1'], {
      env: env(tempDir()),
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--anki-url only matters with --to anki-connect/);
  });

  test('Anki not running: exit 3 with one line, before any provider request', async () => {
    const home = tempDir();
    server.clear();
    const closed = await startFakeAnkiConnect();
    await closed.close();
    const r = await runCli(['process', korean20, '--to', 'anki-connect', '--anki-url', closed.url, '-q'], {
      env: env(home),
    });
    assert.equal(r.code, 3, r.stderr);
    assert.match(
      r.stderr,
      /^error: cannot reach AnkiConnect at http:\/\/127\.0\.0\.1:\d+ \(connection refused\)$/m,
    );
    assert.equal(server.requests.length, 0);
  });
});
