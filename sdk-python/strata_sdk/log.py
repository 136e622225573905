"""Messages from a component, shown to the user and kept with the step's audit trail."""

from __future__ import annotations

from typing import Any

from wit_world.imports import log as _wit

__all__ = ["debug", "info", "warn", "error", "printable"]


def printable(text: str) -> str:
    """`text` as the host can take it: a string crossing into the host must be valid UTF-8, so
    a lone surrogate (``"\\ud800"``, which Python strings may hold) is written as its escape."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _send(level: Any, message: object) -> None:
    try:
        text = str(message)
    except BaseException:  # noqa: BLE001 - a broken __str__ must not end the component
        text = f"<{type(message).__name__} that cannot be shown>"
    _wit.log(level, printable(text))


def debug(message: object) -> None:
    """Detail for whoever debugs the component."""
    _send(_wit.Level.DEBUG, message)


def info(message: object) -> None:
    """Progress worth showing."""
    _send(_wit.Level.INFO, message)


def warn(message: object) -> None:
    """Something odd that does not fail the step."""
    _send(_wit.Level.WARN, message)


def error(message: object) -> None:
    """Something wrong; usually followed by the component failing."""
    _send(_wit.Level.ERROR, message)
