import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadSettings } from '../src/config/index.ts';
import { endpointUrl, trimBaseUrl } from '../src/core/endpoint-url.ts';
import { providerKey, publicUrl } from '../src/core/provider-key.ts';

const AZURE = 'https://x.openai.azure.com/openai/deployments/d?api-version=2024-10-21';

describe('endpoint URLs', () => {
  test('append the endpoint to the base path and keep the query (Azure OpenAI needs ?api-version=)', () => {
    assert.equal(
      endpointUrl(AZURE, 'chat/completions'),
      'https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21',
    );
    assert.equal(endpointUrl('https://h/v1/?api-version=1', 'models'), 'https://h/v1/models?api-version=1');
  });
  test('are the same with or without trailing slashes, on a bare host and on mock://', () => {
    assert.equal(
      endpointUrl('http://127.0.0.1:1234/v1', 'chat/completions'),
      'http://127.0.0.1:1234/v1/chat/completions',
    );
    assert.equal(
      endpointUrl('http://127.0.0.1:1234/v1//', '/chat/completions'),
      'http://127.0.0.1:1234/v1/chat/completions',
    );
    assert.equal(endpointUrl('https://h', 'models'), 'https://h/models');
    assert.equal(endpointUrl('https://h/', 'models'), 'https://h/models');
    assert.equal(endpointUrl('mock://local', 'chat/completions'), 'mock://local/chat/completions');
  });
  test('drop the fragment, which is never sent', () => {
    assert.equal(endpointUrl('https://h/v1?a=1#x', 'models'), 'https://h/v1/models?a=1');
  });
  test('the base URL setting loses trailing slashes of its path only, never a character of its query', async () => {
    assert.equal(trimBaseUrl('https://h/v1/'), 'https://h/v1');
    assert.equal(trimBaseUrl('https://h/v1/?next=/a/'), 'https://h/v1?next=/a/');
    assert.equal(trimBaseUrl(AZURE), AZURE);
    const dir = mkdtempSync(join(tmpdir(), 'fc-url-'));
    const { settings } = await loadSettings({
      cwd: dir,
      env: {},
      flags: { baseUrl: 'https://h/v1//?next=/a/' },
    });
    assert.equal(settings.baseUrl, 'https://h/v1?next=/a/');
  });
});

describe('publicUrl', () => {
  test('keeps the query but redacts the value of every parameter that holds a key', () => {
    assert.equal(publicUrl(AZURE), AZURE);
    assert.equal(
      publicUrl('https://g/v1beta/?key=AIzaSyREAL-SECRET&alt=json'),
      'https://g/v1beta?key=***&alt=json',
    );
    assert.equal(
      publicUrl('https://h/v1?api-key=S1&api_key=S2&apikey=S3&access_token=S4&sig=S5&code=S6&x=1'),
      'https://h/v1?api-key=***&api_key=***&apikey=***&access_token=***&sig=***&code=***&x=1',
    );
    assert.equal(publicUrl('https://h/v1?Api-Key=S'), 'https://h/v1?Api-Key=***');
    assert.equal(publicUrl('https://h/v1?k=sk-proj-abcdef123456&v=2'), 'https://h/v1?k=***&v=2');
  });
  test('removes user:password and the fragment', () => {
    assert.equal(publicUrl('https://u:p@h/v1/?a=1#frag'), 'https://h/v1?a=1');
  });
  test('shows nothing after "?" of a base URL that does not parse', () => {
    assert.equal(publicUrl('not a url/?key=S'), 'not a url');
  });
  test('a provider key never holds the API key, in the header or in the query', () => {
    const key = providerKey({ baseUrl: `${AZURE}&api-key=SECRET-1`, model: 'gpt', apiKey: 'SECRET-2' });
    assert.doesNotMatch(key, /SECRET/);
    assert.match(
      key,
      /^https:\/\/x\.openai\.azure\.com\/openai\/deployments\/d\?api-version=2024-10-21&api-key=\*\*\*\|gpt\|[0-9a-f]{12}$/,
    );
  });
});
