"""A transform: splits `people.full_name` into the new `first_name` and `last_name` columns.
The first name is the first word; the last name is the rest, or empty.

The same behaviour as the Rust example (../../split-names): words are split at Unicode
White_Space, which is what Rust's `char::is_whitespace` and `str::trim` use. Python's own
`str.split()`/`str.strip()` also split at U+001C..U+001F, so they are not used here.
"""

from typing import Tuple

from strata_sdk import log, sql, transform

# Unicode's White_Space property: Rust's char::is_whitespace.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def split(full_name: str) -> Tuple[str, str]:
    """Splits at the first run of whitespace."""
    name = full_name.strip(WHITE_SPACE)
    for i, c in enumerate(name):
        if c in WHITE_SPACE:
            return name[:i], name[i + 1 :].lstrip(WHITE_SPACE)
    return name, ""


@transform
def run() -> None:
    names = sql.Writer("UPDATE people SET first_name = ?, last_name = ? WHERE id = ?")
    for id, full_name in sql.stream("SELECT id, full_name FROM people"):
        first, last = split(full_name)
        names.push((first, last, id))
    changed = names.finish()
    log.info(f"split the names of {changed} people")
