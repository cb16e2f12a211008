import { createHash, randomBytes } from 'node:crypto';
import type { Settings } from '../config/index.ts';
import { FlashcardsError } from '../core/errors.ts';
import { publicUrl } from '../core/provider-key.ts';
import type { Pipeline } from '../pipeline/types.ts';
import { batchIdFor, hashFile } from './prepare.ts';
import type { BatchCatalog } from './store.ts';

/** Settings that change what the provider returns: a change means a new batch, not a resume. */
export function resultSettings(settings: Settings, pipeline: Pipeline): Record<string, unknown> {
  return {
    pipeline: pipeline.name,
    pipelineVersion: pipeline.version,
    baseUrl: publicUrl(settings.baseUrl),
    model: settings.model,
    sourceLanguage: settings.sourceLanguage,
    targetLanguage: settings.targetLanguage,
    temperature: settings.temperature,
    maxTokens: settings.maxTokens,
  };
}

export interface BatchIdentity {
  id: string;
  inputDigest: string;
  settingsHash: string;
  shaping: Record<string, unknown>;
}

/**
 * Which batch a run works on: the named one (`--batch`, refused if its settings differ), a fresh
 * one (`--new`), or the one identified by the input's content and the result-shaping settings.
 */
export async function identifyBatch(
  catalog: BatchCatalog,
  o: {
    settings: Settings;
    pipeline: Pipeline;
    inputPath: string;
    batch?: string | undefined;
    newBatch: boolean;
  },
): Promise<BatchIdentity> {
  const shaping = resultSettings(o.settings, o.pipeline);
  const settingsHash = createHash('sha256').update(JSON.stringify(shaping)).digest('hex');
  if (o.batch) {
    const named = await catalog.get(o.batch);
    if (!named) {
      throw new FlashcardsError('usage', `no batch ${o.batch}`, {
        hint: 'list batches with `flashcards batches list`',
      });
    }
    if (named.settingsHash !== settingsHash) {
      const changed = Object.keys(shaping).filter(
        (k) => JSON.stringify(named.settings[k]) !== JSON.stringify(shaping[k]),
      );
      throw new FlashcardsError(
        'usage',
        `batch ${named.id} was made with other settings (changed: ${changed.join(', ') || 'settings'})`,
        {
          hint: 'run it with the settings of its first run (see `flashcards batches show`), or use --new for a fresh batch',
        },
      );
    }
    return { id: named.id, inputDigest: named.inputDigest, settingsHash, shaping };
  }
  const inputDigest = await hashFile(o.inputPath);
  const id = batchIdFor(inputDigest, settingsHash);
  return {
    id: o.newBatch ? `${id}-${randomBytes(2).toString('hex')}` : id,
    inputDigest,
    settingsHash,
    shaping,
  };
}
