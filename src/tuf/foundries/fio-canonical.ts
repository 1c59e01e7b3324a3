import { FerryError } from '../../errors.js';

/**
 * The bytes a Foundries-format signature covers: the `signed` object as aktualizr serialises it before verifying
 * (Utils::jsonToCanonicalStr, jsoncpp's writer with no indentation): object keys sorted, no whitespace, integers
 * only, and strings escaped as jsoncpp escapes them: `"` and `\`, the control characters (`\n`, `\t`… or `\u00XX`),
 * and every character outside ASCII as `\uXXXX` (a UTF-16 pair above the BMP). @tufjs/canonical-json (OLPC canonical
 * JSON) writes the same bytes for plain ASCII, but leaves control characters raw: the newlines of an RSA key's PEM in
 * root.json would then be signed one way and checked another.
 */
export function fioCanonicalJson(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    // TUF metadata carries versions, lengths and thresholds only; a fraction has no agreed canonical form.
    if (!Number.isSafeInteger(value))
      throw new FerryError('METADATA_MALFORMED', `the number ${value} is not an integer`);
    return String(value);
  }
  if (typeof value === 'string') return fioQuotedString(value);
  if (Array.isArray(value)) return `[${value.map(fioCanonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort(compareUtf8)
      .map((key) => `${fioQuotedString(key)}:${fioCanonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  throw new FerryError('METADATA_MALFORMED', `a ${typeof value} has no JSON form`);
}

const SHORT_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  '\\': '\\\\',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

function fioQuotedString(text: string): string {
  let out = '"';
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index]!;
    const code = text.charCodeAt(index);
    const short = SHORT_ESCAPES[char];
    if (short !== undefined) out += short;
    else if (code < 0x20 || code > 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += char;
  }
  return `${out}"`;
}

/** jsoncpp keeps object members in a std::map ordered by their bytes; UTF-16 order differs above U+D7FF. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
