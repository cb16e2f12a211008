import { createHash } from 'node:crypto';

export interface ProviderIdentity {
  baseUrl: string;
  model: string;
  apiKey: string | undefined;
}

/** A short, non-reversible fingerprint of an API key: lets state be keyed per key without storing it. */
export function keyFingerprint(apiKey: string | undefined): string {
  if (!apiKey) return 'nokey';
  return createHash('sha256').update(apiKey).digest('hex').slice(0, 12);
}

/**
 * The identity that rate limits and the circuit breaker are shared under:
 * base URL, model and a hash of the API key. Never contains the key itself.
 */
export function providerKey(id: ProviderIdentity): string {
  return `${publicUrl(id.baseUrl)}|${id.model}|${keyFingerprint(id.apiKey)}`;
}

/** A base URL fit for logs and state: credentials and query string (`?api-key=`) removed. */
export function publicUrl(baseUrl: string): string {
  try {
    const url = new URL(baseUrl);
    url.username = '';
    url.password = '';
    url.search = '';
    return url.toString().replace(/\/+$/, '');
  } catch {
    return baseUrl.replace(/\/+$/, '');
  }
}
