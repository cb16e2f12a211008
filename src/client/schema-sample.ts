import { FlashcardsError } from '../core/errors.ts';
import { type Random, seededRandom } from '../core/random.ts';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type JsonSchemaType = 'object' | 'array' | 'string' | 'number' | 'integer' | 'boolean' | 'null';

/** The part of JSON Schema that strict structured outputs (and zod's toJSONSchema) produce. */
export interface JsonSchema {
  type?: JsonSchemaType | readonly JsonSchemaType[];
  properties?: { [name: string]: JsonSchema };
  required?: readonly string[];
  additionalProperties?: boolean | JsonSchema;
  items?: boolean | JsonSchema;
  prefixItems?: readonly JsonSchema[];
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  enum?: readonly JsonValue[];
  const?: JsonValue;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  /** A number since draft 6; a boolean modifier of minimum/maximum in draft 4. */
  exclusiveMinimum?: number | boolean;
  exclusiveMaximum?: number | boolean;
  multipleOf?: number;
  anyOf?: readonly JsonSchema[];
  oneOf?: readonly JsonSchema[];
  allOf?: readonly JsonSchema[];
  /** OpenAPI 3.0 spelling of `type: [..., 'null']`. */
  nullable?: boolean;
  $ref?: string;
  $defs?: { [name: string]: JsonSchema };
  definitions?: { [name: string]: JsonSchema };
  $schema?: string;
  title?: string;
  description?: string;
}

export interface SampleContext {
  /** Drives every choice: the same seed and schema always give the same value. */
  seed: string;
  /** The word the answer is about; strings that should mention it do. */
  term?: string;
  /** Prefix generated strings with "[mock] " so nobody mistakes them for real content. */
  placeholder?: boolean;
}

const placeholderPrefix = '[mock] ';
/** Past this many nested $refs a recursive schema is cut short with empty arrays and nulls. */
const maxRefDepth = 4;

interface Walk {
  root: JsonSchema;
  rnd: Random;
  term: string;
  placeholder: boolean;
  /** Chosen once per term, so "meaning", "translation" and "gloss" of one card agree. */
  gloss: string;
  romanization: string;
  termHash: number;
}

interface Where {
  key: string;
  parentKey: string;
  index: number;
  refDepth: number;
}

/**
 * Generates a value that validates against `schema`, deterministically for `ctx.seed`.
 * Strings look plausible for their property name (a "sentence" contains the term, "tags" are
 * slugs, "pronunciation" looks romanised), so mock answers read like real ones.
 */
export function sampleFromSchema(schema: JsonSchema, ctx: SampleContext): unknown {
  const term = ctx.term?.trim() || 'word';
  const termHash = hashString(term);
  const walk: Walk = {
    root: schema,
    rnd: seededRandom(hashString(ctx.seed)),
    term,
    placeholder: ctx.placeholder ?? false,
    gloss: glosses[termHash % glosses.length] ?? 'thing',
    romanization: romanize(term),
    termHash,
  };
  return sample(walk, schema, { key: '', parentKey: '', index: 0, refDepth: 0 });
}

