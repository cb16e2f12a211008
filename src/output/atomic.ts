import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, type FileHandle, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { ExitCode, errorMessage, FlashcardsError } from '../core/errors.ts';
import { isProcessRunning } from '../core/process-alive.ts';

interface Where {
  /** The path as given, for messages. */
  file: string;
  base: string;
  /** The directory as given, with a trailing slash: "out/", "./". */
  dir: string;
}

/**
 * Streams `chunks` (strings as UTF-8, or raw bytes) into a temp file beside `file`, fsyncs it and
 * renames it over `file`, so readers (and a crash at any moment) see either the old file or the
 * complete new one. On failure the temp file is removed; file-system errors become usage errors
 * naming the path, anything else (such as an error from the chunk source) is rethrown as it is.
 */
export async function writeFileAtomic(
  file: string,
  chunks: AsyncIterable<string | Uint8Array>,
): Promise<{ bytes: number; path: string }> {
  const { target, dir, where } = place(file);
  const mode = await checkTarget(target, dir, where);
  await removeAbandonedTemps(dir, basename(target));
  const temp = join(dir, `.${basename(target)}.${process.pid}-${HOST}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx');
    // Replacing a file keeps its permissions, as an in-place write would have.
    if (mode !== undefined) await handle.chmod(mode);
    let bytes = 0;
    for await (const chunk of chunks) bytes += await writeAll(handle, toBuffer(chunk));
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, target).catch((e: NodeJS.ErrnoException) => {
      // Only another process can have taken the temp file away (see removeAbandonedTemps).
      if (e.code !== 'ENOENT') throw e;
      throw new FlashcardsError(
        'usage',
        `cannot write ${where.base}: its temp file ${basename(temp)} was removed by another process`,
        {
          hint: 'the results are stored: write the deck again with `flashcards batches export <batch> -o <file>`',
        },
      );
    });
    await syncDirectory(dir);
    return { bytes, path: target };
  } catch (e) {
    await handle?.close().catch(() => {});
    await rm(temp, { force: true }).catch(() => {});
    throw isFsError(e) ? writeError(where, e) : e;
  }
}

/** The file's absolute path and directory, and how messages name them (as the user gave them). */
function place(file: string, shownAs = file): { target: string; dir: string; where: Where } {
  const target = resolve(file);
  const shown = dirname(shownAs);
  return {
    target,
    dir: dirname(target),
    where: { file: shownAs, base: basename(target), dir: shown.endsWith('/') ? shown : `${shown}/` },
  };
}

/**
 * Fails with the same one-line errors `writeFileAtomic` would give (missing directory, a path
 * that is a directory, no permission), for a command that must know before it pays for anything.
 */
export async function checkOutputPath(file: string, shownAs = file): Promise<void> {
  const { target, dir, where } = place(file, shownAs);
  await checkTarget(target, dir, where);
}

/** Names this host in temp file names, so a sweep never touches another machine's file on a shared disk. */
const HOST = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

/**
 * A deck is written while its run goes on, so a run killed with -9 leaves its temp file behind:
 * the next write of the same file removes those of dead processes on this host.
 */
async function removeAbandonedTemps(dir: string, base: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const prefix = `.${base}.`;
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const m = /^(\d+)-([0-9a-f]{8})\.[0-9a-f]{12}\.tmp$/.exec(name.slice(prefix.length));
    if (!m || m[2] !== HOST || isProcessRunning(Number(m[1]))) continue;
    await rm(join(dir, name), { force: true }).catch(() => {});
  }
}

/** Fails before any work when the target cannot be written; returns the mode of a file being replaced. */
async function checkTarget(target: string, dir: string, where: Where): Promise<number | undefined> {
  try {
    if (!(await stat(dir)).isDirectory())
      throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    // The temp file is created in the directory: it must be writable even to replace a file.
    await access(dir, constants.W_OK);
  } catch (e) {
    throw writeError(where, e as NodeJS.ErrnoException);
  }
  try {
    const existing = await stat(target);
    if (existing.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    return existing.mode & 0o7777;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return undefined;
    throw writeError(where, err);
  }
}

function toBuffer(chunk: string | Uint8Array): Buffer {
  return typeof chunk === 'string'
    ? Buffer.from(chunk, 'utf8')
    : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

async function writeAll(handle: FileHandle, buffer: Buffer): Promise<number> {
  let offset = 0;
  while (offset < buffer.length) {
    const { bytesWritten } = await handle.write(buffer, offset, buffer.length - offset);
    if (bytesWritten === 0) throw Object.assign(new Error('wrote 0 bytes'), { code: 'EIO' });
    offset += bytesWritten;
  }
  return buffer.length;
}

/** Makes the rename itself durable. Best-effort: some platforms cannot open or fsync a directory. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // The file content is already synced; only the rename's durability is at stake.
  }
}

/** errno-style codes only, so a SQLite or card-source error passing through keeps its own identity. */
function isFsError(e: unknown): e is NodeJS.ErrnoException {
  const code = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

function writeError(where: Where, e: NodeJS.ErrnoException): FlashcardsError {
  const start = e.code === 'EISDIR' ? `cannot write ${where.file}` : `cannot write ${where.base}`;
  const make = (reason: string, hint?: string, exitCode?: ExitCode): FlashcardsError =>
    new FlashcardsError('usage', `${start}: ${reason}`, {
      hint,
      cause: e,
      ...(exitCode ? { exitCode } : {}),
    });
  switch (e.code) {
    case 'ENOENT':
      return make(`directory ${where.dir} does not exist`, `create it first: mkdir -p ${where.dir}`);
    case 'ENOTDIR':
      return make(`${where.dir} is not a directory`, `${where.dir} names a file: choose another folder`);
    case 'EISDIR':
      return make('it is a directory', 'name a file inside it, e.g. -o deck.tsv');
    case 'EACCES':
    case 'EPERM':
      return make(
        `permission denied in ${where.dir}`,
        `check the directory's permissions: ls -ld ${where.dir}`,
      );
    case 'ENOSPC':
    case 'EDQUOT':
      // The machine's problem, not the command's: exit 3 like a full data directory.
      return make(
        `no space left on the device holding ${where.dir}`,
        'free some space and run again: the answers are kept, so the next run only writes the deck',
        ExitCode.aborted,
      );
    case 'EROFS':
      return make(`${where.dir} is on a read-only file system`);
    default:
      return make(errorMessage(e));
  }
}
