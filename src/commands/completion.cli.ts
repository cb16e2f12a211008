import { Argument, type Command } from 'commander';
import type { Run } from './register.ts';

/** `flashcards completion bash|zsh|fish`: the script is generated from `program` itself. */
export function registerCompletion(program: Command, run: Run): void {
  program
    .command('completion')
    .description('Print a shell completion script (bash, zsh or fish)')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(['bash', 'zsh', 'fish']))
    .addHelpText(
      'after',
      `
Install:
  bash: echo 'source <(flashcards completion bash)' >> ~/.bashrc
  zsh:  echo 'source <(flashcards completion zsh)' >> ~/.zshrc     # after compinit
  fish: flashcards completion fish > ~/.config/fish/completions/flashcards.fish`,
    )
    .action(
      run(async (ctx, shell: string) =>
        (await import('./completion.ts')).completion(ctx, { shell, program }),
      ),
    );
}
