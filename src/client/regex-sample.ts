import { pick, type Random } from '../core/random.ts';

/**
 * Strings for a JSON Schema `pattern`: a small generator for the regular expressions schemas use
 * (classes, groups, alternation, quantifiers), driven by the injected random source so the mock's
 * answers stay deterministic. Schema patterns are ECMA-262 regexes, often with the `u` flag:
 * `\u{...}` escapes and ranges outside ASCII (`[가-힣]`) generate what they say, which randexp's
 * parser does not. Lookaround gives undefined; `\p{...}` gives a lower-case letter and a
 * backreference its digit, which may not match: callers test what they get.
 */

/** The schema's pattern as a RegExp (with `u` when it compiles so), or undefined when it compiles neither way. */
export function compilePattern(pattern: string): RegExp | undefined {
  for (const flags of ['u', '']) {
    try {
      return new RegExp(pattern, flags);
    } catch {
      // try the next flags
    }
  }
  return undefined;
}

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
