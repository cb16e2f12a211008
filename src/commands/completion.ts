import type { Command } from 'commander';
import { longFlag, SETTING_ENTRIES } from '../config/settings-table.ts';
import { ExitCode, usageError } from '../core/errors.ts';
import type { CommandContext } from './context.ts';

/**
 * `flashcards completion bash|zsh|fish`: completion scripts generated from the commander program,
 * so they list exactly the commands and options the CLI accepts, with no second list to keep in sync.
 */

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

/** What a value (of an option or a positional argument) is completed with. */
type ValueKind =
  | { kind: 'choices'; values: readonly string[] }
  | { kind: 'file' }
  | { kind: 'dir' }
  | { kind: 'free' };

interface OptionSpec {
  /** '-o', '--output'. */
  names: string[];
  short: string | undefined;
  /** Without the leading dashes. */
  long: string | undefined;
  /** undefined for a flag that takes no value. */
  value: ValueKind | undefined;
  description: string;
}

interface CommandSpec {
  /** Space-separated path from the program: '' for the program itself, 'cache stats' for a subcommand. */
  path: string;
  name: string;
  description: string;
  subcommands: CommandSpec[];
  options: OptionSpec[];
  /** How the first positional argument is completed; undefined when there is none. */
  argument: ValueKind | undefined;
}

/**
 * Values of setting flags that are checked later (by the config loader) rather than with
 * commander's `.choices()`, so the program object does not carry them: `--provider`'s presets.
 * Keyed by long flag without the dashes.
 */
const knownValues: Record<string, readonly string[]> = Object.fromEntries(
  SETTING_ENTRIES.flatMap(([, { flag }]) =>
    flag?.complete ? [[longFlag(flag).replace(/^--/, ''), flag.complete]] : [],
  ),
);

/** Guesses from the placeholder name (`<file>`, `<dir>`, `<input>`) whether a value is a path. */
function kindOf(placeholder: string, choices: readonly string[] | undefined): ValueKind {
  if (choices && choices.length > 0) return { kind: 'choices', values: choices };
  if (/dir/i.test(placeholder)) return { kind: 'dir' };
  if (/file|path|input/i.test(placeholder)) return { kind: 'file' };
  return { kind: 'free' };
}

function firstLine(text: string): string {
  return (text.split('\n')[0] ?? '').trim();
}

/** Reads what commander shows in --help, so hidden commands and options stay hidden here too. */
function describe(cmd: Command, parentPath: string, parent: Command | undefined): CommandSpec {
  const help = cmd.createHelp();
  const path = parent === undefined ? '' : parentPath ? `${parentPath} ${cmd.name()}` : cmd.name();
  const options = help.visibleOptions(cmd).map((o): OptionSpec => {
    const long = o.long?.replace(/^--/, '');
    const placeholder = /[<[]([^>\]]+)[>\]]/.exec(o.flags)?.[1] ?? '';
    return {
      names: [o.short, o.long].filter((n): n is string => n !== undefined),
      short: o.short?.replace(/^-/, ''),
      long,
      value:
        o.required || o.optional
          ? kindOf(placeholder, o.argChoices ?? (long ? knownValues[long] : undefined))
          : undefined,
      description: firstLine(o.description),
    };
  });
  const subcommands = help.visibleCommands(cmd).map((c) => describe(c, path, cmd));
  const first = cmd.registeredArguments[0];
  // commander's implicit `help [command]` (whose .parent is not set) takes a sibling's name.
  const isHelp = parent !== undefined && cmd.name() === 'help' && cmd.registeredArguments.length <= 1;
  const argument: ValueKind | undefined = isHelp
    ? {
        kind: 'choices',
        values: parent
          .createHelp()
          .visibleCommands(parent)
          .map((c) => c.name()),
      }
    : first
      ? kindOf(first.name(), first.argChoices)
      : undefined;
  return {
    path,
    name: cmd.name(),
    description: firstLine(cmd.description()),
    subcommands,
    options,
    argument,
  };
}

function flatten(spec: CommandSpec): CommandSpec[] {
  return [spec, ...spec.subcommands.flatMap(flatten)];
}

