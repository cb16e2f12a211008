import type { Command } from 'commander';
import { addSettingOptions, jsonCommand, type Run, settingFlags } from './register.ts';

/** `flashcards doctor`. */
export function registerDoctor(program: Command, run: Run): void {
  addSettingOptions(
    jsonCommand(program, run, {
      usage: 'doctor',
      description: 'Check Node, data directory, databases, config, API key, provider and the shared store',
      handler: () => import('./doctor.ts'),
      call: (m, ctx, { json, cmd }) => m.doctor(ctx, { json, flags: settingFlags(cmd) }),
    }),
    'provider',
  ).addHelpText(
    'after',
    '\nExamples:\n  $ flashcards doctor\n  $ flashcards doctor --provider ollama --model llama3.1',
  );
}
