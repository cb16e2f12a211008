import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Command, Option } from 'commander';
import { buildProgram } from '../src/cli.ts';
import { completion, completionScript, type Shell } from '../src/commands/completion.ts';
import { memoryIo } from '../src/commands/context.ts';
import { FakeClock } from '../src/core/clock.ts';
import { isFlashcardsError } from '../src/core/errors.ts';
import { runCli, tempDir } from './support/cli.ts';

const dir = tempDir('fc-completion-');

function has(shell: string): boolean {
  return spawnSync(shell, ['--version'], { stdio: 'ignore' }).status === 0;
}

function save(shell: Shell, program = buildProgram()): string {
  const file = join(dir, `${program.name()}.${shell}`);
  writeFileSync(file, completionScript(program, shell));
  return file;
}

/** Runs the bash completion function as bash would for `words` (the last one is being typed). */
function bashComplete(file: string, fn: string, words: string[]): string[] {
  const driver = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); ${fn}; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['-c', driver, 'bash', file, ...words], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

/** fish's own completion engine on a command line. Returns the candidates without descriptions. */
function fishComplete(file: string, line: string): string[] {
  const r = spawnSync('fish', ['--no-config', '-c', `source $argv[1]; complete -C $argv[2]`, file, line], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t')[0] ?? '');
}

/**
 * Calls the zsh completion function outside the completion system, with the completion builtins
 * stubbed to print what they would offer (zsh itself filters by the typed prefix).
 */
function zshComplete(file: string, words: string[]): string[] {
  const driver = `compdef() { :; }
_describe() { local -a arr; arr=("\${(@P)4}"); print -rl -- "\${arr[@]%%:*}"; }
compadd() { if [[ $1 == -a ]]; then print -rl -- "\${(@P)2}"; else shift; print -rl -- "$@"; fi; }
_files() { print -r -- "<files\${1:+ $1}>"; }
_message() { print -r -- "<message>"; }
source "$1"; shift
words=("$@"); CURRENT=$#; PREFIX=\${words[CURRENT]}
_flashcards`;
  const r = spawnSync('zsh', ['-f', '-c', driver, 'zsh', file, ...words], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

/** What `flashcards --help` lists: every visible top-level command, plus commander's `help`. */
function topLevelCommands(program: Command): string[] {
  return program
    .createHelp()
    .visibleCommands(program)
    .map((c) => c.name());
}

describe('completionScript for bash', () => {
  const program = buildProgram();
  const file = save('bash', program);

  test('is valid bash (bash -n)', () => {
    const r = spawnSync('bash', ['-n', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  test('offers every top-level command of the program, and only those, after the program name', () => {
    const names = program.commands.map((c) => c.name());
    for (const name of ['process', 'cache', 'breaker', 'limiter', 'batches', 'config', 'doctor']) {
      assert.ok(names.includes(name), `the program has ${name}`);
    }
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', '']), topLevelCommands(program));
    for (const name of names) assert.match(completionScript(program, 'bash'), new RegExp(`':${name}'`));
  });

  test('completes a partly typed command', () => {
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', 'ca']), ['cache']);
  });

  test('offers the subcommands of a command group', () => {
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', 'cache', '']), [
      'stats',
      'list',
      'show',
      'prune',
      'clear',
      'help',
    ]);
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', 'batches', 'e']), ['export']);
  });

  test("offers a command's own options after a dash", () => {
    const opts = bashComplete(file, '_flashcards', ['flashcards', 'process', 'words.csv', '--']);
    for (const o of [
      '--output',
      '--format',
      '--concurrency',
      '--dry-run',
      '--json',
      '--no-cache',
      '--provider',
    ]) {
      assert.ok(opts.includes(o), `${o} offered`);
    }
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', 'cache', 'clear', '-']), [
      '--json',
      '--model',
      '--older-than',
      '-y',
      '--yes',
      '-h',
      '--help',
    ]);
  });

  test('offers the allowed values of --format and --provider', () => {
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', 'process', '--format', '']), [
      'anki',
      'csv',
      'jsonl',
      'json',
      'apkg',
    ]);
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', 'process', '--provider', 'o']), [
      'openrouter',
      'openai',
      'ollama',
    ]);
  });

  test('skips global options and their values when finding the command', () => {
    assert.deepEqual(
      bashComplete(file, '_flashcards', ['flashcards', '--home', '/tmp/x', '--verbose', 'cache', 's']),
      ['stats', 'show'],
    );
  });

  test('offers command names after help', () => {
    const c = topLevelCommands(program).filter((n) => n.startsWith('c'));
    assert.ok(c.includes('cache') && c.includes('config'));
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', 'help', 'c']), c);
  });

  test('leaves file arguments and free values to bash (empty reply)', () => {
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', 'process', '']), []);
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', 'process', '--concurrency', '']), []);
  });

  test('registers the function for the program name', () => {
    assert.match(completionScript(program, 'bash'), /^complete -o default -F _flashcards flashcards$/m);
  });
});

