// A transform: splits `people.full_name` into the new `first_name` and `last_name` columns.
// The first name is the first word; the last name is the rest, or empty.
//
// The same behaviour as the Rust example (../../split-names): words are split at Unicode
// White_Space, which is what Rust's `char::is_whitespace` and `str::trim` use (JavaScript's
// `trim` and `\s` also take U+FEFF, so they are not used here). Every White_Space character is
// in the BMP, so a UTF-16 index never splits a surrogate pair.
//
// SQL values cross as the WIT's variant: `{ tag: 'text', val: 'Ada' }`, integers as BigInt.
// A failing call throws; the step then fails and is rolled back. `run` returns the WIT's
// `result<_, string>`: componentize-js makes a thrown *string* its `err`, and ends the
// component in an opaque trap for anything else thrown (an `Error`, a number), so `run` turns
// whatever its body throws into text (see `reported`).
import { openCursor, executeMany } from 'strata:migrate/sql@0.1.0';
import { log } from 'strata:migrate/log@0.1.0';

const WHITE_SPACE = new Set(
  '\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008' +
    '\u2009\u200a\u2028\u2029\u202f\u205f\u3000',
);

function trim(s) {
  let start = 0;
  let end = s.length;
  while (start < end && WHITE_SPACE.has(s[start])) start++;
  while (end > start && WHITE_SPACE.has(s[end - 1])) end--;
  return s.slice(start, end);
}

/** Splits at the first run of whitespace. */
function split(fullName) {
  const name = trim(fullName);
  for (let i = 0; i < name.length; i++) {
    if (WHITE_SPACE.has(name[i])) {
      return [name.slice(0, i), trim(name.slice(i + 1))];
    }
  }
  return [name, ''];
}

const text = (val) => ({ tag: 'text', val });

/** What was thrown, as the text strata shows: an error's name, message and where it was
 * thrown (without componentize-js's own frames); anything else as `String` gives it. */
function reported(e) {
  if (e instanceof Error) {
    const where = String(e.stack ?? '')
      .split('\n')
      .filter((line) => line !== '' && !line.includes('initializer.js'));
    return [`${e.name}: ${e.message}`, ...where].join('\n');
  }
  try {
    return String(e);
  } catch {
    return `a thrown ${typeof e}`;
  }
}

export function run() {
  try {
    splitNames();
  } catch (e) {
    throw reported(e);
  }
}

function splitNames() {
  const cursor = openCursor('SELECT id, full_name FROM people', []);
  let changed = 0n;
  for (;;) {
    const rows = cursor.next(1000);
    if (rows.length === 0) break;
    const params = rows.map(([id, fullName]) => {
      if (fullName.tag !== 'text') {
        throw new TypeError(`people ${id.val}: full_name is ${fullName.tag}, not text`);
      }
      const [first, last] = split(fullName.val);
      return [text(first), text(last), id];
    });
    changed += executeMany('UPDATE people SET first_name = ?, last_name = ? WHERE id = ?', params);
  }
  log('info', `split the names of ${changed} people`);
}
