import type { Agent, request as httpRequest, IncomingMessage } from 'node:http';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { HeaderLookup } from '../core/headers.ts';

export interface TransportRequest {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  /** Text, or UTF-8 pieces sent in order (shared pieces of a body are encoded once per run). */
  body?: string | readonly Uint8Array[] | undefined;
  signal: AbortSignal;
}

export interface TransportResponse {
  status: number;
  headers: HeaderLookup;
  /** Called once the status and headers are in, before the body is read (rate-limit headers). */
  text(): Promise<string>;
}

/** How a request reaches the provider; swapped for an in-process fake by `--provider mock` and tests. */
export type Transport = (url: string, request: TransportRequest) => Promise<TransportResponse>;

/** Adapts any fetch (the in-process mock provider, a test double) to a Transport. */
export function fetchTransport(f: typeof fetch): Transport {
  return async (url, r) => {
    const response = await f(url, {
      method: r.method,
      headers: r.headers,
      body: typeof r.body === 'object' ? Buffer.concat(r.body) : (r.body ?? null),
      signal: r.signal,
    });
    return { status: response.status, headers: response.headers, text: () => response.text() };
  };
}

// Not `import ... from 'node:http'`: Node's ESM wrapper of node:http reads every export, which
// loads its bundled fetch (undici) too: ~20 ms and ~9 MB at every start for nothing used here.
// node:https (and TLS with it) is loaded only for an https URL.
type Client = { agent: Agent; request: typeof httpRequest };

function headerView(raw: IncomingMessage['headers']): HeaderLookup {
  return {
    get(name) {
      const value = raw[name.toLowerCase()];
      if (value === undefined) return null;
      return Array.isArray(value) ? value.join(', ') : value;
    },
  };
}

function decoded(res: IncomingMessage): NodeJS.ReadableStream {
  switch ((res.headers['content-encoding'] ?? '').toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return res.pipe(createGunzip());
    case 'deflate':
      return res.pipe(createInflate());
    case 'br':
      return res.pipe(createBrotliDecompress());
    default:
      return res;
  }
}

/** Shaped like undici's errors so classification sees the same `cause.code` either way. */
const PROXY_VARS = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'];

/** Only the proxy settings of the environment, or undefined when none is set. */
export function proxyVariables(env: NodeJS.ProcessEnv): Record<string, string> | undefined {
  const found = PROXY_VARS.filter((k) => env[k]).map((k) => [k, env[k] as string] as const);
  return found.some(([k]) => !/no_proxy/i.test(k)) ? Object.fromEntries(found) : undefined;
}

function networkError(e: unknown): Error {
  if (e instanceof Error && (e.name === 'AbortError' || e.name === 'TimeoutError')) return e;
  return new TypeError('fetch failed', { cause: e });
}

/**
 * HTTP/1.1 over node:http(s) with keep-alive agents. Chosen over the global fetch for the hot path:
 * at a thousand requests a second fetch's web streams left ~200 MB of short-lived garbage behind
 * (peak RSS 235 MB against 85 MB here, same load) and cost more CPU per request.
 */
export function nodeTransport(env: NodeJS.ProcessEnv = process.env): Transport {
  // HTTPS_PROXY / HTTP_PROXY / NO_PROXY (either case) are honoured as curl does: node's agents
  // (Node >= 24.5) tunnel through the proxy themselves. Older Nodes ignore the option.
  const proxyEnv = proxyVariables(env);
  const options = { keepAlive: true, scheduling: 'lifo' as const, ...(proxyEnv ? { proxyEnv } : {}) };
  const clients: { http?: Client; https?: Client } = {};
  const clientFor = (https: boolean): Client => {
    if (https) {
      const m = process.getBuiltinModule('node:https');
      clients.https ??= { agent: new m.Agent(options), request: m.request };
      return clients.https;
    }
    const m = process.getBuiltinModule('node:http');
    clients.http ??= { agent: new m.Agent(options), request: m.request };
    return clients.http;
  };
  // A run sends every request to one URL: parse it once, not per request.
  let parsed: { url: string; target: URL; client: Client } | undefined;
  return (url, r) =>
    new Promise<TransportResponse>((resolve, reject) => {
      if (parsed?.url !== url) {
        const target = new URL(url);
        parsed = { url, target, client: clientFor(target.protocol === 'https:') };
      }
      const { target, client } = parsed;
      const headers: Record<string, string> = { 'accept-encoding': 'gzip, deflate, br', ...r.headers };
      // Encoded once: measuring a string's length and then writing it would encode it twice.
      const pieces = typeof r.body === 'string' ? [Buffer.from(r.body, 'utf8')] : r.body;
      if (pieces) {
        let length = 0;
        for (const piece of pieces) length += piece.byteLength;
        headers['content-length'] = String(length);
      }
      const req = client.request(
        target,
        { method: r.method, headers, agent: client.agent, signal: r.signal },
        (res) => {
          const body = new Promise<string>((done, fail) => {
            const chunks: Buffer[] = [];
            const stream = decoded(res);
            stream.on('data', (c: Buffer) => chunks.push(c));
            stream.on('end', () =>
              done(
                chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'),
              ),
            );
            stream.on('error', (e) => fail(networkError(e)));
            res.on('aborted', () =>
              fail(networkError(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' }))),
            );
            res.on('error', (e) => fail(networkError(e)));
          });
          // Avoid an unhandled rejection when the caller never reads the body.
          body.catch(() => {});
          resolve({ status: res.statusCode ?? 0, headers: headerView(res.headers), text: () => body });
        },
      );
      req.on('error', (e) => reject(networkError(e)));
      if (pieces) {
        // One write to the socket for the headers and every piece.
        req.cork();
        for (const piece of pieces) req.write(piece);
        req.uncork();
      }
      req.end();
    });
}
