"""Messages from a component, shown to the user and kept with the step's audit trail."""

from __future__ import annotations

from wit_world.imports import log as _wit

__all__ = ["debug", "info", "warn", "error"]


def debug(message: object) -> None:
    """Detail for whoever debugs the component."""
    _wit.log(_wit.Level.DEBUG, str(message))


def info(message: object) -> None:
    """Progress worth showing."""
    _wit.log(_wit.Level.INFO, str(message))


def warn(message: object) -> None:
    """Something odd that does not fail the step."""
    _wit.log(_wit.Level.WARN, str(message))


def error(message: object) -> None:
    """Something wrong; usually followed by the component failing."""
    _wit.log(_wit.Level.ERROR, str(message))
