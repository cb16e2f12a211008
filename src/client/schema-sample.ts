import { FlashcardsError } from '../core/errors.ts';
import { hashString, pick, type Random, seededRandom } from '../core/random.ts';
import { compilePattern, generateFromPattern } from './regex-sample.ts';
import {
  formatValue,
  type Place,
  plausibleText,
  recordKey,
  type Subject,
  slugify,
  subjectOf,
  words,
} from './sample-text.ts';

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

interface Walk extends Subject {
  root: JsonSchema;
  rnd: Random;
  placeholder: boolean;
}

interface Where extends Place {
  refDepth: number;
}

/**
 * Generates a value that validates against `schema`, deterministically for `ctx.seed`.
 * Strings look plausible for their property name (a "sentence" contains the term, "tags" are
 * slugs, "pronunciation" looks romanised: sample-text.ts), so mock answers read like real ones;
 * a string with a `pattern` none of them matches is generated from it (regex-sample.ts).
 */
export function sampleFromSchema(schema: JsonSchema, ctx: SampleContext): unknown {
  const walk: Walk = {
    ...subjectOf(ctx.term?.trim() || 'word'),
    root: schema,
    rnd: seededRandom(hashString(ctx.seed)),
    placeholder: ctx.placeholder ?? false,
  };
  return sample(walk, schema, { key: '', parentKey: '', index: 0, refDepth: 0 });
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
      out[recordKey(i)] = sample(walk, extra, { ...where, parentKey: where.key, index: i });
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
  const formatted = schema.format === undefined ? undefined : formatValue(schema.format, walk, walk.rnd);
  let text = formatted ?? plausibleText(walk, walk.rnd, where);
  const room =
    schema.maxLength === undefined || Array.from(text).length + placeholderPrefix.length <= schema.maxLength;
  if (formatted === undefined && walk.placeholder && room) text = placeholderPrefix + text;
  text = fitLength(text, schema.minLength, schema.maxLength);
  if (schema.pattern !== undefined) text = fitPattern(walk, text, schema, where);
  return text;
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
    plausibleText(walk, walk.rnd, where),
  ];
  const found = candidates.find(fits);
  if (found !== undefined) return found;
  for (let attempt = 0; attempt < 16; attempt++) {
    const generated = generateFromPattern(schema.pattern ?? '', walk.rnd);
    if (generated !== undefined && fits(generated)) return generated;
  }
  return text;
}
