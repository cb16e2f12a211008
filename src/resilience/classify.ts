import { ExitCode, errorCode, isProviderError, oneLine, ProviderError } from '../core/errors.ts';
import type { HeaderLookup, RateLimitInfo } from '../core/headers.ts';
import { parseRateLimitHeaders } from '../limiter/headers.ts';

/** How much of the provider's own error text a message carries: enough to act on, never a page of HTML. */
const maxDetailChars = 200;

interface ProviderBody {
  message: string | undefined;
  code: string | undefined;
  type: string | undefined;
}

/** Pulls message/code/type out of the error shapes OpenAI, OpenRouter, Azure and proxies send. */
function readBody(bodyText: string): ProviderBody {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bodyText);
  } catch {
    return { message: plainText(bodyText), code: undefined, type: undefined };
  }
  const root = asRecord(parsed);
  const err = root?.['error'];
  const inner = asRecord(err) ?? root;
  const message =
    typeof err === 'string'
      ? err
      : (asText(inner?.['message']) ?? asText(root?.['message']) ?? asText(root?.['detail']));
  return {
    message: message === undefined ? plainText(bodyText) : oneLine(message),
    code: asText(inner?.['code']),
    type: asText(inner?.['type']),
  };
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

function asText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  return undefined;
}

/** Error pages from gateways are HTML: keep the words, drop the markup. */
function plainText(text: string): string | undefined {
  const words = oneLine(text.replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]*>/g, ' '));
  return words === '' ? undefined : words;
}

/**
 * Providers sometimes echo part of the key ("Incorrect API key provided: sk-abc...") and some
 * gateways the whole key they rejected: never repeat either. `secret` is the key in use, if known.
 */
export function redactSecrets(text: string, secret?: string): string {
  return (secret ? text.replaceAll(secret, '[redacted]') : text)
    .replace(/\b(Bearer)\s+[\w.~+/=-]+/gi, '$1 [redacted]')
    .replace(/\b(sk|rk|pk|key)-[\w-]{6,}/g, (m) => `${m.slice(0, m.indexOf('-') + 4)}…[redacted]`);
}

function trimDetail(text: string, secret?: string): string {
  const clean = redactSecrets(text, secret);
  return clean.length > maxDetailChars ? `${clean.slice(0, maxDetailChars - 1)}…` : clean;
}

const statusNames: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  425: 'Too Early',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

const quotaPattern =
  /insufficient[_ ]quota|exceeded your current quota|insufficient credits|insufficient[_ ]balance|credit balance is too low|billing/i;

function isQuota(status: number, body: ProviderBody): boolean {
  if (status === 402) return true;
  if (body.code === 'insufficient_quota' || body.type === 'insufficient_quota') return true;
  return (status === 400 || status === 403 || status === 429) && quotaPattern.test(body.message ?? '');
}

/**
 * Turns a non-2xx response into a typed error. Only the status, the provider's own message and the
 * rate-limit headers are used, so no request header (and so no API key) can leak into the message.
 * The client passes the headers it has already read (`RateLimitInfo`), so Retry-After is parsed
 * once and the limiter and the retry see the same value; raw headers are read here.
 */
export function classifyHttpError(
  status: number,
  bodyText: string,
  headers: HeaderLookup | RateLimitInfo,
  nowMs: number,
  apiKey?: string,
): ProviderError {
  const body = readBody(bodyText);
  const rateLimit = 'get' in headers ? parseRateLimitHeaders(headers, nowMs) : headers;
  const retryAfterMs = rateLimit.retryAfterMs;
  const label = `HTTP ${status}${statusNames[status] ? ` ${statusNames[status]}` : ''}`;
  const message = `provider returned ${label}${body.message ? `: ${trimDetail(body.message, apiKey)}` : ''}`;
  const make = (kind: ProviderError['kind'], retryable: boolean, hint: string | undefined): ProviderError =>
    new ProviderError(kind, message, { retryable, retryAfterMs, status, hint, rateLimit });

  if (isQuota(status, body)) {
    return make(
      'quota',
      false,
      'the account is out of quota or credits: add credits or raise the limit, then run again',
    );
  }
  if (status === 401 || status === 403) {
    return make('auth', false, 'check the API key (and that it may use this model), then run again');
  }
  if (status === 429) {
    return make(
      'rate_limit',
      true,
      'the provider is rate limiting: lower --concurrency or the configured rpm/tpm',
    );
  }
  if (status === 408) return make('timeout', true, undefined);
  if (status === 409 || status === 425 || status >= 500) {
    return make('server', true, 'the provider is failing; if it persists, check its status page');
  }
  if (status === 404) {
    return make('bad_request', false, 'check the base URL and the model name');
  }
  if (status === 413) {
    return make('bad_request', false, 'the request is too large: shorten the input or lower max tokens');
  }
  return make(
    'bad_request',
    false,
    'the provider rejected the request; check the model, parameters and input',
  );
}

/** Socket-level codes that mean "the connection broke": the same request may well succeed next time. */
const transientCodes = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

const timeoutCodes = new Set([
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** TLS failures will not fix themselves on a retry. */
const permanentCodes =
  /^(CERT_|ERR_TLS_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT|ERR_INVALID_URL)/;

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error && e.cause.message !== e.message ? ` (${e.cause.message})` : '';
  return `${e.message}${cause}`;
}

/**
 * Classifies what fetch threw. `ctx` says why the request's signal fired, because an AbortError looks
 * the same whether our timeout or the user's Ctrl-C caused it.
 */
export function classifyFetchError(
  error: unknown,
  ctx: { timedOut: boolean; timeoutMs: number; cancelled: boolean },
): ProviderError {
  if (ctx.cancelled) {
    return new ProviderError('cancelled', 'request cancelled', {
      retryable: false,
      exitCode: ExitCode.interrupted,
      cause: error,
    });
  }
  if (isProviderError(error)) return error as ProviderError;
  const seconds = Math.round(ctx.timeoutMs / 100) / 10;
  const name = error instanceof Error ? error.name : '';
  const code = errorCode(error);
  if (ctx.timedOut || name === 'TimeoutError' || (code !== undefined && timeoutCodes.has(code))) {
    return new ProviderError('timeout', `request timed out after ${seconds} s${code ? ` (${code})` : ''}`, {
      retryable: true,
      hint: 'the provider is slow; raise the request timeout if this keeps happening',
      cause: error,
    });
  }
  if (name === 'AbortError') {
    return new ProviderError('cancelled', 'request aborted', { retryable: false, cause: error });
  }
  const detail = trimDetail(describe(error));
  if (code !== undefined && permanentCodes.test(code)) {
    return new ProviderError('network', `cannot reach the provider: ${detail} [${code}]`, {
      retryable: false,
      hint: 'check the base URL and the TLS setup (proxy, certificates)',
      cause: error,
    });
  }
  const known = code !== undefined && transientCodes.has(code);
  return new ProviderError(
    'network',
    `connection to the provider failed: ${detail}${code ? ` [${code}]` : ''}`,
    {
      retryable: true,
      hint:
        known && (code === 'ENOTFOUND' || code === 'ECONNREFUSED')
          ? 'check the base URL and your network'
          : undefined,
      cause: error,
    },
  );
}

/** A 2xx response whose body is not what we asked for (truncated JSON, schema mismatch). */
export function invalidResponseError(detail: string): ProviderError {
  return new ProviderError(
    'invalid_response',
    `provider response is invalid: ${trimDetail(oneLine(detail))}`,
    {
      retryable: true,
      hint: 'the model did not follow the output schema; a stronger model or a lower temperature may help',
    },
  );
}
