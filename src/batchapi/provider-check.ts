import type { Settings } from '../config/index.ts';
import { usageError } from '../core/errors.ts';

/** Presets whose providers have the OpenAI batch endpoints (/files, /batches). */
const WITH_BATCH_API = new Set(['openai', 'groq']);

/** Refuses --batch-api for a provider without a batch API, before anything is opened (exit 2). */
export function checkBatchApiProvider(settings: Pick<Settings, 'provider' | 'batchApi'>): void {
  if (WITH_BATCH_API.has(settings.provider)) return;
  if (settings.provider === 'custom' && settings.batchApi.available) return;
  throw usageError(
    `--batch-api needs a provider with a batch API; ${settings.provider} has none`,
    settings.provider === 'custom'
      ? 'if this server has the OpenAI /files and /batches endpoints, set batchApi.available: true (or FLASHCARDS_BATCH_API_AVAILABLE=1)'
      : 'use --provider openai or groq, or run without --batch-api',
  );
}
