import type { CacheStats } from '../cache/admin.ts';
import type { Clock } from '../core/clock.ts';
import { errorMessage } from '../core/errors.ts';
import {
  buildSnapshot,
  type MonitorReads,
  type MonitorSnapshot,
  type RateHistory,
  recordSamples,
} from './snapshot.ts';

/**
 * The live view: look, draw, sleep, until the signal. Redrawing goes to a `Screen` (stdout when it
 * is a terminal) in place: the cursor goes home, each line clears its own rest, the frame is cut to
 * the terminal's size so it never scrolls.
 */

export interface Screen {
  write(text: string): void;
  columns: number;
  rows: number;
}

const ESC = '\u001b[';
/** Hide the cursor and clear the screen once, before the first frame. */
export const SCREEN_START = `${ESC}?25l${ESC}2J${ESC}H`;
/** Show the cursor again; the last frame stays on the screen. */
export const SCREEN_END = `${ESC}?25h`;

// SGR colour sequences, which take no room on the screen.
const SGR = new RegExp(`${ESC.replace('[', '\\[')}[0-9;]*m`, 'y');

/** Columns a character takes: 2 for Hangul, CJK and fullwidth forms (Korean terms), else 1. */
function cellWidth(cp: number): number {
  return (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    cp >= 0x20000
    ? 2
    : 1;
}

/** `line` cut to `width` columns on the screen (colour sequences kept, and reset when cut). */
export function clipVisible(line: string, width: number): string {
  let out = '';
  let shown = 0;
  let i = 0;
  while (i < line.length) {
    SGR.lastIndex = i;
    const m = SGR.exec(line);
    if (m) {
      out += m[0];
      i += m[0].length;
      continue;
    }
    const cp = line.codePointAt(i) ?? 0;
    const ch = String.fromCodePoint(cp);
    if (shown + cellWidth(cp) > width) return `${out}${ESC}0m`;
    out += ch;
    shown += cellWidth(cp);
    i += ch.length;
  }
  return out;
}

/** One frame for a terminal of this size: from the top-left corner, lines cut, the rest cleared. */
export function frameFor(text: string, size: { columns: number; rows: number }): string {
  let lines = text.replace(/\n$/, '').split('\n');
  // The last row stays empty: writing into it would scroll the screen on some terminals.
  const room = Math.max(1, size.rows - 1);
  if (lines.length > room) {
    const hidden = lines.length - room + 1;
    lines = [...lines.slice(0, room - 1), `... ${hidden} more lines (a larger window shows them)`];
  }
  return `${ESC}H${lines.map((l) => `${clipVisible(l, size.columns)}${ESC}K`).join('\n')}\n${ESC}J`;
}

export interface LiveOptions {
  /** One look at the state; `withCache`: read the cache's statistics too. */
  collect(withCache: boolean): Promise<MonitorReads>;
  render(snapshot: MonitorSnapshot): string;
  screen: Screen;
  /** This host's clock: the pause between looks. */
  clock: Clock;
  intervalMs: number;
  /** How often the cache's statistics are read again (they scan the cache). */
  cacheEveryMs: number;
  /** Ends the view (Ctrl-C). */
  signal: AbortSignal;
}

/** Draws until the signal; a look that fails is shown on top of the last frame and tried again. */
export async function runLive(o: LiveOptions): Promise<void> {
  let history: RateHistory = {};
  let cache: CacheStats | null = null;
  let cacheAt = Number.NEGATIVE_INFINITY;
  let last = '';
  o.screen.write(SCREEN_START);
  try {
    while (!o.signal.aborted) {
      let text: string;
      try {
        const withCache = o.clock.now() - cacheAt >= o.cacheEveryMs;
        const reads = await o.collect(withCache);
        if (withCache) {
          cache = reads.cache;
          cacheAt = o.clock.now();
        }
        history = recordSamples(history, reads);
        last = o.render(buildSnapshot({ ...reads, cache }, history));
        text = last;
      } catch (e) {
        text = `could not read the state: ${errorMessage(e)} (trying again)\n${last}`;
      }
      if (o.signal.aborted) break;
      o.screen.write(frameFor(text, o.screen));
      await o.clock.sleep(o.intervalMs, o.signal).catch(() => undefined);
    }
  } finally {
    o.screen.write(SCREEN_END);
  }
}
