"""Small helpers for writing SQL text safely."""

from __future__ import annotations


def ident(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """Quote a string literal for DuckDB."""
    return "'" + text.replace("'", "''") + "'"


def json_key(name: str) -> str:
    """SQL literal of a JSON object key with its colon, e.g. ``'"name":'``."""
    return literal('"' + name + '":')
