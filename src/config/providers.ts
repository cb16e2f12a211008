/**
 * The provider presets' names, apart from their details (presets.ts): the settings table needs
 * only the names, and it is loaded by every start.
 */
export const PROVIDERS = ['openrouter', 'openai', 'groq', 'ollama', 'llamacpp', 'custom', 'mock'] as const;
export type ProviderPreset = (typeof PROVIDERS)[number];
