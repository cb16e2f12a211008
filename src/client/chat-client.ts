import { endpointUrl } from '../core/endpoint-url.ts';
import { isProviderError, ProviderError } from '../core/errors.ts';
import type { RateLimitInfo } from '../core/headers.ts';
import { parseRateLimitHeaders } from '../limiter/headers.ts';
import { classifyFetchError, classifyHttpError, invalidResponseError } from '../resilience/classify.ts';
import { requestDeadline } from './deadline.ts';
import { nodeTransport, type Transport } from './transport.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** The strict structured-output request: the answer must be JSON that matches `schema`. */
export interface ResponseFormat {
  type: 'json_schema';
  json_schema: { name: string; strict: true; schema: Record<string, unknown> };
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  responseFormat: ResponseFormat;
  temperature: number;
  maxTokens: number;
}

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface ChatResult {
  /** The message content: JSON text, not yet validated against the stage schema. */
  content: string;
  usage: TokenUsage;
  /** True when the provider sent no usage and it was estimated from text lengths. */
  usageEstimated: boolean;
  status: number;
  /** The response's rate-limit headers, read once: the limiter paces by them. */
  rateLimit: RateLimitInfo;
  /** The model that answered, as the provider names it (a router may pick another than asked). */
  model?: string | undefined;
}

export interface ChatClientOptions {
  baseUrl: string;
  apiKey: string | undefined;
  timeoutMs: number;
  /** How requests travel: node:http(s) by default, an in-process fake for `--provider mock` and tests. */
  transport?: Transport;
  now?: () => number;
}

export interface ChatClient {
  complete(request: ChatRequest, signal: AbortSignal): Promise<ChatResult>;
}

/**
 * The one rough token rule (about 4 characters a token): limiter reservations, missing usage,
 * dry-run estimates and the mock provider's own counts all use it.
 */
export function tokensForChars(chars: number): number {
  return Math.ceil(chars / 4);
}

export function estimateTokens(text: string): number {
  return tokensForChars(text.length);
}

/** The prompt tokens of a request's messages, by the same rule. */
export function messageTokens(messages: readonly { content: string }[]): number {
  let chars = 0;
  for (const m of messages) chars += m.content.length;
  return tokensForChars(chars);
}

/**
 * The Chat Completions body of a request as a plain object: what a batch-API request line carries.
 * RequestEncoder below writes the same JSON in pieces for synchronous calls.
 */
export function chatRequestBody(request: ChatRequest): Record<string, unknown> {
  return {
    model: request.model,
    messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
    response_format: request.responseFormat,
    temperature: request.temperature,
    max_tokens: request.maxTokens,
  };
}

/**
 * Encodes Chat Completions request bodies as UTF-8 pieces. The system prompt and the response
 * format are most of every body and the same object for a whole run, so their bytes are made once
 * and shared: a request encodes only its own messages.
 */
export class RequestEncoder {
  /** Encoded system messages by identity: a pipeline reuses one object for a prompt that never varies. */
  readonly #systemMessages = new WeakMap<ChatMessage, Buffer>();
  readonly #tails = new WeakMap<object, { temperature: number; maxTokens: number; bytes: Buffer }>();
  #head: { model: string; bytes: Buffer } | undefined;

  #message(m: ChatMessage): Buffer {
    const encode = (): Buffer => Buffer.from(JSON.stringify({ role: m.role, content: m.content }));
    // Other messages are new each request: remembering them would only hold them longer.
    if (m.role !== 'system') return encode();
    let bytes = this.#systemMessages.get(m);
    if (!bytes) {
      bytes = encode();
      this.#systemMessages.set(m, bytes);
    }
    return bytes;
  }

  /** The body as pieces to be sent in order; their concatenation is the JSON of `request`. */
  encode(request: ChatRequest): Buffer[] {
    if (this.#head?.model !== request.model) {
      this.#head = {
        model: request.model,
        bytes: Buffer.from(`{"model":${JSON.stringify(request.model)},"messages":[`),
      };
    }
    const pieces = [this.#head.bytes];
    request.messages.forEach((m, i) => {
      if (i > 0) pieces.push(COMMA);
      pieces.push(this.#message(m));
    });
    let tail = this.#tails.get(request.responseFormat);
    if (tail?.temperature !== request.temperature || tail.maxTokens !== request.maxTokens) {
      tail = {
        temperature: request.temperature,
        maxTokens: request.maxTokens,
        bytes: Buffer.from(
          `],"response_format":${JSON.stringify(request.responseFormat)},` +
            `"temperature":${JSON.stringify(request.temperature)},"max_tokens":${JSON.stringify(request.maxTokens)}}`,
        ),
      };
      this.#tails.set(request.responseFormat, tail);
    }
    pieces.push(tail.bytes);
    return pieces;
  }
}

const COMMA = Buffer.from(',');

interface CompletionBody {
  model?: unknown;
  choices?: { message?: { content?: unknown; refusal?: unknown }; finish_reason?: unknown }[];
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown; total_tokens?: unknown };
  error?: { message?: unknown };
}

