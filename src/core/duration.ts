import { usageError } from './errors.ts';

const units: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses `250ms`, `30s`, `25m`, `2h`, `30d` or a bare number of `defaultUnit`s into milliseconds. */
export function parseDuration(text: string, what: string, defaultUnit: keyof typeof units = 's'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match) {
    throw usageError(`${what} must be a duration like 30s, 25m or 2h, got "${text}"`);
  }
  const unit = units[match[2] ?? defaultUnit] ?? 1;
  return Math.round(Number(match[1]) * unit);
}

/** Formats milliseconds for people: 850ms, 12.3s, 4m05s, 2h10m. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const totalSeconds = Math.round(ms / 1000);
  if (totalSeconds < 3600) {
    const m = Math.floor(totalSeconds / 60);
    return `${m}m${String(totalSeconds % 60).padStart(2, '0')}s`;
  }
  const totalMinutes = Math.round(totalSeconds / 60);
  return `${Math.floor(totalMinutes / 60)}h${String(totalMinutes % 60).padStart(2, '0')}m`;
}
