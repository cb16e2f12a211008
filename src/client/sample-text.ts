import { hashString, type Random } from '../core/random.ts';

/**
 * What the mock's strings say: text that looks plausible for its property name (a "sentence"
 * contains the term, "tags" are slugs, "pronunciation" looks romanised), so mock answers read like
 * real ones. Which schema asks for a string, and how long it may be, is schema-sample.ts's part.
 */

/** What one sample's strings are about; chosen once per term, so "meaning", "translation" and "gloss" of one card agree. */
export interface Subject {
  term: string;
  gloss: string;
  romanization: string;
  termHash: number;
}

/** Where a string sits: its property name, its parent's, and its index in the enclosing array. */
export interface Place {
  key: string;
  parentKey: string;
  index: number;
}

export function subjectOf(term: string): Subject {
  const termHash = hashString(term);
  return { term, gloss: pickFrom(glosses, termHash), romanization: romanize(term), termHash };
}

/** Splits `usageNotes`, `part_of_speech`, `example-sentence` into lower-case words. */
export function words(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[_\-.]+/g, ' ')
    .toLowerCase();
}

/** A string for the property at `place`, about `subject`. */
export function plausibleText(subject: Subject, rnd: Random, place: Place): string {
  const { term, gloss, romanization, termHash } = subject;
  const key = words(place.key);
  const parent = words(place.parentKey);
  const i = place.index;
  const variant = Math.floor(rnd() * 1000) + i;
  if (/\b(tags?|labels?|keywords?|categor(y|ies)|topics?)\b/.test(key)) {
    // Walk the slug list from a per-term start so the items of one array differ.
    return pickFrom(slugs, termHash + i);
  }
  if (/\bipa\b|phonetic/.test(key)) return `/${romanization}/`;
  if (/pronunc|romani[sz]|translit|reading/.test(key)) return romanization;
  if (/\b(notes?|comments?|etymology|tips?|hints?|remarks?)\b/.test(key))
    return pickFrom(noteTemplates, variant)(term, gloss);
  if (/mnemonic|memory/.test(key)) return pickFrom(mnemonicTemplates, variant)(term, gloss);
  if (/part of speech|\bpos\b|word class|grammar/.test(key)) return pickFrom(partsOfSpeech, variant);
  if (/lang/.test(key)) return 'en';
  if (/example|sentence|usage|context|cloze/.test(parent) && /translation|meaning|english/.test(key)) {
    return pickFrom(translationTemplates, variant)(gloss);
  }
  if (/example|sentence|usage|context|cloze/.test(key)) return pickFrom(sentenceTemplates, variant)(term);
  if (/translation|meaning|definition|gloss|sense|equivalent/.test(key))
    return pickFrom(glosses, termHash + i);
  if (/explanation|difference|description|summary|answer|back/.test(key)) {
    return pickFrom(explanationTemplates, variant)(term, gloss);
  }
  if (/synonym|antonym|related|similar|confus/.test(parent) && /term|word|lemma/.test(key)) {
    return `${term}${['-like', ' (near)', ' (related)'][i % 3]}`;
  }
  if (
    /front|term|word|lemma|headword|question|prompt|vocab|expression|phrase|original|target|source/.test(key)
  ) {
    return term;
  }
  if (/\bids?\b|uuid/.test(key)) return `${slugs[variant % slugs.length]}-${variant}`;
  if (/url|link|href/.test(key)) return `https://example.com/${encodeURIComponent(term)}`;
  if (/name|title/.test(key)) return `${capitalize(gloss)} ${i + 1}`;
  return key === '' ? `${capitalize(gloss)}: ${term}` : `${capitalize(key)} of ${term}`;
}

