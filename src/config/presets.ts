import type { ProviderPreset } from './providers.ts';

export { PROVIDERS, type ProviderPreset } from './providers.ts';

export interface PresetInfo {
  /** Shown in the `config init` wizard. */
  label: string;
  /** Default base URL; undefined means the user must give one (custom). */
  baseUrl: string | undefined;
  /** Default model; undefined means the user must give one (custom). */
  model: string | undefined;
  /** The provider's own API key variable, tried after FLASHCARDS_API_KEY. */
  keyVar: string | undefined;
  /** Where to get a key, for hints. */
  keyUrl: string | undefined;
  /** Runs on this machine (or not at all): no API key needed. */
  local: boolean;
}

export const PRESETS: Record<ProviderPreset, PresetInfo> = {
  openrouter: {
    label: 'OpenRouter (many models, one key)',
    baseUrl: 'https://openrouter.ai/api/v1',
    model: 'openai/gpt-4o-mini',
    keyVar: 'OPENROUTER_API_KEY',
    keyUrl: 'https://openrouter.ai/keys',
    local: false,
  },
  openai: {
    label: 'OpenAI',
    baseUrl: 'https://api.openai.com/v1',
    model: 'gpt-4o-mini',
    keyVar: 'OPENAI_API_KEY',
    keyUrl: 'https://platform.openai.com/api-keys',
    local: false,
  },
  groq: {
    label: 'Groq',
    baseUrl: 'https://api.groq.com/openai/v1',
    model: 'llama-3.3-70b-versatile',
    keyVar: 'GROQ_API_KEY',
    keyUrl: 'https://console.groq.com/keys',
    local: false,
  },
  ollama: {
    label: 'Ollama on localhost',
    baseUrl: 'http://127.0.0.1:11434/v1',
    model: 'llama3.1',
    keyVar: undefined,
    keyUrl: undefined,
    local: true,
  },
  llamacpp: {
    label: 'llama.cpp server on localhost',
    baseUrl: 'http://127.0.0.1:8080/v1',
    model: 'local',
    keyVar: undefined,
    keyUrl: undefined,
    local: true,
  },
  custom: {
    label: 'Custom OpenAI-compatible URL',
    baseUrl: undefined,
    model: undefined,
    keyVar: undefined,
    keyUrl: undefined,
    local: false,
  },
  mock: {
    label: 'Mock (offline placeholder cards, for trying things out)',
    baseUrl: 'mock://local',
    model: 'mock',
    keyVar: undefined,
    keyUrl: undefined,
    local: true,
  },
};

/**
 * The environment variables an API key is read from, in order. The generic fallbacks come last
 * so that a machine with only OPENROUTER_API_KEY set works with the default preset.
 */
export function apiKeyVars(provider: ProviderPreset): string[] {
  const vars = ['FLASHCARDS_API_KEY', PRESETS[provider].keyVar, 'OPENROUTER_API_KEY', 'OPENAI_API_KEY'];
  return [...new Set(vars.filter((v): v is string => v !== undefined))];
}

/** The variable we suggest exporting for a provider. */
export function suggestedKeyVar(provider: ProviderPreset): string {
  return PRESETS[provider].keyVar ?? 'FLASHCARDS_API_KEY';
}

/** Whether requests to this provider need an API key at all. */
export function needsApiKey(provider: ProviderPreset, baseUrl: string): boolean {
  if (PRESETS[provider].local) return false;
  try {
    const host = new URL(baseUrl).hostname;
    return !(host === 'localhost' || host === '127.0.0.1' || host === '[::1]' || host.endsWith('.localhost'));
  } catch {
    return true;
  }
}
