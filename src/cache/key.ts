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
  return createHash('sha256').update(canonicalKeyJson(input)).digest('hex');
}

function canonicalKeyJson(input: CacheKeyInput): string {
  const params: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(input.params)) {
    if (!NOT_ANSWER_CHANGING.has(name)) params[name] = value;
  }
  return canonicalJson({
    v: CACHE_SCHEMA_VERSION,
    // The same endpoint written with or without a trailing slash is the same provider.
    baseUrl: input.baseUrl.replace(/\/+$/, ''),
    model: input.model,
    messages: input.messages,
    responseFormat: input.responseFormat,
    params,
  });
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

export interface ChatMessageLike {
  role: string;
  content: string;
}

/**
 * A fast path for keys that differ only in their messages: everything else is serialised once,
 * and each call feeds the hash the canonical JSON piece by piece. The digest is exactly
 * `cacheKey({ ...fixed, messages })`, without building the whole canonical string per request.
 */
export function cacheKeyer(
  fixed: Omit<CacheKeyInput, 'messages'>,
): (messages: readonly ChatMessageLike[]) => string {
  const marker = '\u0000messages\u0000';
  const template = canonicalKeyJson({ ...fixed, messages: marker });
  const cut = template.indexOf(JSON.stringify(marker));
  const prefix = template.slice(0, cut);
  const suffix = template.slice(cut + JSON.stringify(marker).length);
  // Keys in sorted order, as canonicalJson writes them; anything unusual takes the slow path.
  const serialise = (m: ChatMessageLike): string =>
    Object.keys(m).length === 2 && typeof m.content === 'string' && typeof m.role === 'string'
      ? `{"content":${JSON.stringify(m.content)},"role":${JSON.stringify(m.role)}}`
      : canonicalJson(m);
  // A system prompt is usually one object shared by every request of a run: serialised and
  // encoded to UTF-8 once (the hash would encode a string again on every update). Other messages
  // are new each request; remembering them would only hold them longer.
  const systemPieces = new WeakMap<ChatMessageLike, Buffer>();
  const pieceOf = (m: ChatMessageLike): string | Buffer => {
    if (m.role !== 'system') return serialise(m);
    let piece = systemPieces.get(m);
    if (piece === undefined) {
      piece = Buffer.from(serialise(m), 'utf8');
      systemPieces.set(m, piece);
    }
    return piece;
  };
  return (messages) => {
    const hash = createHash('sha256').update(prefix).update('[');
    for (let i = 0; i < messages.length; i++) {
      if (i > 0) hash.update(',');
      hash.update(pieceOf(messages[i]!));
    }
    return hash.update(']').update(suffix).digest('hex');
  };
}
