import { formatDuration } from '../../core/duration.ts';
import { effectiveRates } from '../../limiter/learn.ts';
import { defaultRow, type KeyRow } from '../../limiter/schema.ts';

/** A request's latency for hosted models when no run on this key has measured one yet. */
export const ASSUMED_LATENCY_MS = 4000;

/** Where a limit the run will pace by comes from. */
export type LimitSource =
  /** A setting: `--rpm`, FLASHCARDS_RPM, a config file, a provider preset (`said` is how to say it). */
  | { kind: 'setting'; said: string }
  /** The provider's rate-limit headers, last seen at `at`. */
  | { kind: 'headers'; at: number }
  /** Lowered after 429s from a provider that sends no limits (AIMD), since `at`. */
  | { kind: '429s'; at: number };

export interface PaceInput {
  /** The limits the settings give (`--rpm`, `--tpm`, env, config file, preset). */
  configured: { rpm: number | undefined; tpm: number | undefined };
  /** How to say where each configured limit came from: "told by --rpm", "set in .flashcardrc". */
  toldBy: { rpm: string; tpm: string };
  /** This key's row in state.db (limits learned, latency seen); undefined when none is stored. */
  stored: KeyRow | undefined;
  /** The time of the store (AIMD growth is a function of time). */
  nowMs: number;
  /** Requests the estimate spreads over time. */
  calls: number;
  /** Tokens one request books against a tokens-per-minute budget. */
  tokensPerCall: number;
  /** `--concurrency` when pinned; undefined when the run steers it. */
  concurrency: number | undefined;
  maxConcurrency: number;
}

export interface Pace {
  /** The pace the estimate assumes. */
  requestsPerMinute: number;
  /** What holds the run to it: a request or token limit, the pinned concurrency, or nothing known. */
  boundBy: 'rpm' | 'tpm' | 'concurrency' | 'unknown';
  rpm: { value: number; source: LimitSource } | null;
  tpm: { value: number; source: LimitSource } | null;
  latencyMs: number;
  /** Whether the latency was measured by earlier runs on this key, or assumed. */
  latencyFrom: 'measured' | 'assumed';
  durationMs: number;
  /** For people: "60 requests/min, told by --rpm". */
  said: string;
}

/**
 * The pace a run will go at, as the limiter will set it: configured limits are a ceiling that
 * limits learned for this key (headers, 429s) can only lower (limiter/learn.ts effectiveRates,
 * the same rule). A steered run (no --concurrency) keeps rate x latency requests in flight, so
 * the rate alone sets the pace; a pinned concurrency bounds it at concurrency / latency. With no
 * limit known, the steered run climbs while more requests in flight raise throughput: assumed to
 * go as far as --max-concurrency at the latency.
 */
export function estimatePace(o: PaceInput): Pace {
  const row = o.stored ?? defaultRow('');
  const rates = effectiveRates(o.configured, row, o.nowMs);
  const sourceOf = (kind: 'rpm' | 'tpm', rate: number): LimitSource => {
    const configured = o.configured[kind];
    if (configured !== undefined && rate === configured) return { kind: 'setting', said: o.toldBy[kind] };
    const header = kind === 'rpm' ? row.header_rpm : row.header_tpm;
    if (header !== null && rate === header) return { kind: 'headers', at: row.header_at ?? o.nowMs };
    return { kind: '429s', at: row.aimd_at ?? o.nowMs };
  };
  const rpm = rates.rpm === null ? null : { value: rates.rpm, source: sourceOf('rpm', rates.rpm) };
  const tpm = rates.tpm === null ? null : { value: rates.tpm, source: sourceOf('tpm', rates.tpm) };
  const measured = row.latency_p50_ms !== null && row.latency_p50_ms > 0;
  const latencyMs = measured ? (row.latency_p50_ms ?? ASSUMED_LATENCY_MS) : ASSUMED_LATENCY_MS;

  const bounds: Array<{ by: Pace['boundBy']; perMinute: number }> = [];
  if (rpm) bounds.push({ by: 'rpm', perMinute: rpm.value });
  if (tpm && o.tokensPerCall > 0) bounds.push({ by: 'tpm', perMinute: tpm.value / o.tokensPerCall });
  if (o.concurrency !== undefined)
    bounds.push({ by: 'concurrency', perMinute: (o.concurrency * 60_000) / latencyMs });
  if (bounds.length === 0) bounds.push({ by: 'unknown', perMinute: (o.maxConcurrency * 60_000) / latencyMs });
  const bound = bounds.reduce((a, b) => (b.perMinute < a.perMinute ? b : a));
  const durationMs = o.calls > 0 ? (o.calls / bound.perMinute) * 60_000 : 0;

  const latencyText = `~${formatDuration(latencyMs)} a request (${measured ? 'the latency runs on this key saw' : 'assumed'})`;
  let said: string;
  switch (bound.by) {
    case 'rpm':
      said = `${round(rpm?.value ?? 0)} requests/min, ${sourceText(rpm?.source)}`;
      break;
    case 'tpm':
      said = `${round(tpm?.value ?? 0)} tokens/min, ${sourceText(tpm?.source)}; ~${Math.round(o.tokensPerCall)} tokens booked a request`;
      break;
    case 'concurrency':
      said = `${o.concurrency} requests in flight (--concurrency) at ${latencyText}`;
      break;
    case 'unknown':
      said = `no limit known: assumes up to ${o.maxConcurrency} requests in flight at ${latencyText}; a run learns the limit from the provider's headers`;
      break;
  }
  return {
    requestsPerMinute: bound.perMinute,
    boundBy: bound.by,
    rpm,
    tpm,
    latencyMs,
    latencyFrom: measured ? 'measured' : 'assumed',
    durationMs,
    said,
  };
}

function round(n: number): number {
  return n >= 10 ? Math.round(n) : Math.round(n * 10) / 10;
}

function day(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function sourceText(source: LimitSource | undefined): string {
  if (source === undefined) return '';
  switch (source.kind) {
    case 'setting':
      return source.said;
    case 'headers':
      return `learned from the provider's headers on ${day(source.at)}`;
    case '429s':
      return `learned from the provider's 429s since ${day(source.at)}`;
  }
}