describe('completionScript for zsh', { skip: has('zsh') ? false : 'zsh is not installed' }, () => {
  const program = buildProgram();
  const file = save('zsh', program);

  test('is valid zsh (zsh -n) and registers itself with compdef', () => {
    const r = spawnSync('zsh', ['-n', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const script = completionScript(program, 'zsh');
    assert.match(script, /^#compdef flashcards$/m);
    assert.match(script, /^ {2}compdef _flashcards flashcards$/m);
  });

  test('offers commands, subcommands, option values, directories and files where each belongs', () => {
    assert.deepEqual(zshComplete(file, ['flashcards', '']), topLevelCommands(program));
    assert.deepEqual(zshComplete(file, ['flashcards', '--home', '/x', 'limiter', '']), [
      'status',
      'reset',
      'help',
    ]);
    assert.deepEqual(zshComplete(file, ['flashcards', 'batches', 'export', 'b1', '--format', '']), [
      'anki',
      'csv',
      'jsonl',
      'json',
      'apkg',
    ]);
    assert.deepEqual(zshComplete(file, ['flashcards', '--home', '']), ['<files -/>']);
    assert.deepEqual(zshComplete(file, ['flashcards', 'process', '-o', '']), ['<files>']);
    assert.deepEqual(zshComplete(file, ['flashcards', 'process', '']), ['<files>']);
    assert.deepEqual(zshComplete(file, ['flashcards', 'process', '--timeout', '']), ['<message>']);
    assert.ok(zshComplete(file, ['flashcards', 'doctor', '--']).includes('--json'));
  });
});

describe('completionScript for fish', { skip: has('fish') ? false : 'fish is not installed' }, () => {
  const program = buildProgram();
  const file = save('fish', program);

  test('is valid fish (fish -n)', () => {
    const r = spawnSync('fish', ['--no-config', '-n', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  test('offers commands, subcommands, options and option values through fish itself', () => {
    assert.deepEqual(fishComplete(file, 'flashcards ').sort(), topLevelCommands(program).sort());
    assert.deepEqual(fishComplete(file, 'flashcards --config x.json breaker ').sort(), [
      'close',
      'help',
      'history',
      'isolate',
      'status',
    ]);
    assert.deepEqual(fishComplete(file, 'flashcards process --format '), [
      'anki',
      'apkg',
      'csv',
      'json',
      'jsonl',
    ]);
    assert.deepEqual(fishComplete(file, 'flashcards process --dry'), ['--dry-run']);
    assert.deepEqual(fishComplete(file, 'flashcards process --concurrency '), []);
  });
});

describe('completionScript derives everything from the commander program', () => {
  const tool = new Command('my-tool').option('--root <dir>', 'where things are');
  tool
    .command('run')
    .description("Run the tool's job")
    .addOption(new Option('--level <level>', 'how loud').choices(['low', 'high']))
    .argument('<file>');
  tool.command('secret', { hidden: true }).description('not for you');

  test('uses the program name for the function and registration, and hides hidden commands', () => {
    const script = completionScript(tool, 'bash');
    assert.match(script, /^complete -o default -F _my_tool my-tool$/m);
    assert.doesNotMatch(script, /secret/);
    const file = save('bash', tool);
    assert.equal(spawnSync('bash', ['-n', file]).status, 0);
    assert.deepEqual(bashComplete(file, '_my_tool', ['my-tool', '']), ['run', 'help']);
    assert.deepEqual(bashComplete(file, '_my_tool', ['my-tool', 'run', '--level', '']), ['low', 'high']);
    assert.deepEqual(bashComplete(file, '_my_tool', ['my-tool', '--root', 'run', '']), ['run', 'help']);
  });

  test('quotes descriptions with apostrophes safely in every shell', () => {
    for (const shell of ['zsh', 'fish'] as const) {
      if (!has(shell)) continue;
      const file = save(shell, tool);
      const r = spawnSync(shell, shell === 'fish' ? ['--no-config', '-n', file] : ['-n', file], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, `${shell}: ${r.stderr}`);
    }
    assert.match(completionScript(tool, 'fish'), /-d 'Run the tool\\'s job'/);
    assert.match(completionScript(tool, 'zsh'), /'run:Run the tool'\\''s job'/);
  });
});

describe('the completion handler', () => {
  const ctx = () => ({
    home: dir,
    cwd: dir,
    env: {},
    io: memoryIo(),
    clock: new FakeClock(),
    verbose: false,
  });

  test('prints the script on stdout and nothing on stderr, exit 0', async () => {
    const c = ctx();
    const program = buildProgram();
    const code = await completion(c, { shell: 'fish', program });
    assert.equal(code, 0);
    assert.equal(c.io.stdout.join(''), completionScript(program, 'fish'));
    assert.deepEqual(c.io.stderr, []);
  });

  test('an unknown shell is a usage error (exit 2) listing the shells', async () => {
    await assert.rejects(
      completion(ctx(), { shell: 'tcsh', program: buildProgram() }),
      (e: unknown) =>
        isFlashcardsError(e) &&
        e.exitCode === 2 &&
        e.message === 'unknown shell "tcsh"; expected one of bash, zsh, fish',
    );
  });
});

describe('flashcards completion (the built CLI)', () => {
  test('`flashcards completion bash` prints a valid script that includes the completion command itself', async () => {
    const r = await runCli(['completion', 'bash']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const file = join(dir, 'from-cli.bash');
    writeFileSync(file, r.stdout);
    assert.equal(spawnSync('bash', ['-n', file]).status, 0);
    const commands = bashComplete(file, '_flashcards', ['flashcards', '']);
    for (const name of [
      'process',
      'cache',
      'breaker',
      'limiter',
      'batches',
      'config',
      'doctor',
      'completion',
    ]) {
      assert.ok(commands.includes(name), `${name} offered`);
    }
    assert.deepEqual(bashComplete(file, '_flashcards', ['flashcards', 'completion', '']), [
      'bash',
      'zsh',
      'fish',
    ]);
  });

  test('`flashcards completion tcsh` exits 2 and names the shells', async () => {
    const r = await runCli(['completion', 'tcsh']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /bash, zsh, fish/);
  });
});