/** FNV-1a over UTF-16 code units: tiny, stable, good enough to spread seeds. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function sample(walk: Walk, input: JsonSchema | boolean, where: Where): JsonValue {
  if (input === false) {
    throw new FlashcardsError(
      'internal',
      `schema at "${where.key || '(root)'}" is false: no value can match it`,
    );
  }
  let schema: JsonSchema = input === true ? {} : input;
  let refDepth = where.refDepth;
  // Follow $refs (and merge allOf) until the schema says what it is.
  for (let hops = 0; schema.$ref !== undefined || schema.allOf !== undefined; hops++) {
    if (hops > 32) throw new FlashcardsError('internal', `schema $ref chain at "${where.key}" does not end`);
    if (schema.$ref !== undefined) {
      const { $ref, ...siblings } = schema;
      schema = { ...resolveRef(walk.root, $ref), ...siblings };
      refDepth++;
    } else {
      schema = mergeAllOf(schema);
    }
  }
  if (refDepth > maxRefDepth * 8) {
    throw new FlashcardsError(
      'internal',
      `schema at "${where.key}" recurses without end (a required recursive field?)`,
    );
  }
  const here: Where = { ...where, refDepth };
  const deep = refDepth > maxRefDepth;

  if (schema.const !== undefined) return schema.const;
  if (schema.enum !== undefined && schema.enum.length > 0) return pick(walk.rnd, schema.enum);

  const branches = schema.anyOf ?? schema.oneOf;
  if (branches !== undefined && branches.length > 0) {
    const { anyOf: _a, oneOf: _o, ...siblings } = schema;
    const branch = chooseBranch(walk, branches, deep);
    return sample(walk, { ...siblings, ...branch }, here);
  }

  switch (chooseType(walk, schema, deep)) {
    case 'null':
      return null;
    case 'boolean':
      return walk.rnd() < 0.5;
    case 'integer':
      return sampleNumber(walk, schema, here, true);
    case 'number':
      return sampleNumber(walk, schema, here, false);
    case 'array':
      return sampleArray(walk, schema, here, deep);
    case 'object':
      return sampleObject(walk, schema, here, deep);
    default:
      return sampleString(walk, schema, here);
  }
}

function resolveRef(root: JsonSchema, ref: string): JsonSchema {
  if (!ref.startsWith('#')) {
    throw new FlashcardsError(
      'internal',
      `schema $ref "${ref}" points outside the schema; only "#..." is supported`,
    );
  }
  let node: unknown = root;
  const pointer = ref.slice(1);
  for (const raw of pointer === '' ? [] : pointer.replace(/^\//, '').split('/')) {
    const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[part] : undefined;
  }
  if (typeof node !== 'object' || node === null) {
    throw new FlashcardsError(
      'internal',
      `schema $ref "${ref}" does not resolve to a schema in $defs/definitions`,
    );
  }
  return node as JsonSchema;
}

function mergeAllOf(schema: JsonSchema): JsonSchema {
  const { allOf = [], ...rest } = schema;
  let merged: JsonSchema = rest;
  for (const part of allOf) {
    merged = {
      ...merged,
      ...part,
      properties: { ...merged.properties, ...part.properties },
      required: [...(merged.required ?? []), ...(part.required ?? [])],
    };
  }
  return merged;
}

function typesOf(schema: JsonSchema): readonly JsonSchemaType[] {
  if (schema.type === undefined) return [];
  return typeof schema.type === 'string' ? [schema.type] : schema.type;
}

function chooseBranch(walk: Walk, branches: readonly JsonSchema[], deep: boolean): JsonSchema {
  const isNull = (b: JsonSchema): boolean => typesOf(b).length === 1 && typesOf(b)[0] === 'null';
  if (deep) {
    // Stop the recursion: a null or a branch without further references ends the value.
    const end = branches.find(isNull) ?? branches.find((b) => b.$ref === undefined);
    if (end) return end;
  }
  const values = branches.filter((b) => !isNull(b));
  return pick(walk.rnd, values.length > 0 ? values : branches);
}

function chooseType(walk: Walk, schema: JsonSchema, deep: boolean): JsonSchemaType {
  const types = typesOf(schema);
  const nullable = types.includes('null') || schema.nullable === true;
  if (deep && nullable) return 'null';
  const concrete = types.filter((t) => t !== 'null');
  if (concrete.length > 0)
    return concrete.length === 1 ? (concrete[0] as JsonSchemaType) : pick(walk.rnd, concrete);
  if (types.length > 0) return 'null';
  if (schema.properties !== undefined || schema.additionalProperties !== undefined) return 'object';
  if (schema.items !== undefined || schema.prefixItems !== undefined) return 'array';
  if (schema.minimum !== undefined || schema.maximum !== undefined) return 'number';
  return 'string';
}

function sampleObject(walk: Walk, schema: JsonSchema, where: Where, deep: boolean): JsonValue {
  const out: { [key: string]: JsonValue } = {};
  const required = new Set(schema.required ?? []);
  const properties = schema.properties ?? {};
  for (const [name, child] of Object.entries(properties)) {
    if (deep && !required.has(name)) continue;
    // The index of the enclosing array item flows down, so examples[1].sentence differs from examples[0]'s.
    out[name] = sample(walk, child, {
      key: name,
      parentKey: where.key,
      index: where.index,
      refDepth: where.refDepth,
    });
  }
  for (const name of required) {
    // A required name with no schema of its own takes whatever additionalProperties allows.
    if (name in out) continue;
    const extra = schema.additionalProperties;
    out[name] = sample(walk, typeof extra === 'object' ? extra : {}, {
      ...where,
      key: name,
      parentKey: where.key,
    });
  }
  const extra = schema.additionalProperties;
  if (Object.keys(properties).length === 0 && typeof extra === 'object' && !deep) {
    // A record: a key or two is enough to look real.
    const count = 1 + Math.floor(walk.rnd() * 2);
    for (let i = 0; i < count; i++) {
      out[`${slugs[i] ?? 'key'}`] = sample(walk, extra, { ...where, parentKey: where.key, index: i });
    }
  }
  return out;
}

function sampleArray(walk: Walk, schema: JsonSchema, where: Where, deep: boolean): JsonValue {
  const prefix = schema.prefixItems ?? [];
  const items = schema.items;
  const min = Math.max(schema.minItems ?? (deep ? 0 : 1), 0);
  const openEnded = items !== false;
  let max = schema.maxItems ?? (openEnded ? Math.max(min, 3) : prefix.length);
  if (!openEnded) max = Math.min(max, prefix.length);
  const low = Math.min(min, max);
  const count = deep ? low : low + Math.floor(walk.rnd() * (max - low + 1));
  const out: JsonValue[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const itemSchema = prefix[i] ?? (typeof items === 'object' ? items : {});
    const childWhere = { key: where.key, parentKey: where.parentKey, index: i, refDepth: where.refDepth };
    let value = sample(walk, itemSchema, childWhere);
    if (schema.uniqueItems) {
      for (let attempt = 0; seen.has(JSON.stringify(value)) && attempt < 8; attempt++) {
        value = sample(walk, itemSchema, { ...childWhere, index: i + count * (attempt + 1) });
      }
      seen.add(JSON.stringify(value));
    }
    out.push(value);
  }
  return out;
}

function sampleNumber(walk: Walk, schema: JsonSchema, where: Where, integer: boolean): number {
  const exMin = exclusiveBound(schema.exclusiveMinimum, schema.minimum);
  const exMax = exclusiveBound(schema.exclusiveMaximum, schema.maximum);
  const step = integer ? 1 : 0.01;
  let lo = Math.max(schema.minimum ?? -Infinity, exMin === undefined ? -Infinity : exMin + step);
  let hi = Math.min(schema.maximum ?? Infinity, exMax === undefined ? Infinity : exMax - step);
  if (integer) {
    lo = Math.ceil(lo);
    hi = Math.floor(hi);
  }
  if (lo > hi) {
    // A range narrower than the step (0 < x < 0.01): its midpoint is the only honest answer.
    const mid = ((exMin ?? lo) + (exMax ?? hi)) / 2;
    return integer ? Math.round(mid) : mid;
  }
  // Pick inside a comfortable window: z.int() sends ±2^53 bounds nobody wants to see.
  const scale = /level|difficulty|rating|rank|stars|priority|frequency/.test(words(where.key)) ? 5 : 100;
  let wLo = lo;
  let wHi = hi;
  if (hi - lo > scale) {
    wLo = Math.min(Math.max(1, lo), hi - scale + 1);
    wHi = wLo + scale - 1;
  }
  const m = schema.multipleOf;
  if (m !== undefined && m > 0) {
    const kLo = Math.ceil(wLo / m);
    const kHi = Math.floor(wHi / m);
    const k = kLo <= kHi ? kLo + Math.floor(walk.rnd() * (kHi - kLo + 1)) : Math.ceil(lo / m);
    return Number((k * m).toPrecision(12));
  }
  if (integer) return wLo + Math.floor(walk.rnd() * (wHi - wLo + 1));
  const value = wLo + walk.rnd() * (wHi - wLo);
  const rounded = Math.round(value * 100) / 100;
  return rounded >= lo && rounded <= hi ? rounded : value;
}

function exclusiveBound(
  bound: number | boolean | undefined,
  inclusive: number | undefined,
): number | undefined {
  if (typeof bound === 'number') return bound;
  return bound === true ? inclusive : undefined;
}

// ---- strings -------------------------------------------------------------------------------

function sampleString(walk: Walk, schema: JsonSchema, where: Where): string {
  const formatted = schema.format === undefined ? undefined : formatValue(walk, schema.format);
  let text = formatted ?? plausibleText(walk, where);
  const room =
    schema.maxLength === undefined || Array.from(text).length + placeholderPrefix.length <= schema.maxLength;
  if (formatted === undefined && walk.placeholder && room) text = placeholderPrefix + text;
  text = fitLength(text, schema.minLength, schema.maxLength);
  if (schema.pattern !== undefined) text = fitPattern(walk, text, schema, where);
  return text;
}

/** Splits `usageNotes`, `part_of_speech`, `example-sentence` into lower-case words. */
function words(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[_\-.]+/g, ' ')
    .toLowerCase();
}

