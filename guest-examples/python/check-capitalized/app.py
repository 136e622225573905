"""A check: one violation per non-empty first or last name that does not start with an
uppercase letter by Unicode rules, which SQLite's ASCII-only upper() cannot express."""

from typing import List, Optional

from strata_sdk import check, sql


def starts_with_a_capital(name: Optional[str]) -> bool:
    return not name or name[0].isupper()


@check
def violations() -> List[str]:
    problems = []
    for id, first, last in sql.stream("SELECT id, first_name, last_name FROM people"):
        for what, name in (("first", first), ("last", last)):
            if not starts_with_a_capital(name):
                problems.append(
                    f"people {id}: {what} name '{name or ''}' does not start with a capital letter"
                )
    return problems
