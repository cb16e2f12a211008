import { createHash } from 'node:crypto';

/**
 * Bumped whenever what a cached body means changes (stored shape, prompt plumbing), so old rows
 * simply stop matching instead of being misread.
 */
export const CACHE_SCHEMA_VERSION = 1;

export interface CacheKeyInput {
  baseUrl: string;
  model: string;
  messages: unknown;
  responseFormat: unknown;
  /** Sampling parameters (temperature, top_p, max_tokens, seed, ...). */
  params: Record<string, unknown>;
}

/**
 * Request settings that never change the answer. Callers should not pass them, but if they slip
 * into `params` they must not split the cache (a new timeout or a rotated key would re-pay every call).
 */
const NOT_ANSWER_CHANGING = new Set(['timeout', 'timeoutMs', 'apiKey', 'api_key', 'signal']);

/** SHA-256 (64 hex chars) of everything that changes the answer, in a key-order-independent form. */
export function cacheKey(input: CacheKeyInput): string {
  const params: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(input.params)) {
    if (!NOT_ANSWER_CHANGING.has(name)) params[name] = value;
  }
  const canonical = canonicalJson({
    v: CACHE_SCHEMA_VERSION,
    // The same endpoint written with or without a trailing slash is the same provider.
    baseUrl: input.baseUrl.replace(/\/+$/, ''),
    model: input.model,
    messages: input.messages,
    responseFormat: input.responseFormat,
    params,
  });
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * JSON with object keys sorted recursively (by UTF-16 code units, like Array.prototype.sort),
 * so two objects that differ only in key order serialise identically. Otherwise follows
 * JSON.stringify: undefined and function members are dropped, toJSON is honoured,
 * non-finite numbers become null.
 */
export function canonicalJson(value: unknown): string {
  try {
    return serialise(value) ?? 'null';
  } catch (e) {
    if (e instanceof UnserialisableAt)
      throw new TypeError(`canonicalJson: cannot serialise a bigint at top${e.path.join('')}`);
    throw e;
  }
}

/** Carries the path of a value that cannot be serialised; built only on that rare path, never per value. */
class UnserialisableAt extends Error {
  readonly path: string[] = [];
}

function serialise(value: unknown): string | undefined {
  if (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { toJSON?: unknown }).toJSON === 'function'
  ) {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    case 'bigint':
      throw new UnserialisableAt();
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      let text: string | undefined;
      try {
        text = serialise(value[i]);
      } catch (e) {
        throw at(e, `[${i}]`);
      }
      out += text ?? 'null';
    }
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  let out = '{';
  let first = true;
  for (const name of Object.keys(record).sort()) {
    let text: string | undefined;
    try {
      text = serialise(record[name]);
    } catch (e) {
      throw at(e, `.${name}`);
    }
    if (text === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(name)}:${text}`;
    first = false;
  }
  return `${out}}`;
}

function at(e: unknown, step: string): unknown {
  if (e instanceof UnserialisableAt) e.path.unshift(step);
  return e;
}
