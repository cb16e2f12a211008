import { readFileSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { errorMessage, FlashcardsError } from '../core/errors.ts';
import { didYouMean, didYouMeanSuffix } from '../core/suggest.ts';
import { ankiFieldsProblem } from '../output/field-names.ts';
import { jsonSyntaxProblem } from './json-syntax.ts';
import { unknownKeyword } from './schema-keywords.ts';
import { cardSourceProblem, elementSchema, schemaAt } from './schema-path.ts';
import { responseValidator } from './schemas.ts';
import { compileTemplate } from './template.ts';

/** A prompt is written inline or kept in a text file beside the pipeline file. */
const promptText = z.union([z.string().min(1), z.strictObject({ file: z.string().min(1) })]);

const name = z
  .string()
  .regex(/^[A-Za-z][\w-]*$/, 'a name of letters, digits, "_" and "-", starting with a letter');

const stageSchema = z.strictObject({
  name,
  description: z.string().optional(),
  system: promptText.optional(),
  user: promptText,
  /** JSON Schema of the answer; sent as a strict `json_schema` response format. */
  schema: z.record(z.string(), z.unknown()),
});

const cardsSchema = z.strictObject({
  /** Where a stage's answer holds the cards: a list gives one card per element, an object one card. */
  from: z.string().min(1),
  /** Card field name -> template; the order is the note type's field order (the first is Anki's sort field). */
  fields: z.record(z.string(), z.string()).superRefine((fields, ctx) => {
    const problem = ankiFieldsProblem(Object.keys(fields));
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  tags: z.array(z.string()).default([]),
  /** Identity of a card across runs (the .apkg GUID is made from it); default: the term and the card's index. */
  key: z.string().optional(),
});

export const definitionSchema = z.strictObject({
  name,
  description: z.string().default(''),
  deck: z.string().min(1).optional(),
  noteType: z.string().min(1).optional(),
  stages: z.array(stageSchema).min(1),
  cards: cardsSchema,
});

export type PipelineDefinition = z.output<typeof definitionSchema>;

/** A definition with every prompt file read in: what the compiler and `pipelines show` work from. */
export interface LoadedDefinition extends PipelineDefinition {
  /** Where it came from: a file path, or "built-in". */
  source: string;
  prompts: Array<{ system: string | undefined; user: string }>;
  /** Each stage's answer validator, made from its schema while checking it (so only once). */
  validators: z.ZodType[];
}

/** Roots every template may read, besides earlier stages. */
export const ITEM_VARIABLES = [
  'term',
  'type',
  'position',
  'context',
  'row',
  'sourceLanguage',
  'targetLanguage',
] as const;

function definitionError(file: string, where: string, message: string, hint?: string): FlashcardsError {
  return new FlashcardsError('config', `pipeline ${file}: ${where ? `${where}: ` : ''}${message}`, {
    hint: hint ?? 'see `flashcards pipelines show vocabulary` for a complete example',
  });
}

/** The keys a place in a pipeline file may hold, for "did you mean". */
function keysAt(path: readonly PropertyKey[]): string[] {
  if (path.length === 0) return Object.keys(definitionSchema.shape);
  if (path[0] === 'stages' && path.length === 2) return Object.keys(stageSchema.shape);
  if (path[0] === 'cards' && path.length === 1) return Object.keys(cardsSchema.shape);
  return [];
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const guess = issue.keys[0] ? didYouMean(issue.keys[0], keysAt(issue.path)) : undefined;
    return `unknown key "${issue.keys.join('", "')}"${guess ? ` (did you mean "${guess}"?)` : ''}`;
  }
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined'))
    return `is missing (expected ${issue.expected})`;
  if (issue.code === 'invalid_union') return 'must be text, or {file: <path of a text file>}';
  return issue.message;
}

/** `stages.1.user` from a zod path, as people read YAML. */
function pathText(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('');
}

/**
 * Reads and checks a pipeline file (YAML or JSON): structure, prompt files, JSON Schemas and
 * the variables every template uses. Every problem names the file and the place in it.
 */
export function loadDefinition(
  file: string,
  shownAs = file,
  options: { compiled?: boolean } = {},
): LoadedDefinition {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw definitionError(
      shownAs,
      '',
      `cannot read it (${errorMessage(e)})`,
      'check the pipeline path (--pipeline, FLASHCARDS_PIPELINE or `pipeline` in the config file, which is read relative to that file)',
    );
  }
  return parseDefinition(
    text,
    shownAs,
    dirname(resolve(file)),
    options.compiled ? 'compiled' : formatOf(file),
  );
}

/** How a pipeline file is read: JSON by its `.json` name, YAML otherwise; `compiled` is a built-in from dist/. */
export type DocumentFormat = 'compiled' | 'json' | 'yaml';

function formatOf(file: string): DocumentFormat {
  return /\.json$/i.test(file) ? 'json' : 'yaml';
}

/**
 * The document as plain data. A built-in pipeline compiled into dist/ (JSON written by the build
 * from its YAML) is read natively: on a cold start the YAML parser needs ~20 ms for the same
 * file. A `.json` file is held to JSON's grammar, so a mistake is reported as JSON (the YAML
 * parser would accept some, such as a trailing comma, and word others as YAML). Anything else goes
 * through the YAML parser, which says where a mistake is and refuses a key given twice.
 */
function readDocument(text: string, file: string, format: DocumentFormat): unknown {
  if (format === 'compiled') {
    try {
      return JSON.parse(text);
    } catch {
      // Located by the YAML parser below (JSON is YAML).
    }
  }
  if (format === 'json') return readJson(text, file);
  // Loaded here, not at the top: a run with a built-in pipeline (compiled JSON) never needs the
  // YAML parser, whose loading costs ~15-20 ms of every start.
  const { parseDocument } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  const doc = parseDocument(text);
  const yamlError = doc.errors[0];
  if (yamlError) {
    const at = yamlError.linePos?.[0];
    // The message ends with " at line L, column C:" and a code excerpt; the place is said first instead.
    const firstLine = (yamlError.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw definitionError(file, at ? `line ${at.line}, column ${at.col}` : '', firstLine);
  }
  return doc.toJS();
}

/** A `.json` pipeline file: its first syntax mistake (or a key given twice) with line and column. */
function readJson(text: string, file: string): unknown {
  // Editors on Windows may start a UTF-8 file with a byte order mark, which JSON.parse refuses.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const problem = jsonSyntaxProblem(body);
  if (problem) {
    throw definitionError(
      file,
      `line ${problem.line}, column ${problem.column}`,
      `JSON syntax error: ${problem.message}`,
      'a .json pipeline file must be strict JSON; write it as YAML (.yaml) for comments and unquoted text',
    );
  }
  return JSON.parse(body);
}

export function parseDefinition(
  text: string,
  file: string,
  baseDir: string,
  format: DocumentFormat = formatOf(file),
): LoadedDefinition {
  const raw = readDocument(text, file, format);
  // Parsed once a run: not worth zod compiling a fast path for (see loadSettings).
  const parsed = definitionSchema.safeParse(raw, { jitless: true });
  if (!parsed.success) {
    // A misspelt key also shows up as a missing one: name the misspelling, it says more.
    const issues = parsed.error.issues;
    const issue = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0]!;
    throw definitionError(file, pathText(issue.path), issueMessage(issue));
  }
  const def = parsed.data;
  const prompts = def.stages.map((stage, i) => ({
    system:
      stage.system === undefined ? undefined : readPrompt(stage.system, file, baseDir, `stages[${i}].system`),
    user: readPrompt(stage.user, file, baseDir, `stages[${i}].user`),
  }));
  const loaded: LoadedDefinition = { ...def, source: file, prompts, validators: [] };
  checkNames(loaded);
  loaded.validators = validatorsOf(loaded);
  checkVariables(loaded);
  return loaded;
}

/** True when `path` is below `dir` (both absolute); `dir` itself is not a file inside it. */
function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/**
 * A prompt file is read only from the pipeline file's folder or below it. Pipeline files are
 * shared like data, so one must not be able to pick up `../.env` or `~/.ssh/id_rsa` as a prompt,
 * send it to the provider and print it in `pipelines show`. Symbolic links are followed first,
 * so a link inside the folder that points out of it is refused too.
 */
function readPrompt(p: string | { file: string }, file: string, baseDir: string, where: string): string {
  if (typeof p === 'string') return p;
  const place = `${where}.file`;
  const outside = (how: string): FlashcardsError =>
    definitionError(
      file,
      place,
      `${p.file} ${how} the pipeline file's folder`,
      "keep prompt files in the pipeline file's folder or a subfolder of it, or write the prompt inline",
    );
  const cannotRead = (e: unknown): FlashcardsError =>
    definitionError(file, place, `cannot read ${p.file} (${errorMessage(e)})`);
  const dir = resolve(baseDir);
  const path = resolve(dir, p.file);
  // Checked before anything is touched, so a file outside is not even probed for existence.
  if (!isInside(dir, path)) throw outside('is outside');
  let real: string;
  let realDir: string;
  try {
    real = realpathSync(path);
    realDir = realpathSync(dir);
  } catch (e) {
    throw cannotRead(e);
  }
  if (!isInside(realDir, real)) throw outside('leads (through a symbolic link) outside');
  try {
    // A FIFO or a device would block or never end: only a plain file is a prompt.
    if (statSync(real).isFile()) return readFileSync(real, 'utf8');
  } catch (e) {
    throw cannotRead(e);
  }
  throw definitionError(file, place, `${p.file} is not a file`);
}

function checkNames(def: LoadedDefinition): void {
  const seen = new Set<string>();
  def.stages.forEach((stage, i) => {
    if (seen.has(stage.name))
      throw definitionError(def.source, `stages[${i}].name`, `"${stage.name}" is used twice`);
    if ((ITEM_VARIABLES as readonly string[]).includes(stage.name) || ['card', 'index'].includes(stage.name))
      throw definitionError(
        def.source,
        `stages[${i}].name`,
        `"${stage.name}" is reserved for a template variable`,
      );
    seen.add(stage.name);
  });
}

/** Checks every stage's schema by building its validator, which the compiled stage then uses. */
function validatorsOf(def: LoadedDefinition): z.ZodType[] {
  return def.stages.map((stage, i) => {
    // First, so that a misspelt `typ:` at the top is named as the typo it is.
    const unknown = unknownKeyword(stage.schema, `stages[${i}].schema`);
    if (unknown) {
      throw definitionError(
        def.source,
        unknown.at,
        `unknown JSON Schema keyword "${unknown.keyword}"${unknown.guess ? ` (did you mean "${unknown.guess}"?)` : ''}`,
        "a schema holds JSON Schema keywords (type, properties, items, required, enum, description, ...); the names of an answer's fields go under properties",
      );
    }
    if (stage.schema['type'] !== 'object')
      throw definitionError(
        def.source,
        `stages[${i}].schema.type`,
        'must be "object" (providers want an object at the top)',
      );
    try {
      return responseValidator(stage.schema);
    } catch (e) {
      throw definitionError(
        def.source,
        `stages[${i}].schema`,
        `not a usable JSON Schema (${errorMessage(e)})`,
      );
    }
  });
}

/**
 * Every `{{variable}}` must name something that exists where the template is used: an item
 * variable, an earlier stage, or (in the cards section) the card and its index; and a path into
 * a stage's answer must exist in that stage's schema, so a typo fails here, not as empty cards.
 */
function checkVariables(def: LoadedDefinition): void {
  const stageNames = def.stages.map((s) => s.name);
  const schemas = new Map<string, unknown>(def.stages.map((s) => [s.name, s.schema]));
  const fromPath = def.cards.from.split('.');
  const fromRoot = fromPath[0] ?? '';
  if (!stageNames.includes(fromRoot)) {
    throw definitionError(
      def.source,
      'cards.from',
      `"${def.cards.from}" does not start with a stage name${didYouMeanSuffix(fromRoot, stageNames)}`,
    );
  }
  const from = schemaAt(schemas.get(fromRoot), fromPath.slice(1));
  if (!from.found) throw missingPath(def.source, 'cards.from', def.cards.from, fromRoot, from);
  // A list of strings (or a string) gives cards whose {{card.x}} are all empty: no card at all.
  const notCards = cardSourceProblem(from.schema);
  if (notCards) {
    throw definitionError(
      def.source,
      'cards.from',
      `"${def.cards.from}" is ${notCards} in the ${fromRoot} stage's schema; cards come from a list of objects (a card each) or an object (one card)`,
    );
  }
  schemas.set('card', elementSchema(from.schema));

  const check = (template: string, where: string, roots: readonly string[]): void => {
    for (const variable of compileTemplate(template).variables) {
      const [root = variable, ...rest] = variable.split('.');
      if (!roots.includes(root)) {
        throw definitionError(
          def.source,
          where,
          `{{${variable}}} is not a known variable${didYouMeanSuffix(root, roots)}`,
          `templates can use ${roots.join(', ')}`,
        );
      }
      if (!schemas.has(root) || rest.length === 0) continue;
      const found = schemaAt(schemas.get(root), rest);
      if (!found.found) throw missingPath(def.source, where, `{{${variable}}}`, root, found);
    }
  };
  def.prompts.forEach((prompt, i) => {
    const roots = [...ITEM_VARIABLES, ...stageNames.slice(0, i)];
    if (prompt.system !== undefined) check(prompt.system, `stages[${i}].system`, roots);
    check(prompt.user, `stages[${i}].user`, roots);
  });
  const cardRoots = [...ITEM_VARIABLES, ...stageNames, 'card', 'index'];
  for (const [field, template] of Object.entries(def.cards.fields))
    check(template, `cards.fields.${field}`, cardRoots);
  for (const [i, tag] of def.cards.tags.entries()) check(tag, `cards.tags[${i}]`, cardRoots);
  if (def.cards.key !== undefined) check(def.cards.key, 'cards.key', cardRoots);
}

function missingPath(
  file: string,
  where: string,
  what: string,
  root: string,
  miss: { at: string; known: string[] },
): FlashcardsError {
  const last = miss.at.split('.').pop() ?? miss.at;
  const owner = root === 'card' ? 'a card' : `the ${root} stage's answer`;
  return definitionError(
    file,
    where,
    `${what}: ${owner} has no "${miss.at}" in its schema${didYouMeanSuffix(last, miss.known)}`,
    `it has ${miss.known.join(', ')}`,
  );
}
