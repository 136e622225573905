"""Errors: one exception class per case of the WIT's `error` variant, under `SqlError`."""

from __future__ import annotations

from typing import Optional


class Error(Exception):
    """An error a component raises on purpose: its message is what the host reports.

    Raising it (or any exception) from an exported function fails the step, which is rolled back.
    """

    kind: Optional[str] = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SqlError(Error):
    """A call to the host's SQL API failed. Displays as ``kind: message (in `statement`)``."""

    kind = "sqlite"

    def __init__(self, message: str, statement: Optional[str] = None) -> None:
        super().__init__(message)
        self.statement = statement

    def __str__(self) -> str:
        text = f"{self.kind}: {self.message}"
        if self.statement is not None:
            text += f" (in `{_short(self.statement)}`)"
        return text


class Syntax(SqlError):
    """The statement does not parse, names a missing table or column, or got the wrong number
    of parameters (the WIT's `error.syntax`)."""

    kind = "syntax"


class Constraint(SqlError):
    """A constraint refused a row: UNIQUE, NOT NULL, CHECK, PRIMARY KEY or FOREIGN KEY
    (`error.constraint`)."""

    kind = "constraint"


class Denied(SqlError):
    """The sandbox refused: an undeclared table, ATTACH, a PRAGMA, a transaction statement, or
    strata's own tables (`error.denied`)."""

    kind = "denied"


class Limit(SqlError):
    """A limit ran out during the statement: the wall-clock deadline (`error.limit`)."""

    kind = "limit"


class Other(SqlError):
    """Anything else the database reported (`error.other`)."""

    kind = "sqlite"


class Decode(Error):
    """A value or parameter has no SQL counterpart (an int beyond 64 bits, an unknown type),
    or the seed parameters are not a JSON object."""

    kind = "decode"

    def __str__(self) -> str:
        return f"decode: {self.message}"


def _short(sql: str) -> str:
    one_line = " ".join(sql.split())
    return one_line if len(one_line) <= 80 else one_line[:77] + "..."