/** Some gateways send content as an array of parts ({type: 'text', text}) instead of a string. */
function textOf(content: unknown): unknown {
  if (!Array.isArray(content)) return content;
  return content
    .map((part) =>
      part && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string'
        ? (part as { text: string }).text
        : '',
    )
    .join('');
}

/** Local models sometimes wrap JSON in a Markdown fence despite response_format. */
function unfence(content: string): string {
  const m = /^\s*```(?:json)?\s*\n([\s\S]*?)\n?```\s*$/.exec(content);
  return m ? (m[1] ?? '') : content;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** Parses a 200 response body into content and usage, or explains exactly what is wrong with it. */
export function parseCompletion(
  text: string,
  promptTokensEstimate: () => number,
): Omit<ChatResult, 'status' | 'rateLimit'> {
  let body: CompletionBody;
  try {
    body = JSON.parse(text) as CompletionBody;
  } catch {
    throw invalidResponseError(
      `provider sent a body that is not valid JSON (${text.length} bytes; truncated?)`,
    );
  }
  if (body === null || typeof body !== 'object')
    throw invalidResponseError('provider sent a non-object body');
  if (body.error)
    throw invalidResponseError(`provider sent an error in a 200 response: ${String(body.error.message)}`);
  const choice = body.choices?.[0];
  const content = textOf(choice?.message?.content);
  if (typeof choice?.message?.refusal === 'string' && choice.message.refusal) {
    throw invalidResponseError(`the model refused: ${choice.message.refusal.slice(0, 200)}`);
  }
  if (typeof content !== 'string' || content.trim() === '') {
    throw invalidResponseError('provider response has no choices[0].message.content');
  }
  if (choice?.finish_reason === 'length') {
    throw invalidResponseError(
      'the answer was cut off at max_tokens (finish_reason "length"); raise maxTokens',
    );
  }
  const u = body.usage;
  const prompt = num(u?.prompt_tokens);
  const completion = num(u?.completion_tokens);
  const total = num(u?.total_tokens);
  const usageEstimated = prompt === undefined && completion === undefined && total === undefined;
  const promptTokens = prompt ?? promptTokensEstimate();
  const completionTokens = completion ?? estimateTokens(content);
  return {
    content: unfence(content),
    usage: { promptTokens, completionTokens, totalTokens: total ?? promptTokens + completionTokens },
    usageEstimated,
    ...(typeof body.model === 'string' ? { model: body.model } : {}),
  };
}

function withRateLimit(e: ProviderError, rateLimit: RateLimitInfo): ProviderError {
  return new ProviderError(e.kind, e.message, {
    retryable: e.retryable,
    retryAfterMs: e.retryAfterMs,
    status: e.status,
    hint: e.hint,
    exitCode: e.exitCode,
    cause: e.cause,
    rateLimit,
  });
}

const formatTokenCounts = new WeakMap<ResponseFormat, number>();

/** The response format's schema is part of the prompt a provider bills; measured once per format. */
function formatTokens(format: ResponseFormat): number {
  let tokens = formatTokenCounts.get(format);
  if (tokens === undefined) {
    tokens = tokensForChars(JSON.stringify(format).length);
    formatTokenCounts.set(format, tokens);
  }
  return tokens;
}

/**
 * OpenAI-compatible Chat Completions over HTTP. One instance per run; it holds no state besides
 * options. Every response's rate-limit headers (Retry-After included) are read here, once, and
 * travel with the answer or the error: the caller hands them to the limiter and the retry.
 */
export function createChatClient(options: ChatClientOptions): ChatClient {
  const send = options.transport ?? nodeTransport();
  const encoder = new RequestEncoder();
  const now = options.now ?? Date.now;
  const url = endpointUrl(options.baseUrl, 'chat/completions');
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json',
    'x-title': 'flashcards',
  };
  if (options.apiKey) headers['authorization'] = `Bearer ${options.apiKey}`;

  return {
    async complete(request, signal) {
      const deadline = requestDeadline(options.timeoutMs, `timed out after ${options.timeoutMs} ms`, signal);
      const body = encoder.encode(request);
      try {
        const response = await send(url, { method: 'POST', headers, body, signal: deadline.signal });
        const rateLimit = parseRateLimitHeaders(response.headers, now());
        // The body is read under the same timeout: a provider that hangs mid-body is a timeout too.
        const text = await response.text();
        if (response.status < 200 || response.status > 299) {
          throw classifyHttpError(response.status, text, rateLimit, now(), options.apiKey);
        }
        const estimate = (): number => messageTokens(request.messages) + formatTokens(request.responseFormat);
        let parsed: Omit<ChatResult, 'status' | 'rateLimit'>;
        try {
          parsed = parseCompletion(text, estimate);
        } catch (e) {
          // A 200 whose body is unusable still paid for a request: its headers still pace the limiter.
          throw isProviderError(e) ? withRateLimit(e, rateLimit) : e;
        }
        return { ...parsed, status: response.status, rateLimit };
      } catch (e) {
        if (isProviderError(e)) throw e;
        throw classifyFetchError(e, {
          timedOut: deadline.timedOut,
          timeoutMs: options.timeoutMs,
          cancelled: signal.aborted && !deadline.timedOut,
        });
      } finally {
        deadline.done();
      }
    },
  };
}
