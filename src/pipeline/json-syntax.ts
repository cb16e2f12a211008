import { type ParseErrorCode, printParseErrorCode, visit } from 'jsonc-parser';

/**
 * Where a JSON text first breaks the JSON grammar, and how. V8's JSON.parse messages give no
 * position for some mistakes ("Unexpected token 'x', ... is not valid JSON" quotes the whole text
 * instead) and their wording changes between Node versions; jsonc-parser (VS Code's JSON scanner,
 * run strict: no comments, no trailing commas) locates every mistake. A key given twice in one
 * object, which JSON.parse accepts silently (the last one wins), is reported too.
 */

export interface JsonSyntaxProblem {
  /** 1-based, as editors count. */
  line: number;
  column: number;
  message: string;
}

/** jsonc-parser's error names, in words a person fixes the file by. */
const MESSAGES: Record<string, string> = {
  InvalidSymbol: 'unexpected text here (strings and keys need double quotes)',
  InvalidNumberFormat: 'not a JSON number (no leading zeros, + signs, NaN or Infinity)',
  PropertyNameExpected: 'expected a key in double quotes (JSON allows no comma after the last entry)',
  ValueExpected: 'expected a value (JSON allows no comma after the last entry)',
  ColonExpected: 'expected ":" after the key',
  CommaExpected: 'expected "," between entries',
  CloseBraceExpected: 'expected "}" to close the object',
  CloseBracketExpected: 'expected "]" to close the list',
  EndOfFileExpected: 'unexpected text after the end of the JSON document',
  InvalidCommentToken: 'JSON allows no comments',
  UnexpectedEndOfComment: 'JSON allows no comments',
  UnexpectedEndOfString: 'a string is not closed (a missing " before the end of the line)',
  UnexpectedEndOfNumber: 'a number ends too early',
  InvalidUnicode: 'a \\u escape needs four hex digits',
  InvalidEscapeCharacter: 'not a JSON escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)',
  InvalidCharacter: 'a control character inside a string (write it as an escape, e.g. \\n)',
};

function describe(code: ParseErrorCode, atEnd: boolean): string {
  const message = MESSAGES[printParseErrorCode(code)] ?? printParseErrorCode(code);
  return atEnd ? `${message}; got the end of the file` : message;
}

/** The first syntax mistake in `text`, with its line and column; undefined when it is valid JSON. */
export function jsonSyntaxProblem(text: string): JsonSyntaxProblem | undefined {
  let first: JsonSyntaxProblem | undefined;
  const note = (line: number, character: number, message: string): void => {
    first ??= { line: line + 1, column: character + 1, message };
  };
  const keys: Set<string>[] = [];
  visit(
    text,
    {
      onObjectBegin: () => void keys.push(new Set()),
      onObjectEnd: () => void keys.pop(),
      onObjectProperty: (name, _offset, _length, line, character) => {
        const seen = keys[keys.length - 1];
        if (seen?.has(name)) note(line, character, `the key "${name}" is given twice in the same object`);
        seen?.add(name);
      },
      onError: (code, offset, _length, line, character) =>
        note(line, character, describe(code, offset >= text.trimEnd().length)),
    },
    { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false },
  );
  return first;
}
