import { type Clock, systemClock } from '../core/clock.ts';
import { tokensForChars } from './chat-client.ts';
import { type JsonSchema, sampleFromSchema } from './schema-sample.ts';

/** What the mock needs from a Chat Completions request body. */
export interface MockChatRequest {
  model: string;
  /** The text of every message, for the prompt token estimate. */
  promptChars: number;
  term: string;
  /** `response_format.json_schema`, when the request asked for structured output. */
  schema: { name: string; schema: JsonSchema } | undefined;
  /** `response_format.type`: 'json_schema', 'json_object', 'text' or undefined. */
  format: string | undefined;
  /** `max_completion_tokens` or `max_tokens`, when given. */
  maxTokens: number | undefined;
}

export type ParsedChatRequest = { ok: true; request: MockChatRequest } | { ok: false; message: string };

interface WireMessage {
  role?: unknown;
  content?: unknown;
}

/** Reads the parts of a Chat Completions body the mock answers from, or says what is wrong with it. */
export function parseChatRequest(body: unknown): ParsedChatRequest {
  if (typeof body !== 'object' || body === null) {
    return {
      ok: false,
      message: `request body must be a JSON object, got ${body === null ? 'null' : typeof body}`,
    };
  }
  const b = body as Record<string, unknown>;
  if (!Array.isArray(b['messages']) || b['messages'].length === 0) {
    return { ok: false, message: "'messages' must be a non-empty array" };
  }
  if (b['stream'] === true)
    return { ok: false, message: "'stream: true' is not supported by the mock provider" };
  const messages = b['messages'] as WireMessage[];
  const texts = messages.map((m) => messageText(m.content));
  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  const responseFormat = b['response_format'] as { type?: unknown; json_schema?: unknown } | undefined;
  const js = responseFormat?.json_schema as { name?: unknown; schema?: unknown } | undefined;
  const schema =
    typeof js?.schema === 'object' && js.schema !== null
      ? { name: typeof js.name === 'string' ? js.name : 'response', schema: js.schema as JsonSchema }
      : undefined;
  const maxTokens = b['max_completion_tokens'] ?? b['max_tokens'];
  return {
    ok: true,
    request: {
      model: typeof b['model'] === 'string' ? b['model'] : 'mock',
      promptChars: texts.reduce((n, t) => n + t.length, 0),
      term: extractTerm(lastUser === undefined ? (texts.at(-1) ?? '') : messageText(lastUser.content)),
      schema,
      format: typeof responseFormat?.type === 'string' ? responseFormat.type : undefined,
      maxTokens: typeof maxTokens === 'number' && maxTokens > 0 ? maxTokens : undefined,
    },
  };
}

function messageText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part: { text?: unknown }) => (typeof part?.text === 'string' ? part.text : ''))
      .join('\n');
  }
  return '';
}

/**
 * The term a prompt is about: a `Term: <term>` line (how the built-in prompts say it), else the
 * first quoted phrase, else the first word.
 */
export function extractTerm(text: string): string {
  const line = /^[ \t]*Term:[ \t]*(.+?)[ \t]*$/im.exec(text);
  if (line?.[1]) return line[1];
  const quoted = /["“«'‘]([^"”»'’\n]{1,60})["”»'’]/u.exec(text);
  if (quoted?.[1]?.trim()) return quoted[1].trim();
  const word = /[\p{L}\p{N}][\p{L}\p{M}\p{N}'’-]*/u.exec(text);
  return word?.[0] ?? 'word';
}

/** The assistant's message content: schema-valid JSON when a schema was sent. */
export function mockContent(request: MockChatRequest, placeholder: boolean): string {
  const { term, schema } = request;
  if (schema !== undefined) {
    return JSON.stringify(sampleFromSchema(schema.schema, { seed: term + schema.name, term, placeholder }));
  }
  const text = `${placeholder ? '[mock] ' : ''}A short answer about ${term}.`;
  return request.format === 'json_object' ? JSON.stringify({ term, answer: text }) : text;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: 'assistant'; content: string; refusal: null };
    logprobs: null;
    finish_reason: 'stop';
  }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  system_fingerprint: string;
}

/** An OpenAI-shaped chat.completion around `content`, with usage estimated from lengths. */
export function chatCompletion(
  request: MockChatRequest,
  content: string,
  id: string,
  createdSeconds: number,
): ChatCompletion {
  const promptTokens = tokensForChars(request.promptChars);
  const completionTokens = tokensForChars(content.length);
  return {
    id,
    object: 'chat.completion',
    created: createdSeconds,
    model: request.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content, refusal: null },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
    system_fingerprint: 'fp_mock',
  };
}

export const mockModelList = {
  object: 'list',
  data: [{ id: 'mock', object: 'model', created: 0, owned_by: 'flashcards' }],
} as const;

/** Which endpoint a path names, with or without the /v1 prefix and any query string. */
export function mockRoute(method: string, url: string): 'chat' | 'models' | undefined {
  const path = url.split('?')[0] ?? '';
  if (method === 'POST' && /\/chat\/completions\/?$/.test(path)) return 'chat';
  if (method === 'GET' && /\/models\/?$/.test(path)) return 'models';
  return undefined;
}

export interface MockFetchOptions {
  /** Delay before each answer, so progress output looks like a real run. */
  latencyMs?: number;
  /** Only stamps `created`; latency is a plain timer so a pending request keeps the process alive. */
  clock?: Clock;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

/**
 * An in-process stand-in for `fetch` that speaks the OpenAI Chat Completions API, so
 * `flashcards process --provider mock` runs the whole flow offline. Answers are schema-valid
 * and marked "[mock]"; the same term always gets the same answer.
 */
export function createMockFetch(opts: MockFetchOptions = {}): typeof fetch {
  let counter = 0;
  return async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const signal = request.signal;
    if (signal.aborted) throw signal.reason;
    const route = mockRoute(request.method, new URL(request.url).pathname);
    if (route === undefined) {
      return json(404, {
        error: {
          message: `mock provider has no ${request.method} ${request.url}`,
          type: 'invalid_request_error',
          code: 'not_found',
        },
      });
    }
    if (route === 'models') return json(200, mockModelList);
    let body: unknown;
    try {
      body = JSON.parse(await request.text());
    } catch (e) {
      return json(400, {
        error: { message: `request body is not JSON: ${String(e)}`, type: 'invalid_request_error' },
      });
    }
    const parsed = parseChatRequest(body);
    if (!parsed.ok) return json(400, { error: { message: parsed.message, type: 'invalid_request_error' } });
    if (opts.latencyMs !== undefined && opts.latencyMs > 0)
      await (opts.clock ?? systemClock).sleep(opts.latencyMs, signal);
    let content: string;
    try {
      content = mockContent(parsed.request, true);
    } catch (e) {
      return json(400, {
        error: { message: e instanceof Error ? e.message : String(e), type: 'invalid_request_error' },
      });
    }
    counter++;
    const created = Math.floor((opts.clock ?? systemClock).now() / 1000);
    return json(200, chatCompletion(parsed.request, content, `chatcmpl-mock-${counter}`, created));
  };
}
