export { CODEC_NAMES, type Codec, type CodecName, defaultCodecName, isCodecName } from './codec.ts';
export {
  CACHE_SCHEMA_VERSION,
  type CacheKeyInput,
  type ChatMessageLike,
  cacheKey,
  cacheKeyer,
  canonicalJson,
} from './key.ts';
export { SingleFlight } from './single-flight.ts';
export {
  type CacheDeps,
  type CacheEntryInput,
  type CacheHit,
  type CacheRun,
  type CacheSettings,
  DEFAULT_CACHE_SETTINGS,
  ResponseCache,
} from './store.ts';
