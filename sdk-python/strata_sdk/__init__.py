"""The Python guest SDK of strata: migration logic written as plain Python and built by
`strata build` (with a pinned componentize-py) into a sandboxed WebAssembly component of the
same WIT worlds (`sdk/wit/strata.wit`) as the Rust SDK's.

A component's only door is the database of the step being applied, through `sql`, and a message
channel, `log`. There is no clock, randomness, file or network access.

A transform that splits ``people.full_name`` into two new columns (``app.py``)::

    from strata_sdk import log, sql, transform

    @transform
    def run() -> None:
        names = sql.Writer("UPDATE people SET first_name = ?, last_name = ? WHERE id = ?")
        for id, full_name in sql.stream("SELECT id, full_name FROM people"):
            first, _, last = full_name.strip().partition(" ")
            names.push((first, last.strip(), id))
        log.info(f"split the names of {names.finish()} people")

Exactly one of `transform`, `seed` or `check` decorates the function the component exports. An
exception it raises fails the step, which is rolled back: a `strata_sdk.Error` is reported with
its message, any other exception as ``Type: message`` after its traceback is logged at error level.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Callable, Dict, List, TypeVar

from componentize_py_types import Err

from . import log, sql
from .errors import Constraint, Decode, Denied, Error, Limit, Other, SqlError, Syntax

__version__ = "0.1.0"

__all__ = [
    "sql",
    "log",
    "transform",
    "seed",
    "check",
    "Error",
    "SqlError",
    "Syntax",
    "Constraint",
    "Denied",
    "Limit",
    "Other",
    "Decode",
]

F = TypeVar("F", bound=Callable[..., Any])


def _text(e: BaseException) -> str:
    """``str(e)``, whatever its ``__str__`` does, as text the host can take (a lone surrogate
    escaped)."""
    try:
        text = str(e)
    except BaseException:  # noqa: BLE001 - a broken __str__ must not hide the error
        text = f"<{type(e).__name__} whose message cannot be shown>"
    return log.printable(text)


def _traceback(e: BaseException) -> str:
    """The traceback of `e` (and of the exceptions it was raised from), without source lines:
    Python's own formatting reads them from the guest's files, and a component has no files
    (WASI is stubbed out, and touching it traps, which would hide the error)."""
    lines: List[str] = []
    seen = set()
    # The chain, newest first: each exception with what links it to the one before it.
    chain: List[Any] = []
    current: Any = e
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "The above exception was the direct cause of the following exception:"
        elif not current.__suppress_context__ and current.__context__ is not None:
            current, link = current.__context__, "During handling of the above exception, another exception occurred:"
        else:
            current = None
    for n, (exc, _) in enumerate(reversed(chain)):
        if n:
            lines.append(chain[len(chain) - n][1])
        lines.append("Traceback (most recent call last):")
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            code = frame.f_code
            lines.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}')
        lines.append(f"{type(exc).__name__}: {_text(exc)}")
    return "\n".join(lines)


def _report(e: BaseException) -> Err:
    if isinstance(e, Error):
        return Err(_text(e))
    log.error(_traceback(e))
    return Err(f"{type(e).__name__}: {_text(e)}")


def _export(fn: Callable[..., Any], name: str, method: Callable[..., Any]) -> None:
    """Binds the `WitWorld` class componentize-py looks for in the module that defines `fn`."""
    module = sys.modules.get(fn.__module__)
    namespace = module.__dict__ if module is not None else fn.__globals__
    if "WitWorld" in namespace:
        raise Error(
            f"{fn.__module__} exports twice: a component exports one function, with one of "
            "@transform, @seed or @check"
        )
    namespace["WitWorld"] = type("WitWorld", (), {name: method, "__doc__": fn.__doc__})


def transform(fn: F) -> F:
    """Exports ``fn() -> None`` as the `run` of the `transform` world: it runs once, after
    do.sql, inside the step's transaction."""

    def run(self: object) -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - sys.exit() too: reported, not a trap
            raise _report(e) from None

    _export(fn, "run", run)
    return fn


def seed(fn: F) -> F:
    """Exports ``fn(params: dict) -> None`` as the `seed` of the `seed` world; `params` is the
    ``"$seed"`` entry of the data.json beside seed.wasm, ``{}`` when there is none."""

    def seed_(self: object, params: str) -> None:
        try:
            parsed = json.loads(params) if params.strip() else {}
            if not isinstance(parsed, dict):
                raise Decode(f'the "$seed" parameters must be a JSON object, not {params[:80]}')
            fn(parsed)
        except BaseException as e:  # noqa: BLE001 - sys.exit() too: reported, not a trap
            raise _report(e) from None

    _export(fn, "seed", seed_)
    return fn


def check(fn: F) -> F:
    """Exports ``fn() -> list[str]`` as the `check` of the `check` world: one message per
    violation; an empty list passes."""

    def check_(self: object) -> List[str]:
        try:
            found = fn()
            if found is None:
                return []
            messages = [str(m) for m in found]
        except BaseException as e:  # noqa: BLE001 - sys.exit() too: reported, not a trap
            raise _report(e) from None
        return messages

    _export(fn, "check", check_)
    return fn


Params = Dict[str, Any]
