import { stringify } from 'yaml';
import { ExitCode } from '../core/errors.ts';
import type { LoadedDefinition } from '../pipeline/definition.ts';
import { builtinPipelineNames, loadPipelineDefinition } from '../pipeline/registry.ts';
import type { CommandContext } from './context.ts';

function summary(def: LoadedDefinition) {
  return {
    name: def.name,
    description: def.description,
    source: def.source,
    stages: def.stages.map((s) => s.name),
    fields: Object.keys(def.cards.fields),
    deck: def.deck ?? null,
    noteType: def.noteType ?? null,
  };
}

/** Widths of `pipelines list`'s columns but the description, which takes the rest of the terminal. */
const FIXED_WIDTHS = [12, 18, 18] as const;

/**
 * `pipelines list`: the built-in pipelines, on stdout (`--json`: `{pipelines: [...]}`). In a
 * terminal the descriptions wrap to its width; piped, each pipeline stays on one line.
 */
export async function pipelinesList(ctx: CommandContext, opts: { json: boolean }): Promise<number> {
  const rows = builtinPipelineNames().map((name) => summary(loadPipelineDefinition(name, ctx.cwd)));
  if (opts.json) {
    ctx.io.out(`${JSON.stringify({ pipelines: rows })}\n`);
    return ExitCode.ok;
  }
  const { default: Table } = await import('cli-table3');
  const width = ctx.io.outColumns;
  // Each column takes its width plus a border; the description gets what is left, 30 at least.
  const description =
    width === undefined ? undefined : Math.max(30, width - 1 - FIXED_WIDTHS.reduce((a, w) => a + w + 1, 0));
  const table = new Table({
    head: ['name', 'stages', 'card fields', 'description'],
    style: { head: [], border: [] },
    ...(description === undefined ? {} : { wordWrap: true, colWidths: [...FIXED_WIDTHS, description] }),
  });
  for (const row of rows) {
    table.push([row.name, row.stages.join(' → '), row.fields.join(', '), row.description]);
  }
  ctx.io.out(`${table.toString()}\n`);
  ctx.io.err('Use one with --pipeline <name>; copy one with `flashcards pipelines show <name> > my.yaml`.\n');
  return ExitCode.ok;
}

/**
 * `pipelines show <name|file>`: the whole definition as one self-contained YAML file, prompts
 * written inline, ready to be saved, edited and run with --pipeline.
 */
export async function pipelinesShow(
  ctx: CommandContext,
  opts: { ref: string; json: boolean },
): Promise<number> {
  const def = loadPipelineDefinition(opts.ref, ctx.cwd);
  const standalone = {
    name: def.name,
    description: def.description,
    ...(def.deck ? { deck: def.deck } : {}),
    ...(def.noteType ? { noteType: def.noteType } : {}),
    stages: def.stages.map((stage, i) => ({
      name: stage.name,
      ...(stage.description ? { description: stage.description } : {}),
      ...(def.prompts[i]?.system !== undefined ? { system: def.prompts[i]?.system } : {}),
      user: def.prompts[i]?.user,
      schema: stage.schema,
    })),
    cards: def.cards,
  };
  if (opts.json) ctx.io.out(`${JSON.stringify(standalone, null, 2)}\n`);
  else ctx.io.out(`# pipeline ${def.name} (${def.source})\n${stringify(standalone, { lineWidth: 0 })}`);
  return ExitCode.ok;
}