function plausibleText(walk: Walk, where: Where): string {
  const { term, gloss, romanization, rnd } = walk;
  const key = words(where.key);
  const parent = words(where.parentKey);
  const i = where.index;
  const variant = Math.floor(rnd() * 1000) + i;
  if (/\b(tags?|labels?|keywords?|categor(y|ies)|topics?)\b/.test(key)) {
    // Walk the slug list from a per-term start so the items of one array differ.
    return pickFrom(slugs, walk.termHash + i);
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
    return pickFrom(glosses, walk.termHash + i);
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

function formatValue(walk: Walk, format: string): string | undefined {
  const hex = (n: number): string =>
    Array.from({ length: n }, () => '0123456789abcdef'[Math.floor(walk.rnd() * 16)]).join('');
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
      return `mock${Math.floor(walk.rnd() * 100)}@example.com`;
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
      return `https://example.com/${encodeURIComponent(walk.term)}`;
    default:
      return undefined;
  }
}

function fitLength(text: string, min: number | undefined, max: number | undefined): string {
  let chars = Array.from(text);
  const filler = Array.from(' lorem ipsum dolor sit amet');
  if (min !== undefined && chars.length < min) {
    while (chars.length < min) chars.push(...filler);
    chars = chars.slice(0, min);
  }
  if (max !== undefined && chars.length > max) chars = chars.slice(0, Math.max(max, 0));
  // Keep the padding from ending in a space, which reads like a bug.
  if (chars.length > 0 && chars[chars.length - 1] === ' ') chars[chars.length - 1] = '.';
  return chars.join('');
}

function compilePattern(pattern: string): RegExp | undefined {
  for (const flags of ['u', '']) {
    try {
      return new RegExp(pattern, flags);
    } catch {
      // try the next flags
    }
  }
  return undefined;
}

function fitPattern(walk: Walk, text: string, schema: JsonSchema, where: Where): string {
  const re = compilePattern(schema.pattern ?? '');
  if (re === undefined) return text;
  const fits = (s: string): boolean =>
    re.test(s) &&
    (schema.minLength === undefined || Array.from(s).length >= schema.minLength) &&
    (schema.maxLength === undefined || Array.from(s).length <= schema.maxLength);
  const plain = walk.placeholder ? text.replace(placeholderPrefix, '') : text;
  const candidates = [
    text,
    plain,
    walk.term,
    slugify(walk.term),
    walk.romanization,
    plausibleText(walk, where),
  ];
  const found = candidates.find(fits);
  if (found !== undefined) return found;
  for (let attempt = 0; attempt < 16; attempt++) {
    const generated = generateFromPattern(schema.pattern ?? '', walk.rnd);
    if (generated !== undefined && fits(generated)) return generated;
  }
  return text;
}

// ---- a small generator for the regular expressions schemas use ------------------------------

type Node =
  | { kind: 'seq'; items: Node[] }
  | { kind: 'alt'; options: Node[] }
  | { kind: 'chars'; pick: (rnd: Random) => string }
  | { kind: 'repeat'; node: Node; min: number; max: number };

/** Produces a string matching `pattern` (classes, groups, alternation, quantifiers), or undefined. */
export function generateFromPattern(pattern: string, rnd: Random): string | undefined {
  try {
    const parser = { src: pattern, pos: 0 };
    const node = parseAlt(parser);
    return render(node, rnd);
  } catch {
    return undefined;
  }
}

interface Parser {
  src: string;
  pos: number;
}

function parseAlt(p: Parser): Node {
  const options: Node[] = [parseSeq(p)];
  while (p.src[p.pos] === '|') {
    p.pos++;
    options.push(parseSeq(p));
  }
  return options.length === 1 ? (options[0] as Node) : { kind: 'alt', options };
}

function parseSeq(p: Parser): Node {
  const items: Node[] = [];
  while (p.pos < p.src.length && p.src[p.pos] !== '|' && p.src[p.pos] !== ')') {
    const atom = parseAtom(p);
    items.push(parseQuantifier(p, atom));
  }
  return { kind: 'seq', items };
}

const literal = (c: string): Node => ({ kind: 'chars', pick: () => c });
const empty: Node = { kind: 'seq', items: [] };

function parseAtom(p: Parser): Node {
  const c = p.src[p.pos++] ?? '';
  switch (c) {
    case '^':
    case '$':
      return empty;
    case '.':
      return literal('a');
    case '(': {
      if (p.src.startsWith('?:', p.pos)) p.pos += 2;
      else if (/^\?<[A-Za-z]/.test(p.src.slice(p.pos, p.pos + 3))) p.pos = p.src.indexOf('>', p.pos) + 1;
      else if (p.src[p.pos] === '?') throw new Error('lookaround is not supported');
      const inner = parseAlt(p);
      if (p.src[p.pos++] !== ')') throw new Error('unclosed group');
      return inner;
    }
    case '[':
      return parseClass(p);
    case '\\':
      return charsNode(parseEscape(p));
    default:
      return literal(c);
  }
}

/** Escapes as a list of candidate characters (classes) or one literal. */
function parseEscape(p: Parser): string[] {
  const c = p.src[p.pos++] ?? '';
  switch (c) {
    case 'd':
      return [...'0123456789'];
    case 'w':
      return [...'abcdefghijklmnopqrstuvwxyz'];
    case 's':
      return [' '];
    case 'D':
    case 'S':
    case 'W':
      return c === 'W' ? ['-'] : ['a'];
    case 'b':
    case 'B':
      return [''];
    case 'n':
      return ['\n'];
    case 't':
      return ['\t'];
    case 'p':
    case 'P': {
      const end = p.src.indexOf('}', p.pos);
      p.pos = end + 1;
      return ['a'];
    }
    case 'u': {
      if (p.src[p.pos] === '{') {
        const end = p.src.indexOf('}', p.pos);
        const code = Number.parseInt(p.src.slice(p.pos + 1, end), 16);
        p.pos = end + 1;
        return [String.fromCodePoint(code)];
      }
      const code = Number.parseInt(p.src.slice(p.pos, p.pos + 4), 16);
      p.pos += 4;
      return [String.fromCharCode(code)];
    }
    case 'x': {
      const code = Number.parseInt(p.src.slice(p.pos, p.pos + 2), 16);
      p.pos += 2;
      return [String.fromCharCode(code)];
    }
    default:
      return [c];
  }
}

function parseClass(p: Parser): Node {
  const negated = p.src[p.pos] === '^';
  if (negated) p.pos++;
  const members: string[] = [];
  let first = true;
  while (p.pos < p.src.length && (p.src[p.pos] !== ']' || first)) {
    first = false;
    let from: string[];
    if (p.src[p.pos] === '\\') {
      p.pos++;
      from = parseEscape(p);
    } else {
      from = [p.src[p.pos++] ?? ''];
    }
    if (from.length === 1 && p.src[p.pos] === '-' && p.src[p.pos + 1] !== ']' && p.pos + 1 < p.src.length) {
      p.pos++;
      let to: string[];
      if (p.src[p.pos] === '\\') {
        p.pos++;
        to = parseEscape(p);
      } else {
        to = [p.src[p.pos++] ?? ''];
      }
      const a = (from[0] ?? '').codePointAt(0) ?? 0;
      const b = (to[0] ?? '').codePointAt(0) ?? a;
      for (let code = a; code <= b && code - a < 256; code++) members.push(String.fromCodePoint(code));
    } else {
      members.push(...from);
    }
  }
  if (p.src[p.pos++] !== ']') throw new Error('unclosed class');
  if (negated) {
    const excluded = new Set(members);
    const allowed = [...'abcxyz019 _-'].filter((ch) => !excluded.has(ch));
    return charsNode(allowed.length > 0 ? allowed : ['~']);
  }
  return charsNode(members.length > 0 ? members : ['a']);
}

function charsNode(options: string[]): Node {
  return options.length === 1
    ? literal(options[0] ?? '')
    : { kind: 'chars', pick: (rnd) => pick(rnd, options) };
}

function parseQuantifier(p: Parser, node: Node): Node {
  const c = p.src[p.pos];
  let min: number;
  let max: number;
  if (c === '*' || c === '+' || c === '?') {
    p.pos++;
    min = c === '+' ? 1 : 0;
    max = c === '?' ? 1 : min + 3;
  } else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(p.src.slice(p.pos));
    if (!m) return node;
    p.pos += m[0].length;
    min = Number(m[1]);
    max = m[2] === undefined ? min : m[3] ? Number(m[3]) : min + 3;
  } else {
    return node;
  }
  if (p.src[p.pos] === '?') p.pos++;
  return { kind: 'repeat', node, min, max: Math.min(max, min + 3) };
}

function render(node: Node, rnd: Random): string {
  switch (node.kind) {
    case 'seq':
      return node.items.map((n) => render(n, rnd)).join('');
    case 'alt':
      return render(pick(rnd, node.options), rnd);
    case 'chars':
      return node.pick(rnd);
    case 'repeat': {
      const n = node.min + Math.floor(rnd() * (node.max - node.min + 1));
      let out = '';
      for (let i = 0; i < n; i++) out += render(node.node, rnd);
      return out;
    }
  }
}

// ---- vocabulary of plausible text -----------------------------------------------------------

function pick<T>(rnd: Random, values: readonly T[]): T {
  return values[Math.min(Math.floor(rnd() * values.length), values.length - 1)] as T;
}

function pickFrom<T>(values: readonly T[], n: number): T {
  return values[n % values.length] as T;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function slugify(text: string): string {
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
