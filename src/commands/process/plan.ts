import { existsSync } from 'node:fs';
import { namedBatch, noBatch } from '../../batch/identify.ts';
import { openSqliteBatchStores } from '../../batch/sqlite-stores.ts';
import type { BatchRecord } from '../../batch/store.ts';
import type { Settings } from '../../config/index.ts';
import { apiKeyVars, loadSettings, needsApiKey, PRESETS, suggestedKeyVar } from '../../config/index.ts';
import { FlashcardsError, usageError } from '../../core/errors.ts';
import { dataPaths } from '../../core/home.ts';
import { publicUrl } from '../../core/provider-key.ts';
import { openDatabase } from '../../db/open.ts';
import { type DeckChoice, deckMeta } from '../../output/deck-meta.ts';
import type { DeckMeta, OutputFormat } from '../../output/index.ts';
import { loadPipeline, pipelineBaseDir, pipelineRef } from '../../pipeline/registry.ts';
import type { Pipeline } from '../../pipeline/types.ts';
import type { CommandContext } from '../context.ts';
import { settingsInput } from '../state.ts';
import { deckFormat, deckOutput } from './deck-output.ts';
import type { ProcessOptions } from './options.ts';

/** What a run will do, settled before anything is opened, read from stdin or paid for. */
export interface RunPlan {
  settings: Settings;
  pipeline: Pipeline;
  /** How a batch remembers its pipeline: a built-in name or an absolute path. */
  pipelineRef: string;
  format: OutputFormat;
  /** '-' for stdout; null when the cards go to AnkiConnect only. */
  output: string | null;
  choice: DeckChoice;
  meta: DeckMeta;
  /** The input as people read it in messages ("stdin" for -). */
  displayName: string;
  /** When the run started (the --max-duration deadline counts from here). */
  started: number;
}

/** Options that contradict each other are a usage error, not a silent choice. */
function checkOptions(o: ProcessOptions, settings: Settings): void {
  if (o.batch && o.newBatch)
    throw usageError('--batch resumes a batch and --new starts one; use one of them');
  if (o.refresh && !settings.cache.enabled) {
    throw usageError('--refresh rewrites the cache and --no-cache turns it off; use one of them');
  }
  if (o.json && o.output === '-') {
    throw usageError(
      '--json and -o - both write to stdout',
      'write the deck to a file with -o, or drop --json',
    );
  }
}

/**
 * The batch `--batch <id>` names, looked up before the run opens state.db for work, so a wrong id
 * or other settings fail before anything else; creates nothing (no data directory, no state.db).
 */
async function lookUpBatch(
  ctx: CommandContext,
  id: string,
  settings: Settings,
  pipeline: Pipeline,
): Promise<BatchRecord> {
  const file = dataPaths(ctx.home).stateDb;
  if (!existsSync(file)) throw noBatch(id);
  const db = openDatabase(file);
  try {
    return await namedBatch(openSqliteBatchStores(db, ctx.clock).catalog, id, settings, pipeline);
  } finally {
    db.close();
  }
}

function requireApiKey(settings: Settings): void {
  if (!needsApiKey(settings.provider, settings.baseUrl) || settings.apiKey) return;
  const where = PRESETS[settings.provider].keyUrl;
  throw new FlashcardsError(
    'config',
    `no API key for ${settings.provider} at ${publicUrl(settings.baseUrl)}; looked in ${apiKeyVars(settings.provider).join(', ')}`,
    {
      hint: `export ${suggestedKeyVar(settings.provider)}=<your key>${where ? ` (get one at ${where})` : ''}, or try --provider mock offline`,
    },
  );
}

/** Fails before any work when Anki is not listening: a closed Anki must not surface after the run. */
async function checkAnkiConnect(url: string): Promise<void> {
  const { ankiConnectVersion } = await import('../../output/anki-connect.ts');
  await ankiConnectVersion(url);
}

/**
 * Settles what the run will do and checks everything that can be checked before a request is paid
 * for: settings, contradictory options, the pipeline file, the API key, AnkiConnect, the output
 * path. Reads nothing but the configuration, the pipeline and (for `--batch <id>`) that batch's
 * record; opens nothing for the run.
 */
export async function planRun(ctx: CommandContext, o: ProcessOptions): Promise<RunPlan> {
  const started = ctx.clock.now();
  const { settings, sources } = await loadSettings(settingsInput(ctx, o.flags));
  checkOptions(o, settings);
  // A pipeline file's problems are reported before anything else is asked of the user.
  const pipelineDir = pipelineBaseDir(sources['pipeline'], ctx.cwd);
  const pipeline = loadPipeline(settings.pipeline, pipelineDir, settings);
  const named = o.batch === undefined ? undefined : await lookUpBatch(ctx, o.batch, settings, pipeline);
  const format = deckFormat(o, settings, sources, named);
  requireApiKey(settings);
  const isDefault = (key: string): boolean => (sources[key]?.kind ?? 'default') === 'default';
  const choice: DeckChoice = {
    deck: isDefault('deck') ? undefined : settings.deck,
    noteType: isDefault('noteType') ? undefined : settings.noteType,
    tags: settings.tags,
    fields: settings.fields,
  };
  const meta = deckMeta(pipeline, choice);
  if (o.to === 'anki-connect') await checkAnkiConnect(settings.ankiConnectUrl);
  const output = await deckOutput(ctx, o, format, named);
  return {
    settings,
    pipeline,
    pipelineRef: pipelineRef(settings.pipeline, pipelineDir),
    format,
    output,
    choice,
    meta,
    displayName: o.input === undefined ? (named?.inputName ?? '') : o.input === '-' ? 'stdin' : o.input,
    started,
  };
}
