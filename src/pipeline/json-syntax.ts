/**
 * Where a JSON text first breaks the JSON grammar, and how, in words a person fixes it by. V8's
 * JSON.parse messages give no position for some mistakes ("Unexpected token 'x', ... is not valid
 * JSON" quotes the whole text instead) and their wording changes between Node versions; this scan
 * gives a line and column for every mistake. It also finds a key given twice in one object,
 * which JSON.parse accepts silently (the last one wins).
 */

export interface JsonSyntaxProblem {
  /** 1-based, as editors count. */
  line: number;
  column: number;
  message: string;
}

/** Thrown inside the scan only; turned into a JsonSyntaxProblem at the top. */
class Stop {
  readonly offset: number;
  readonly message: string;
  constructor(offset: number, message: string) {
    this.offset = offset;
    this.message = message;
  }
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

function shown(c: string | undefined): string {
  if (c === undefined) return 'the end of the file';
  if (c === '\n' || c === '\r') return 'the end of the line';
  return c < ' ' ? `character U+${c.charCodeAt(0).toString(16).padStart(4, '0')}` : `"${c}"`;
}

class Scanner {
  readonly text: string;
  #i = 0;
  constructor(text: string) {
    this.text = text;
  }

  /** Scans one JSON document; throws Stop at the first mistake. */
  document(): void {
    this.#space();
    this.#value();
    this.#space();
    if (this.#i < this.text.length)
      this.#fail(`unexpected ${shown(this.#peek())} after the end of the JSON document`);
  }

  #peek(): string | undefined {
    return this.text[this.#i];
  }

  #fail(message: string, at = this.#i): never {
    throw new Stop(at, message);
  }

  #space(): void {
    while (this.#i < this.text.length && WHITESPACE.has(this.text[this.#i]!)) this.#i++;
  }

  #value(): void {
    const c = this.#peek();
    if (c === '{') {
      this.#object();
      return;
    }
    if (c === '[') {
      this.#array();
      return;
    }
    if (c === '"') {
      this.#string();
      return;
    }
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      this.#number();
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (this.text.startsWith(word, this.#i)) {
        this.#i += word.length;
        return;
      }
    }
    if (c === undefined) this.#fail('the file ends where a value was expected');
    const bare = /^[A-Za-z_$][\w$]*/.exec(this.text.slice(this.#i, this.#i + 40))?.[0];
    this.#fail(
      bare
        ? `unexpected ${bare}: text needs double quotes ("${bare}"), and only true, false and null are bare words`
        : `unexpected ${shown(c)} where a value was expected`,
    );
  }

  #object(): void {
    this.#i++;
    this.#space();
    if (this.#peek() === '}') {
      this.#i++;
      return;
    }
    const keys = new Set<string>();
    for (;;) {
      this.#space();
      const c = this.#peek();
      if (c !== '"') {
        if (c === '}') this.#fail('a comma before "}": JSON allows no comma after the last entry');
        this.#fail(`expected a key in double quotes, got ${shown(c)}`);
      }
      const start = this.#i;
      const key = this.#string();
      if (keys.has(key)) this.#fail(`the key "${key}" is given twice in the same object`, start);
      keys.add(key);
      this.#space();
      if (this.#peek() !== ':') this.#fail(`expected ":" after the key "${key}", got ${shown(this.#peek())}`);
      this.#i++;
      this.#space();
      this.#value();
      this.#space();
      const next = this.#peek();
      if (next === '}') {
        this.#i++;
        return;
      }
      if (next !== ',') this.#fail(`expected "," or "}" after the value of "${key}", got ${shown(next)}`);
      this.#i++;
    }
  }

  #array(): void {
    this.#i++;
    this.#space();
    if (this.#peek() === ']') {
      this.#i++;
      return;
    }
    for (;;) {
      this.#space();
      if (this.#peek() === ']') this.#fail('a comma before "]": JSON allows no comma after the last element');
      this.#value();
      this.#space();
      const next = this.#peek();
      if (next === ']') {
        this.#i++;
        return;
      }
      if (next !== ',') this.#fail(`expected "," or "]" after a list element, got ${shown(next)}`);
      this.#i++;
    }
  }

  /** A string; returns its raw text between the quotes (enough to tell keys apart). */
  #string(): string {
    const start = ++this.#i;
    for (;;) {
      const c = this.#peek();
      if (c === undefined || c === '\n' || c === '\r')
        this.#fail('a string is not closed (a missing ")', start - 1);
      if (c === '"') break;
      if (c < ' ') this.#fail(`${shown(c)} inside a string: write it as an escape such as \\t or \\n`);
      if (c === '\\') {
        const e = this.text[this.#i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(this.text.slice(this.#i + 2, this.#i + 6)))
            this.#fail('\\u must be followed by four hexadecimal digits');
          this.#i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e))
          this.#fail(`unknown escape \\${e ?? ''}: JSON knows \\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX`);
        this.#i += 2;
        continue;
      }
      this.#i++;
    }
    const raw = this.text.slice(start, this.#i);
    this.#i++;
    return raw;
  }

  #number(): void {
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(this.text.slice(this.#i, this.#i + 400));
    const after = m ? this.text[this.#i + m[0].length] : undefined;
    if (!m || (after !== undefined && /[\w.+-]/.test(after)))
      this.#fail('not a JSON number (no leading zeros, + signs, NaN or Infinity; digits after a ".")');
    this.#i += m[0].length;
  }
}

/** The first syntax mistake in `text`, with its line and column; undefined when it is valid JSON. */
export function jsonSyntaxProblem(text: string): JsonSyntaxProblem | undefined {
  try {
    new Scanner(text).document();
    return undefined;
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
    const before = text.slice(0, e.offset);
    const lineStart = before.lastIndexOf('\n') + 1;
    return {
      line: before.split('\n').length,
      column: e.offset - lineStart + 1,
      message: e.message,
    };
  }
}
