import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  formatFailureGroup,
  groupFailures,
  normaliseFailure,
  readFailures,
} from '../src/batch/failure-groups.ts';
import type { ItemFailure } from '../src/batch/store.ts';

describe('failure groups: normalising a message', () => {
  test('waits with units are one cause; a short term that is a word of the message is masked only where quoted', () => {
    const waits = ['240ms', '1.2s', '1.414s', '2s'].map(
      (w) => `rate limit reached for gpt-4o-mini: Please try again in ${w}. Visit https://x.example/limits`,
    );
    assert.equal(new Set(waits.map((m) => normaliseFailure(m, 'apple'))).size, 1);
    assert.equal(
      normaliseFailure('no answer in time (timeout 60s) for "time"', 'time'),
      'no answer in time (timeout <n>) for "<term>"',
    );
    assert.equal(normaliseFailure('HTTP 500 from the provider', '500'), 'HTTP 500 from the provider');
  });

  test('numbers become <n>; the HTTP status and the URL stay', () => {
    assert.equal(
      normaliseFailure(
        'provider returned HTTP 500 Internal Server Error from http://127.0.0.1:41234/v1 after 3 attempts in 12.5 s',
        '사과',
      ),
      'provider returned HTTP 500 Internal Server Error from http://127.0.0.1:41234/v1 after <n> attempts in <n> s',
    );
  });

  test('JSON pointer indexes are masked: /cards/<n>/front', () => {
    assert.equal(
      normaliseFailure('answer did not match the schema at /cards/3/front: expected string', 'x'),
      'answer did not match the schema at /cards/<n>/front: expected string',
    );
  });

  test("the item's own term is <term>, quoted text is <text>, both in double and single quotes", () => {
    assert.equal(
      normaliseFailure(
        'the answer\'s front "사과 (apple)" does not contain "사과"; got \'apple pie\'',
        '사과',
      ),
      'the answer\'s front "<text>" does not contain "<term>"; got \'<text>\'',
    );
  });

  test('ids are <id>: request ids, hashes, uuids; words with digits (gpt-4o-mini) are kept', () => {
    assert.equal(
      normaliseFailure(
        'model gpt-4o-mini failed: request req_8f3a2b91c0 (trace 3f2a9c1e-77b0-4d3e-9a51-0c2b7e9d4a10) id 9f86d081884c7d65',
        'x',
      ),
      'model gpt-4o-mini failed: request <id> (trace <id>) id <id>',
    );
  });

  test('two items failing the same way give the same message', () => {
    const a = normaliseFailure('cannot parse "감" at row 4: expected 2 fields, got 3', '감');
    const b = normaliseFailure('cannot parse "포도" at row 17: expected 2 fields, got 5', '포도');
    assert.equal(a, b);
    assert.equal(a, 'cannot parse "<term>" at row <n>: expected <n> fields, got <n>');
  });

  test('an empty term masks nothing', () => {
    assert.equal(normaliseFailure('request timed out after 60 s', ''), 'request timed out after <n> s');
  });
});

describe('failure groups: grouping', () => {
  const f = (item: number, term: string, errorKind: string, message: string): ItemFailure => ({
    item,
    term,
    errorKind,
    message,
  });
  const failures = [
    f(2, '배', 'invalid_response', 'answer did not match the schema at /cards/0/front'),
    f(3, '감', 'server', 'provider returned HTTP 500 Internal Server Error'),
    f(5, '사과', 'server', 'provider returned HTTP 502 Bad Gateway'),
    f(7, '포도', 'server', 'provider returned HTTP 500 Internal Server Error'),
    f(9, '귤', 'invalid_response', 'answer did not match the schema at /cards/2/front'),
    f(11, '밤', 'server', 'provider returned HTTP 500 Internal Server Error'),
    f(12, '밤', 'timeout', 'provider returned HTTP 500 Internal Server Error'),
  ];

  test('by kind and message, most frequent first, ties by the earliest item; the example is the first item', () => {
    assert.deepEqual(groupFailures(failures), [
      {
        errorKind: 'server',
        message: 'provider returned HTTP 500 Internal Server Error',
        count: 3,
        example: { item: 3, term: '감', message: 'provider returned HTTP 500 Internal Server Error' },
      },
      {
        errorKind: 'invalid_response',
        message: 'answer did not match the schema at /cards/<n>/front',
        count: 2,
        example: { item: 2, term: '배', message: 'answer did not match the schema at /cards/0/front' },
      },
      {
        errorKind: 'server',
        message: 'provider returned HTTP 502 Bad Gateway',
        count: 1,
        example: { item: 5, term: '사과', message: 'provider returned HTTP 502 Bad Gateway' },
      },
      {
        errorKind: 'timeout',
        message: 'provider returned HTTP 500 Internal Server Error',
        count: 1,
        example: { item: 12, term: '밤', message: 'provider returned HTTP 500 Internal Server Error' },
      },
    ]);
  });

  test('no failures, no groups', () => {
    assert.deepEqual(groupFailures([]), []);
  });

  test('readFailures numbers items from 1 as people count rows, through BatchResults.failures', async () => {
    let asked: { batchId: string; limit: number } | undefined;
    const results = {
      failures: async (batchId: string, limit: number) => {
        asked = { batchId, limit };
        return [f(0, '사과', 'server', 'provider returned HTTP 500')];
      },
    };
    const read = await readFailures(results, 'b1');
    assert.equal(asked?.batchId, 'b1');
    assert.equal(read.failures[0]?.item, 1);
    assert.equal(read.groups[0]?.example.item, 1);
  });

  test('a group as one line of text', () => {
    const [first] = groupFailures(failures);
    assert.ok(first);
    assert.equal(
      formatFailureGroup(first),
      '3× server: provider returned HTTP 500 Internal Server Error (e.g. item 3 "감")',
    );
  });
});