/** POSIX single quotes (bash and zsh). */
function sq(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** fish single quotes: only \\ and \' are escapes. */
function fq(text: string): string {
  return `'${text.replace(/[\\']/g, '\\$&')}'`;
}

function functionName(program: string): string {
  return `_${program.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/**
 * A `path:word` key to match in a `case` on "$cmd:$word". The program's own options are accepted
 * after a subcommand too, so theirs match under any path.
 */
interface Key {
  path: string | undefined;
  word: string;
}

/** As a bash/zsh case pattern: `'cache list:--limit'` or `*':--home'`. */
function shPattern(k: Key): string {
  return k.path === undefined ? `*${sq(`:${k.word}`)}` : sq(`${k.path}:${k.word}`);
}

/** As a fish switch pattern (quoted wildcards match in `case`). */
function fishPattern(k: Key): string {
  return fq(`${k.path ?? '*'}:${k.word}`);
}

/** Every subcommand step, for the loop that walks the words typed so far. */
function steps(nodes: CommandSpec[]): Key[] {
  return nodes.flatMap((n) => n.subcommands.map((s) => ({ path: n.path, word: s.name })));
}

interface ValueRules {
  /** Options that take a value (so the next word is not a command). */
  all: Key[];
  file: Key[];
  dir: Key[];
  free: Key[];
  /** One rule per distinct list of values. */
  choices: { keys: Key[]; values: readonly string[] }[];
}

function valueRules(root: CommandSpec, nodes: CommandSpec[]): ValueRules {
  const rules: ValueRules = { all: [], file: [], dir: [], free: [], choices: [] };
  for (const node of nodes) {
    for (const o of node.options) {
      if (!o.value) continue;
      const keys = o.names.map((word) => ({ path: node === root ? undefined : node.path, word }));
      rules.all.push(...keys);
      const v = o.value;
      if (v.kind === 'choices') {
        const same = rules.choices.find((c) => c.values.join(' ') === v.values.join(' '));
        if (same) same.keys.push(...keys);
        else rules.choices.push({ keys, values: v.values });
      } else {
        rules[v.kind].push(...keys);
      }
    }
  }
  return rules;
}

/** A `case` arm, or nothing when there are no patterns (an arm without patterns is a syntax error). */
function arm(patterns: string[], body: string, indent: string, zsh = false): string {
  if (patterns.length === 0) return '';
  const list = patterns.join('|');
  return `${indent}${zsh ? `(${list})` : `${list})`} ${body} ;;\n`;
}

/** bash and zsh: appends the word just matched to the command path. */
const APPEND_WORD = `cmd="\${cmd:+$cmd }$w"`;

function bashScript(root: CommandSpec, program: string): string {
  const fn = functionName(program);
  const nodes = flatten(root);
  const r = valueRules(root, nodes);
  const pad = '    ';
  const p = (keys: Key[]): string[] => keys.map(shPattern);
  const perCommand = nodes
    .map((n) => {
      const subs = n.subcommands.map((s) => s.name).join(' ');
      const opts = n.options.flatMap((o) => o.names).join(' ');
      const args = n.argument?.kind === 'choices' ? n.argument.values.join(' ') : '';
      const files = n.argument?.kind === 'file' ? 1 : 0;
      return `${pad}${sq(n.path)}) subs=${sq(subs)}; opts=${sq(opts)}; args=${sq(args)}; files=${files} ;;\n`;
    })
    .join('');
  const choiceArms = r.choices
    .map((c) =>
      arm(p(c.keys), `COMPREPLY=($(compgen -W ${sq(c.values.join(' '))} -- "$cur")); return 0`, pad),
    )
    .join('');
  return `# bash completion for ${program}; generated by \`${program} completion bash\`.
# Load it from ~/.bashrc:  source <(${program} completion bash)
# or install it:           ${program} completion bash > ~/.local/share/bash-completion/completions/${program}

${fn}_takes_value() {
  case "$1:$2" in
${arm(p(r.all), 'return 0', pad)}  esac
  return 1
}

${fn}() {
  local cur prev cmd w i subs opts args files
  COMPREPLY=()
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ "$w" == -* ]]; then
      if [[ "$w" != *=* ]] && ${fn}_takes_value "$cmd" "$w"; then i=$((i + 1)); fi
      continue
    fi
    case "$cmd:$w" in
