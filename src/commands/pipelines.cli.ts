import type { Command } from 'commander';
import { jsonCommand, type Run } from './register.ts';

const handlers = () => import('./pipelines.ts');

/** `flashcards pipelines list|show`. */
export function registerPipelines(program: Command, run: Run): void {
  const pipelines = program
    .command('pipelines')
    .description('List the built-in pipelines and show one as an editable pipeline file')
    .addHelpText(
      'after',
      `
Examples:
  $ flashcards pipelines list
  $ flashcards pipelines show vocabulary > my-pipeline.yaml
  $ flashcards process words.csv --pipeline my-pipeline.yaml`,
    );
  jsonCommand(pipelines, run, {
    usage: 'list',
    description: 'Built-in pipelines with their stages and card fields',
    handler: handlers,
    call: (m, ctx, { json }) => m.pipelinesList(ctx, { json }),
  });
  jsonCommand(pipelines, run, {
    usage: 'show <name|file>',
    description: 'One pipeline (built-in name or file) as a self-contained YAML file, prompts inline',
    jsonHelp: 'as JSON instead of YAML',
    handler: handlers,
    call: (m, ctx, { json, arg }) => m.pipelinesShow(ctx, { ref: arg, json }),
  });
}