/** A value for a JSON Schema string `format`, or undefined for a format it does not know. */
export function formatValue(format: string, subject: Subject, rnd: Random): string | undefined {
  const hex = (n: number): string =>
    Array.from({ length: n }, () => '0123456789abcdef'[Math.floor(rnd() * 16)]).join('');
  switch (format) {
    case 'date-time':
      return '2026-01-15T09:30:00Z';
    case 'date':
      return '2026-01-15';
    case 'time':
      return '09:30:00';
    case 'duration':
      return 'P1D';
    case 'email':
      return `mock${Math.floor(rnd() * 100)}@example.com`;
    case 'hostname':
      return 'example.com';
    case 'ipv4':
      return '192.0.2.1';
    case 'ipv6':
      return '2001:db8::1';
    case 'uuid':
      return `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`;
    case 'uri':
    case 'url':
    case 'iri':
      return `https://example.com/${encodeURIComponent(subject.term)}`;
    default:
      return undefined;
  }
}

/** A record key that reads like one: "noun", "verb", ... */
export function recordKey(index: number): string {
  return slugs[index] ?? 'key';
}

function pickFrom<T>(values: readonly T[], n: number): T {
  return values[n % values.length] as T;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function slugify(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

const consonants = ['k', 'n', 'd', 'r', 'm', 'b', 's', 'j', 'ch', 'h', 'g', 't', 'p', 'y', 'w'];
const vowels = ['a', 'eo', 'o', 'u', 'eu', 'i', 'ae', 'e', 'ya', 'yo', 'wa'];

/** Latin-script terms keep their letters; others get one pseudo-syllable per character. */
function romanize(term: string): string {
  if (/^[\p{Script=Latin}\s'’-]+$/u.test(term)) {
    const lower = term.toLowerCase().replace(/\s+/g, ' ');
    return (lower.match(/[^aeiouy]*[aeiouy]+(?:[^aeiouy]+$)?|[^aeiouy]+$/g) ?? [lower]).join('-');
  }
  const syllables: string[] = [];
  for (const ch of term) {
    if (/\s/u.test(ch)) {
      syllables.push(' ');
      continue;
    }
    const code = ch.codePointAt(0) ?? 0;
    syllables.push(`${consonants[code % consonants.length]}${vowels[(code >> 4) % vowels.length]}`);
  }
  return syllables.join('').replace(/ +/g, ' ').trim() || 'a';
}

const glosses = [
  'apple',
  'to walk',
  'bright',
  'river',
  'friendship',
  'to remember',
  'quickly',
  'window',
  'market',
  'to borrow',
  'quiet',
  'weather',
  'to prepare',
  'neighbour',
  'honest',
  'journey',
];

const slugs = [
  'noun',
  'verb',
  'daily-life',
  'food',
  'travel',
  'beginner',
  'formal',
  'informal',
  'common',
  'nature',
];

const partsOfSpeech = ['noun', 'verb', 'adjective', 'adverb', 'expression'];

const sentenceTemplates: readonly ((term: string) => string)[] = [
  (t) => `I use ${t} every day.`,
  (t) => `Where did you see ${t}?`,
  (t) => `She wrote ${t} in her notebook.`,
  (t) => `We talked about ${t} at lunch.`,
  (t) => `My teacher explained ${t} again.`,
];

const translationTemplates: readonly ((gloss: string) => string)[] = [
  (g) => `This sentence is about "${g}".`,
  (g) => `Here it means "${g}".`,
  (g) => `The word is used as "${g}" in this sentence.`,
];

const explanationTemplates: readonly ((term: string, gloss: string) => string)[] = [
  (t, g) => `${t} usually means "${g}".`,
  (t, g) => `Used like "${g}"; ${t} is common in speech.`,
  (t, g) => `"${g}" is the most frequent sense of ${t}.`,
];

const noteTemplates: readonly ((term: string, gloss: string) => string)[] = [
  (t) => `A common everyday word; ${t} works in both formal and casual speech.`,
  (t, g) => `Often paired with words about ${g}; ${t} is rarely used alone.`,
  (t) => `Learners sometimes confuse ${t} with similar-sounding words.`,
];

const mnemonicTemplates: readonly ((term: string, gloss: string) => string)[] = [
  (t, g) => `Picture a ${g} whenever you hear ${t}.`,
  (t, g) => `Say ${t} out loud while imagining "${g}".`,
  (t, g) => `Link the sound of ${t} to a ${g} you know.`,
];
