import { FlashcardsError } from '../core/errors.ts';

export interface LimiterSettings {
  /** Configured requests per minute; undefined = unknown, learn from the provider. */
  rpm?: number | undefined;
  /** Configured tokens per minute; undefined = unknown. */
  tpm?: number | undefined;
  /** Burst as seconds of budget (default 1). */
  burstSeconds: number;
  shards: number | 'auto';
  /** Largest single request's estimated token cost (auto-shard sizing + refusal). */
  maxRequestTokens: number;
}

export function checkSettings(s: LimiterSettings): void {
  const positive = (name: string, v: number | undefined, optional: boolean): void => {
    if (v === undefined && optional) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new FlashcardsError('config', `limiter.${name} must be a number > 0, got ${String(v)}`);
    }
  };
  positive('rpm', s.rpm, true);
  positive('tpm', s.tpm, true);
  positive('burstSeconds', s.burstSeconds, false);
  positive('maxRequestTokens', s.maxRequestTokens, false);
  if (s.shards !== 'auto' && !(Number.isInteger(s.shards) && s.shards >= 1 && s.shards <= 1024)) {
    throw new FlashcardsError(
      'config',
      `limiter.shards must be 'auto' or an integer 1-1024, got ${String(s.shards)}`,
    );
  }
}
