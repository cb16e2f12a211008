import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline as pump } from 'node:stream/promises';
import type { Clock } from '../core/clock.ts';
import { FlashcardsError } from '../core/errors.ts';
import { isOwnerAlive } from './owner.ts';
import type { BatchCatalog, BatchMeta, BatchRecord, LoadedItem } from './store.ts';

const CHUNK = 500;

/** SHA-256 of a file's bytes, streamed: the batch id is derived from it before anything is parsed. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    await pump(createReadStream(path), hash);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FlashcardsError('input', `input file not found: ${path}`);
    if (code === 'EISDIR') throw new FlashcardsError('input', `${path} is a directory, not a word list`);
    if (code === 'EACCES') throw new FlashcardsError('input', `cannot read ${path}: permission denied`);
    throw new FlashcardsError('input', `cannot read ${path}: ${(e as Error).message}`);
  }
  return hash.digest('hex');
}

/** Copies stdin to a file so it can be hashed first and parsed second, like any other input. */
export async function spoolStdin(home: string, stdin: NodeJS.ReadableStream): Promise<string> {
  const dir = join(home, 'tmp');
  mkdirSync(dir, { recursive: true });
  // No extension: the format is sniffed from the content, as it is for stdin itself.
  const path = join(dir, `stdin-${process.pid}-${Date.now()}`);
  await pump(stdin, createWriteStream(path));
  return path;
}

export function batchIdFor(inputDigest: string, settingsHash: string): string {
  return `b${createHash('sha256').update(`${inputDigest}\n${settingsHash}`).digest('hex').slice(0, 11)}`;
}

export interface PrepareOptions {
  catalog: BatchCatalog;
  meta: BatchMeta;
  /** Where a new batch's items are read from; undefined for a named batch, which must exist. */
  inputPath: string | undefined;
  displayName: string;
  owner: string;
  clock: Clock;
  signal: AbortSignal;
}

/**
 * Finds or creates the batch for this input and settings. A new batch is filled by streaming the
 * input in chunks (a 100,000-row file is never held in memory); two runs starting together agree
 * on one loader and the other waits for it. Returns the batch and whether it existed before.
 */
export async function prepareBatch(o: PrepareOptions): Promise<{ batch: BatchRecord; resumed: boolean }> {
  for (;;) {
    const existing = await o.catalog.get(o.meta.id);
    if (existing && existing.status !== 'loading') return { batch: existing, resumed: true };
    if (existing) {
      if (existing.loader && isOwnerAlive(existing.loader) && existing.loader !== o.owner) {
        await o.clock.sleep(200, o.signal);
        continue;
      }
      // A loader that died half-way: start the load again (only if no one else already has).
      await o.catalog.deleteLoading(existing.id, existing.loader);
    }
    if (!(await o.catalog.create(o.meta, o.owner))) continue;
    try {
      const total = await loadItems(o);
      await o.catalog.finishLoading(o.meta.id, total);
    } catch (e) {
      await o.catalog.deleteLoading(o.meta.id, o.owner);
      throw e;
    }
    const batch = await o.catalog.get(o.meta.id);
    if (!batch) throw new FlashcardsError('internal', `batch ${o.meta.id} vanished while loading`);
    return { batch, resumed: false };
  }
}

async function loadItems(o: PrepareOptions): Promise<number> {
  if (o.inputPath === undefined) {
    // A named batch removed (`batches rm`) between being found and being resumed.
    throw new FlashcardsError('usage', `no batch ${o.meta.id}`, {
      hint: 'list batches with `flashcards batches list`',
    });
  }
  // The parsers (csv-parse) load only when a batch is new: a resumed run never reads its input again.
  const { openInput } = await import('../input/index.ts');
  const source = await openInput(o.inputPath, { name: o.displayName });
  let chunk: LoadedItem[] = [];
  let total = 0;
  for await (const item of source.items) {
    chunk.push({
      idx: total++,
      term: item.term,
      line: item.line,
      position: item.position,
      type: item.type,
      context: item.context,
    });
    if (chunk.length >= CHUNK) {
      await o.catalog.insertItems(o.meta.id, chunk, o.meta.stages);
      chunk = [];
    }
  }
  if (chunk.length) await o.catalog.insertItems(o.meta.id, chunk, o.meta.stages);
  if (total === 0) {
    throw new FlashcardsError('input', `${o.displayName} has no terms to process`, {
      hint: 'give a CSV/TSV with a header row and a term column, or a text file with one term per line',
    });
  }
  return total;
}
