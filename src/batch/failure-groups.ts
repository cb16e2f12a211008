import type { BatchResults, ItemFailure } from './store.ts';

/**
 * Failed items grouped by cause, for `batches show` and the end of a `process` run: a batch where
 * 300 items failed on the same HTTP 500 reads as one line with a count, not 300 lines. Messages
 * are compared after masking what differs from item to item (numbers, ids, quoted text, the
 * item's own term); the kind of error and an HTTP status stay, so a 500 and a 502 are two causes.
 */
export interface FailureGroup {
  errorKind: string;
  /** The normalised message: `answer did not match the schema at /cards/<n>/front`. */
  message: string;
  count: number;
  /** The first item (in input order) that failed this way, as the caller numbers items, with its own message. */
  example: { item: number; term: string; message: string };
}

/** How many failed items are grouped at most (a page of the store, read once). */
export const GROUPED_FAILURES = 10_000;

const URL_PATTERN = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>)\]]+/gi;
/** A status code after HTTP names the cause (500 vs 502): kept, as is. */
const HTTP_STATUS = /^HTTP \d{3}$/;
const DOUBLE_QUOTED = /"[^"\n]*"|“[^”\n]*”|«[^»\n]*»|`[^`\n]*`/g;
/** Single quotes only around a whole phrase, not an apostrophe inside a word ("didn't"). */
const SINGLE_QUOTED = /(^|[\s([{:=,])'[^'\n]*'(?=$|[\s)\]},.:;!?])/g;
/** Hex runs with a digit (request ids, hashes), prefixed ids (req_..., chatcmpl-...), and long mixed tokens. */
const UUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;
const HEX_ID = /\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b/gi;
const PREFIXED_ID = /\b[a-z]+[_-](?=[a-z0-9]*\d)[a-z0-9]{6,}\b/gi;
const LONG_TOKEN = /\b(?=[\w-]*\d)(?=[\w-]*[a-z])[\w-]{20,}\b/gi;
/**
 * A number standing alone (not part of a word such as gpt-4o), with a unit glued to it if any:
 * "try again in 1.414s" and "in 240ms" are one cause.
 */
const NUMBER = /(?<![\w.])\d+(?:\.\d+)?(?:ms|s|m|h|k|kb|mb|%)?(?![\w])/gi;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Masks the parts of a message that are not URLs. */
function maskText(text: string): string {
  return text
    .replace(DOUBLE_QUOTED, (m) => (m.slice(1, -1) === '<term>' ? m : `${m[0]}<text>${m.at(-1)}`))
    .replace(SINGLE_QUOTED, (m, before: string) =>
      m.slice(before.length + 1, -1) === '<term>' ? m : `${before}'<text>'`,
    )
    .replace(UUID, '<id>')
    .replace(HEX_ID, '<id>')
    .replace(PREFIXED_ID, '<id>')
    .replace(LONG_TOKEN, '<id>')
    .replace(NUMBER, (n, at: number, all: string) =>
      HTTP_STATUS.test(all.slice(Math.max(0, at - 5), at + n.length)) ? n : '<n>',
    );
}

/**
 * A failure's message with what differs between items masked: the item's own term as `<term>`,
 * quoted text as `"<text>"`, ids as `<id>`, numbers as `<n>`; URLs and HTTP status codes are kept.
 */
export function normaliseFailure(message: string, term: string): string {
  const own = term.trim();
  // The term as a whole word only: a term "x" must not turn "expected" into "e<term>pected". A
  // short term that is also a word of the messages ("in", "time") is masked only where quoted.
  const text =
    own === ''
      ? message
      : own.length < 5 && /^[a-z0-9]+$/i.test(own)
        ? message.replace(new RegExp(`(["'“«\`])${escapeRegExp(own)}(["'”»\`])`, 'gu'), '$1<term>$2')
        : message.replace(
            new RegExp(`(?<![\\p{L}\\p{N}_])${escapeRegExp(own)}(?![\\p{L}\\p{N}_])`, 'gu'),
            '<term>',
          );
  let out = '';
  let at = 0;
  for (const m of text.matchAll(URL_PATTERN)) {
    out += maskText(text.slice(at, m.index)) + m[0];
    at = m.index + m[0].length;
  }
  return (out + maskText(text.slice(at))).replace(/\s+/g, ' ').trim();
}

/** Groups failures by error kind and normalised message, the most frequent first (ties: the earliest item first). */
export function groupFailures(failures: readonly ItemFailure[]): FailureGroup[] {
  const groups = new Map<string, FailureGroup>();
  for (const f of failures) {
    const message = normaliseFailure(f.message, f.term);
    const key = `${f.errorKind}\u0000${message}`;
    const group = groups.get(key);
    if (group) {
      group.count++;
      if (f.item < group.example.item) group.example = { item: f.item, term: f.term, message: f.message };
    } else {
      groups.set(key, {
        errorKind: f.errorKind,
        message,
        count: 1,
        example: { item: f.item, term: f.term, message: f.message },
      });
    }
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.example.item - b.example.item);
}

/**
 * The batch's failed items (up to GROUPED_FAILURES), numbered as people count input rows (the
 * first is 1), and their groups; read through `BatchResults`, so on any backend.
 */
export async function readFailures(
  results: Pick<BatchResults, 'failures'>,
  batchId: string,
): Promise<{ failures: ItemFailure[]; groups: FailureGroup[] }> {
  const failures = (await results.failures(batchId, GROUPED_FAILURES)).map((f) => ({
    ...f,
    item: f.item + 1,
  }));
  return { failures, groups: groupFailures(failures) };
}

/** One group as a line of text: `12× server: provider returned HTTP 500 (e.g. item 3 "사과")`. */
export function formatFailureGroup(g: FailureGroup): string {
  return `${g.count}× ${g.errorKind}: ${g.message} (e.g. item ${g.example.item} "${g.example.term}")`;
}
