import { createHash, randomBytes } from 'node:crypto';
import type { Settings } from '../config/index.ts';
import { FlashcardsError } from '../core/errors.ts';
import { publicUrl } from '../core/provider-key.ts';
import type { Pipeline } from '../pipeline/types.ts';
import { batchIdFor, hashFile } from './prepare.ts';
import type { BatchCatalog, BatchRecord } from './store.ts';

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

/** The result-shaping settings and their hash, which a batch is identified (and resumed) by. */
function shapingOf(
  settings: Settings,
  pipeline: Pipeline,
): { shaping: Record<string, unknown>; hash: string } {
  const shaping = resultSettings(settings, pipeline);
  return { shaping, hash: createHash('sha256').update(JSON.stringify(shaping)).digest('hex') };
}

/**
 * The batch `--batch <id>` names, if this run may work on it: it exists, holds all its items (a
 * named batch is resumed from state.db alone, its input is not read), and was made with the same
 * result-shaping settings (one deck must not mix two models or two prompts).
 */
export async function namedBatch(
  catalog: BatchCatalog,
  id: string,
  settings: Settings,
  pipeline: Pipeline,
): Promise<BatchRecord> {
  const named = await catalog.get(id);
  if (!named) throw noBatch(id);
  if (named.status === 'loading') {
    throw new FlashcardsError('usage', `batch ${named.id} was never fully loaded from its input`, {
      hint: 'run the same command with its input file instead of --batch; the load starts again',
    });
  }
  const { shaping, hash } = shapingOf(settings, pipeline);
  if (named.settingsHash !== hash) {
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
  return named;
}

export function noBatch(id: string): FlashcardsError {
  return new FlashcardsError('usage', `no batch ${id}`, {
    hint: 'list batches with `flashcards batches list`',
  });
}

/**
 * Which batch a run works on: the named one (`--batch`, see namedBatch), a fresh one (`--new`),
 * or the one identified by the input's content and the result-shaping settings. The input is
 * read (hashed) only when no batch is named.
 */
export async function identifyBatch(
  catalog: BatchCatalog,
  o: {
    settings: Settings;
    pipeline: Pipeline;
    /** The input file; undefined when a batch is named (its input is not read). */
    inputPath: string | undefined;
    batch?: string | undefined;
    newBatch: boolean;
  },
): Promise<BatchIdentity> {
  const { shaping, hash: settingsHash } = shapingOf(o.settings, o.pipeline);
  if (o.batch) {
    const named = await namedBatch(catalog, o.batch, o.settings, o.pipeline);
    return { id: named.id, inputDigest: named.inputDigest, settingsHash, shaping };
  }
  if (o.inputPath === undefined)
    throw new FlashcardsError('internal', 'a batch is identified by its input or its id; neither was given');
  const inputDigest = await hashFile(o.inputPath);
  const id = batchIdFor(inputDigest, settingsHash);
  return {
    id: o.newBatch ? `${id}-${randomBytes(2).toString('hex')}` : id,
    inputDigest,
    settingsHash,
    shaping,
  };
}
