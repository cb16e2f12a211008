import type { ProviderPreset } from '../config/providers.ts';
import type { ChatTarget } from './chat-span.ts';

/** Presets named as the GenAI semantic conventions name their providers. */
const KNOWN: Partial<Record<ProviderPreset, string>> = {
  openai: 'openai',
  groq: 'groq',
  openrouter: 'openrouter',
  ollama: 'ollama',
  llamacpp: 'llama.cpp',
  mock: 'mock',
};

/**
 * Who a run's calls go to, as span and metric attributes: the preset's name when the base URL is
 * the preset's own host (or a local server preset), else the base URL's host (an OpenAI-compatible
 * gateway, a proxy, a test server). Pure: no OpenTelemetry module is needed to compute it.
 */
export function chatTarget(s: {
  provider: ProviderPreset;
  baseUrl: string;
  model: string;
  presetBaseUrl: string | undefined;
}): ChatTarget {
  let url: URL | undefined;
  try {
    url = new URL(s.baseUrl);
  } catch {
    url = undefined;
  }
  const host = url?.hostname.replace(/^\[|\]$/g, '') ?? '';
  const web = url?.protocol === 'https:' || url?.protocol === 'http:';
  const port = web && url ? Number(url.port || (url.protocol === 'https:' ? 443 : 80)) : undefined;
  let presetHost: string | undefined;
  try {
    presetHost = s.presetBaseUrl ? new URL(s.presetBaseUrl).hostname : undefined;
  } catch {
    presetHost = undefined;
  }
  const named = KNOWN[s.provider];
  const provider =
    named && (s.provider === 'mock' || presetHost === url?.hostname) ? named : host || s.provider;
  return {
    provider,
    model: s.model,
    serverAddress: host,
    ...(port === undefined ? {} : { serverPort: port }),
  };
}