${arm(steps(nodes).map(shPattern), APPEND_WORD, '      ')}    esac
  done
  case "$cmd:$prev" in
${choiceArms}${arm(p(r.dir), 'COMPREPLY=($(compgen -d -- "$cur")); compopt -o filenames 2>/dev/null; return 0', pad)}${arm(p(r.file), 'return 0', pad)}${arm(p(r.free), 'compopt +o default 2>/dev/null; return 0', pad)}  esac
  subs=""; opts=""; args=""; files=0
  case "$cmd" in
${perCommand}  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ -n "$subs" ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  elif [[ -n "$args" ]]; then
    COMPREPLY=($(compgen -W "$args" -- "$cur"))
  elif [[ "$files" == 1 ]]; then
    # An empty reply lets bash complete file names (complete -o default).
    return 0
  fi
  compopt +o default 2>/dev/null
  return 0
}

complete -o default -F ${fn} ${program}
`;
}

/** `name:description` for zsh's _describe; a colon in the name must be escaped. */
function described(name: string, description: string): string {
  return sq(`${name.replace(/:/g, '\\:')}:${description}`);
}

function zshScript(root: CommandSpec, program: string): string {
  const fn = functionName(program);
  const nodes = flatten(root);
  const r = valueRules(root, nodes);
  const pad = '    ';
  const p = (keys: Key[]): string[] => keys.map(shPattern);
  const perCommand = nodes
    .map((n) => {
      const subs = n.subcommands.map((s) => described(s.name, s.description)).join(' ');
      const opts = n.options.flatMap((o) => o.names.map((name) => described(name, o.description))).join(' ');
      const args = n.argument?.kind === 'choices' ? n.argument.values.map(sq).join(' ') : '';
      const files = n.argument?.kind === 'file' ? 1 : 0;
      return `${pad}(${sq(n.path)}) subs=(${subs}); opts=(${opts}); args=(${args}); files=${files} ;;\n`;
    })
    .join('');
  const choiceArms = r.choices
    .map((c) => arm(p(c.keys), `compadd -- ${c.values.map(sq).join(' ')}; return`, pad, true))
    .join('');
  return `#compdef ${program}
# zsh completion for ${program}; generated by \`${program} completion zsh\`.
# Load it from ~/.zshrc (after compinit):  source <(${program} completion zsh)
# or install it:  ${program} completion zsh > "\${fpath[1]}/${fn}"

${fn}_takes_value() {
  case "$1:$2" in
${arm(p(r.all), 'return 0', pad, true)}  esac
  return 1
}

