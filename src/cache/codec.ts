import zlib from 'node:zlib';
import { FlashcardsError } from '../core/errors.ts';

export type CodecName = 'identity' | 'zstd' | 'br' | 'deflate';

export const CODEC_NAMES: readonly CodecName[] = ['identity', 'zstd', 'br', 'deflate'];

/** How a body is stored. Each row names its codec, so the default can change without migrating rows. */
export interface Codec {
  readonly name: CodecName;
  encode(data: Buffer): Buffer;
  decode(data: Buffer): Buffer;
}

// zstd arrived in node:zlib in Node 22.15 / 23.8; typed loosely so older @types still compile.
interface ZstdZlib {
  zstdCompressSync?: (data: Buffer, options?: { params?: Record<number, number> }) => Buffer;
  zstdDecompressSync?: (data: Buffer) => Buffer;
  constants: { ZSTD_c_compressionLevel?: number };
}
const z = zlib as unknown as ZstdZlib;

const identity: Codec = { name: 'identity', encode: (d) => d, decode: (d) => d };

// Level 3: on ~2 KB card JSON, level 6 buys about 3% size for 20% more CPU; level 1 saves
// almost nothing because per-call setup dominates at this size.
const zstd: Codec | undefined = makeZstd(3);

function makeZstd(level: number): Codec | undefined {
  const { zstdCompressSync: compress, zstdDecompressSync: decompress } = z;
  const levelParam = z.constants.ZSTD_c_compressionLevel;
  if (!compress || !decompress || levelParam === undefined) return undefined;
  const options = { params: { [levelParam]: level } };
  return { name: 'zstd', encode: (d) => compress(d, options), decode: (d) => decompress(d) };
}

// Quality 5 instead of brotli's default 11: 11 costs milliseconds per small body for a few % gain.
const br: Codec = {
  name: 'br',
  encode: (d) =>
    zlib.brotliCompressSync(d, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: 5,
        [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: d.length,
      },
    }),
  decode: (d) => zlib.brotliDecompressSync(d),
};

// Raw deflate: the zlib header and checksum add 6 bytes and buy nothing, SQLite already checks pages.
const deflate: Codec = {
  name: 'deflate',
  encode: (d) => zlib.deflateRawSync(d, { level: 6 }),
  decode: (d) => zlib.inflateRawSync(d),
};

const codecs: Partial<Record<CodecName, Codec>> = { identity, br, deflate, ...(zstd ? { zstd } : {}) };

export function isCodecName(name: string): name is CodecName {
  return (CODEC_NAMES as readonly string[]).includes(name);
}

/** The codec, or undefined when it is unknown or this Node version lacks it (zstd before 22.15). */
export function findCodec(name: string): Codec | undefined {
  return isCodecName(name) ? codecs[name] : undefined;
}

/**
 * Raw deflate. Measured on 1.4-2.8 KB card JSON (bench/cache.ts), node:zlib's one-shot calls
 * are dominated by per-call setup, and deflate came out ahead of zstd on both read cost
 * (~11 vs ~26 µs) and ratio (2.6x vs 2.5x); zstd pays off only on larger bodies. Deflate is
 * also readable by every supported Node, so a cache stays valid when Node is downgraded.
 */
export function defaultCodecName(): CodecName {
  return 'deflate';
}

/** The codec for writing; an explicitly requested codec that this Node lacks is a config error. */
export function writeCodec(name: CodecName | undefined): Codec {
  const codec = findCodec(name ?? defaultCodecName());
  if (!codec) {
    throw new FlashcardsError(
      'config',
      `cache codec "${name}" is not available in Node ${process.versions.node}`,
      {
        hint: 'zstd needs Node 22.15+ or 23.8+; use codec "br" or "deflate", or upgrade Node',
      },
    );
  }
  return codec;
}

/** Decodes a stored body; throws a database error naming the codec when it cannot. */
export function decodeBody(codecName: string, data: Buffer): string {
  const codec = findCodec(codecName);
  if (!codec) {
    throw new FlashcardsError(
      'database',
      `cached body uses codec "${codecName}", which Node ${process.versions.node} cannot decode`,
      { hint: `known codecs here: ${CODEC_NAMES.filter((n) => codecs[n]).join(', ')}` },
    );
  }
  try {
    return codec.decode(data).toString('utf8');
  } catch (e) {
    throw new FlashcardsError(
      'database',
      `cached body does not decode as ${codecName} (${(e as Error).message})`,
      {
        cause: e,
      },
    );
  }
}
