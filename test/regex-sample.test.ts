import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compilePattern, generateFromPattern } from '../src/client/regex-sample.ts';
import { seededRandom } from '../src/core/random.ts';

describe('generateFromPattern', () => {
  test('pattern generation covers classes, groups, alternation and counted repeats', () => {
    const rnd = seededRandom(7);
    for (const pattern of [
      '^[A-Z]{3}$',
      '^(ab|cd)+-\\d{2,4}$',
      '^[^0-9\\s]{5}x?$',
      '^\\w+@\\w+\\.(com|org)$',
    ]) {
      for (let i = 0; i < 10; i++) {
        const s = generateFromPattern(pattern, rnd);
        assert.ok(s !== undefined && new RegExp(pattern, 'u').test(s), `${pattern} -> ${s}`);
      }
    }
  });

  test('\\u{...} escapes and ranges outside ASCII generate what they say (patterns with the u flag)', () => {
    const rnd = seededRandom(7);
    for (const pattern of ['^[\\u{1F600}-\\u{1F64F}]$', '^[가-힣]{2}$', '^\\u00e9t\\u00e9$']) {
      for (let i = 0; i < 10; i++) {
        const s = generateFromPattern(pattern, rnd);
        assert.ok(s !== undefined && new RegExp(pattern, 'u').test(s), `${pattern} -> ${s}`);
      }
    }
  });

  test('the same seed gives the same strings', () => {
    const run = (): (string | undefined)[] => {
      const rnd = seededRandom(42);
      return Array.from({ length: 5 }, () => generateFromPattern('^[a-z]{2,5}-(x|y)\\d$', rnd));
    };
    assert.deepEqual(run(), run());
  });

  test('lookaround and an unclosed group give undefined, so the caller keeps its own text', () => {
    const rnd = seededRandom(1);
    assert.equal(generateFromPattern('^(?!x)[a-z]+$', rnd), undefined);
    assert.equal(generateFromPattern('^(ab', rnd), undefined);
  });
});

describe('compilePattern', () => {
  test('compiles with the u flag when it can, without it when only that works, else undefined', () => {
    assert.equal(compilePattern('^\\p{L}+$')?.flags, 'u');
    // An identity escape of a letter is a syntax error with u and a plain letter without it.
    assert.equal(compilePattern('^\\a$')?.flags, '');
    assert.equal(compilePattern('(unclosed'), undefined);
  });
});
