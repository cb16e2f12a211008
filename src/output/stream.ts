import { errorMessage, FlashcardsError } from '../core/errors.ts';

/**
 * Writes chunks to a stream (stdout), waiting for 'drain' when it is full so a large deck piped
 * into a slow reader never piles up in memory. Not atomic: the reader sees lines as they come.
 */
export async function writeToStream(
  out: NodeJS.WritableStream,
  chunks: AsyncIterable<string>,
): Promise<number> {
  let failure: unknown;
  const onError = (e: unknown): void => {
    failure ??= e;
  };
  out.on('error', onError);
  let bytes = 0;
  try {
    for await (const chunk of chunks) {
      if (failure !== undefined) break;
      bytes += Buffer.byteLength(chunk);
      if (!out.write(chunk)) await drained(out);
    }
  } finally {
    out.off('error', onError);
  }
  if (failure !== undefined) {
    throw new FlashcardsError('usage', `cannot write to stdout: ${errorMessage(failure)}`, {
      cause: failure,
    });
  }
  return bytes;
}

/** Resolves on 'drain', or on 'error'/'close' so a dead reader cannot leave the writer waiting forever. */
function drained(out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('close', done);
      out.off('error', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
    out.on('error', done);
  });
}
