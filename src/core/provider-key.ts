import { createHash } from 'node:crypto';
import { trimBaseUrl } from './endpoint-url.ts';

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

/**
 * Query parameters whose value is a credential: `key` (Gemini), `api-key`/`api_key`/`apikey`,
 * `access_token`, `sig`/`signature`, `code` (Azure Functions), passwords and the like.
 */
const SECRET_PARAM = /key|token|secret|sig|pass|pwd|auth|code|credential/i;
/** A value that looks like an API key whatever its parameter is called (sk-..., key-...). */
const SECRET_VALUE = /^(sk|rk|pk|key)-[\w-]{6,}/i;

function decoded(text: string): string {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return text;
  }
}

/** The query with every credential's value replaced by `***`; the other parameters kept as written. */
function redactQuery(search: string): string {
  return search
    .slice(1)
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq === -1) return SECRET_VALUE.test(decoded(part)) ? '***' : part;
      const name = part.slice(0, eq);
      return SECRET_PARAM.test(decoded(name)) || SECRET_VALUE.test(decoded(part.slice(eq + 1)))
        ? `${name}=***`
        : part;
    })
    .join('&');
}

/**
 * A base URL fit for logs, messages and state: no credentials (user:pass@, and the value of any
 * query parameter that holds a key, `?api-key=***`), no fragment, no trailing slash on the path.
 * The rest of the query stays (`?api-version=2024-10-21` says which API is spoken).
 */
export function publicUrl(baseUrl: string): string {
  try {
    const url = new URL(baseUrl);
    url.username = '';
    url.password = '';
    url.hash = '';
    if (url.search) url.search = redactQuery(url.search);
    return trimBaseUrl(url.toString());
  } catch {
    // Not a URL at all (the config refuses those): nothing after "?" can be shown safely.
    return trimBaseUrl(baseUrl.replace(/[?#].*$/s, ''));
  }
}