${fn}() {
  local cmd='' w prev
  local -i i files=0
  local -a subs opts args
  for (( i = 2; i < CURRENT; i++ )); do
    w=\${words[i]}
    if [[ $w == -* ]]; then
      if [[ $w != *=* ]] && ${fn}_takes_value "$cmd" "$w"; then (( i++ )); fi
      continue
    fi
    case "$cmd:$w" in
${arm(steps(nodes).map(shPattern), APPEND_WORD, '      ', true)}    esac
  done
  prev=\${words[CURRENT-1]}
  case "$cmd:$prev" in
${choiceArms}${arm(p(r.dir), '_files -/; return', pad, true)}${arm(p(r.file), '_files; return', pad, true)}${arm(p(r.free), "_message 'value'; return", pad, true)}  esac
  case "$cmd" in
${perCommand}  esac
  if [[ $PREFIX == -* ]]; then
    _describe -t options option opts
  elif (( \${#subs} )); then
    _describe -t commands command subs
  elif (( \${#args} )); then
    compadd -a args
  elif (( files )); then
    _files
  fi
}

if [ "$funcstack[1]" = "${fn}" ]; then
  ${fn} "$@"
else
  compdef ${fn} ${program}
fi
`;
}

function fishValue(v: ValueKind): string {
  switch (v.kind) {
    case 'choices':
      return ` -x -a ${fq(v.values.join(' '))}`;
    case 'dir':
      return ` -x -a ${fq('(__fish_complete_directories)')}`;
    case 'file':
      return ' -r -F';
    case 'free':
      return ' -x';
  }
}

function fishScript(root: CommandSpec, program: string): string {
  const fn = `_${functionName(program)}`;
  const nodes = flatten(root);
  const r = valueRules(root, nodes);
  const fishArm = (patterns: string[], body: string, indent: string): string =>
    patterns.length === 0 ? '' : `${indent}case ${patterns.join(' ')}\n${indent}    ${body}\n`;
  const lines: string[] = [`complete -c ${program} -f`];
  for (const n of nodes) {
    const at = `-n ${fq(`${fn}_at ${fq(n.path)}`)}`;
    for (const s of n.subcommands) {
      lines.push(`complete -c ${program} ${at} -a ${fq(s.name)} -d ${fq(s.description)}`);
    }
    for (const o of n.options) {
      const names = [o.short ? `-s ${fq(o.short)}` : '', o.long ? `-l ${fq(o.long)}` : '']
        .filter(Boolean)
        .join(' ');
      const value = o.value ? fishValue(o.value) : '';
      lines.push(`complete -c ${program} ${at} ${names}${value} -d ${fq(o.description)}`);
    }
    if (n.subcommands.length === 0 && n.argument?.kind === 'choices') {
      lines.push(`complete -c ${program} ${at} -a ${fq(n.argument.values.join(' '))}`);
    } else if (n.subcommands.length === 0 && n.argument?.kind === 'file') {
      lines.push(`complete -c ${program} ${at} -F`);
    }
  }
  return `# fish completion for ${program}; generated by \`${program} completion fish\`.
# Install it:  ${program} completion fish > ~/.config/fish/completions/${program}.fish

function ${fn}_takes_value
    switch "$argv[1]:$argv[2]"
${fishArm(r.all.map(fishPattern), 'return 0', '        ')}    end
    return 1
end

# The command path typed so far ('' for none, 'cache stats'), skipping options and their values.
function ${fn}_path
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l path ''
    set -l skip 0
    for w in $tokens
        if test $skip -eq 1
            set skip 0
            continue
        end
        if string match -q -- '-*' $w
            if not string match -q -- '*=*' $w; and ${fn}_takes_value "$path" $w
                set skip 1
            end
            continue
        end
        switch "$path:$w"
${fishArm(steps(nodes).map(fishPattern), 'set path (string trim -- "$path $w")', '            ')}        end
    end
    echo $path
end

function ${fn}_at
    set -l p (${fn}_path)
    test "$p" = "$argv[1]"
end

${lines.join('\n')}
`;
}

/**
 * A completion script for `shell`, derived from the commander program: commands, subcommands,
 * options, and option values where they are known (`.choices()`, providers, file and directory
 * placeholders).
 */
export function completionScript(program: Command, shell: Shell): string {
  const root = describe(program, '', undefined);
  const name = program.name();
  switch (shell) {
    case 'bash':
      return bashScript(root, name);
    case 'zsh':
      return zshScript(root, name);
    case 'fish':
      return fishScript(root, name);
  }
}

function isShell(value: string): value is Shell {
  return (SHELLS as readonly string[]).includes(value);
}

export interface CompletionOptions {
  shell: string;
  /** The whole program, so the script lists exactly what the CLI accepts. */
  program: Command;
}

/** `flashcards completion <shell>`: prints the script on stdout, nothing else. */
export async function completion(ctx: CommandContext, opts: CompletionOptions): Promise<number> {
  if (!isShell(opts.shell)) {
    throw usageError(
      `unknown shell "${opts.shell}"; expected one of ${SHELLS.join(', ')}`,
      `e.g. source <(${opts.program.name()} completion bash)`,
    );
  }
  ctx.io.out(completionScript(opts.program, opts.shell));
  return ExitCode.ok;
}
