import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { errorMessage, FlashcardsError } from '../core/errors.ts';
import { countNewlines, Utf8Validator } from './utf8.ts';

/** How much is read upfront to reject binary files and to sniff the format. */
export const HEAD_BYTES = 64 * 1024;

/** The raw bytes of an input, read once, hashed and checked for UTF-8 on the way through. */
export interface ByteInput {
  /** The path as given, or 'stdin'. */
  name: string;
  /** At least the first HEAD_BYTES of the input (all of it when shorter). */
  head: Buffer;
  /** `head` holds the whole input. */
  complete: boolean;
  /** Every byte in order, head included. Call once; the source is closed when it ends or is abandoned. */
  chunks(): AsyncGenerator<Buffer>;
  /** SHA-256 hex of every byte; throws until `chunks()` has run to the end. */
  digest(): string;
  close(): Promise<void>;
}

/**
 * Opens a file (or `-` for stdin) and reads its head. Everything detectable at this point (missing,
 * a directory, unreadable, binary) fails here, before the caller starts any work.
 */
export async function openBytes(
  path: string,
  stdin?: NodeJS.ReadableStream,
  displayName?: string,
): Promise<ByteInput> {
  const name = displayName ?? (path === '-' ? 'stdin' : path);
  const source = path === '-' ? (stdin ?? process.stdin) : await openFile(path);
  const it = source[Symbol.asyncIterator]() as AsyncIterator<unknown>;
  const hash = createHash('sha256');
  const validator = new Utf8Validator();
  let ended = false;
  let finished = false;
  let digest: string | undefined;

  const close = async (): Promise<void> => {
    // Returning the iterator destroys the stream, which closes the file descriptor.
    await it.return?.();
  };
  const pull = async (): Promise<Buffer | undefined> => {
    if (ended) return undefined;
    let step: IteratorResult<unknown>;
    try {
      step = await it.next();
    } catch (e) {
      throw new FlashcardsError('input', `cannot read ${name}: ${errorMessage(e)}`, { cause: e });
    }
    if (step.done) {
      ended = true;
      return undefined;
    }
    const chunk = typeof step.value === 'string' ? Buffer.from(step.value) : (step.value as Buffer);
    hash.update(chunk);
    return chunk;
  };

  const parts: Buffer[] = [];
  let size = 0;
  try {
    while (size < HEAD_BYTES) {
      const chunk = await pull();
      if (!chunk) break;
      parts.push(chunk);
      size += chunk.length;
    }
  } catch (e) {
    await close();
    throw e;
  }
  const head = Buffer.concat(parts, size);
  if (validator.push(head) !== -1 || (ended && validator.incomplete)) {
    await close();
    throw new FlashcardsError('input', `${name} does not look like UTF-8 text (found binary data)`, {
      hint: binaryHint(head),
    });
  }
  let newlines = countNewlines(head);
  const complete = ended;

  let started = false;
  async function* chunks(): AsyncGenerator<Buffer> {
    if (started) throw new FlashcardsError('internal', `${name} can only be read once`);
    started = true;
    try {
      if (head.length > 0) yield head;
      for (;;) {
        const chunk = await pull();
        if (!chunk) break;
        const bad = validator.push(chunk);
        if (bad !== -1) throw binaryAt(name, newlines + 1 + countNewlines(chunk, bad));
        newlines += countNewlines(chunk);
        yield chunk;
      }
      if (validator.incomplete) throw binaryAt(name, newlines + 1);
      finished = true;
    } finally {
      await close();
    }
  }

  return {
    name,
    head,
    complete,
    chunks,
    close,
    digest() {
      if (!finished) {
        throw new FlashcardsError('internal', `the digest of ${name} is known only after all of it was read`);
      }
      digest ??= hash.digest('hex');
      return digest;
    },
  };
}

async function openFile(path: string): Promise<NodeJS.ReadableStream> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    throw openError(path, e);
  }
  try {
    // open(2) succeeds on a directory on Linux; only reading fails, so ask upfront.
    if ((await handle.stat()).isDirectory())
      throw openError(path, Object.assign(new Error(), { code: 'EISDIR' }));
  } catch (e) {
    await handle.close();
    throw e;
  }
  return handle.createReadStream({ highWaterMark: HEAD_BYTES });
}

function openError(path: string, e: unknown): FlashcardsError {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return new FlashcardsError('input', `input file not found: ${path}`, {
        hint: `looked for ${resolve(path)}`,
        cause: e,
      });
    case 'EISDIR':
      return new FlashcardsError('input', `${path} is a directory, not a file`, {
        hint: 'pass a CSV, TSV or text file, or - to read standard input',
      });
    case 'EACCES':
    case 'EPERM':
      return new FlashcardsError('input', `cannot read ${path}: permission denied`, {
        hint: `check the file's permissions: ls -l ${path}`,
        cause: e,
      });
    default:
      return new FlashcardsError('input', `cannot read ${path}: ${errorMessage(e)}`, { cause: e });
  }
}

function binaryAt(name: string, line: number): FlashcardsError {
  return new FlashcardsError('input', `${name}: line ${line} is not UTF-8 text (found binary data)`, {
    hint: 'save the file as UTF-8 text',
  });
}

function binaryHint(head: Buffer): string {
  if ((head[0] === 0xff && head[1] === 0xfe) || (head[0] === 0xfe && head[1] === 0xff)) {
    return 'it looks like UTF-16; save it as UTF-8 (in Excel: "CSV UTF-8")';
  }
  if (head.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1'))) {
    return 'it looks like a zip archive (an .xlsx spreadsheet?); export it as CSV UTF-8';
  }
  return 'expected a UTF-8 CSV, TSV or text file; export spreadsheets as CSV UTF-8';
}
