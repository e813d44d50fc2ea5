"""Resolve a sync's model to the SQL the warehouse runs.

A model is ``models/<name>.sql``. A model may select from another model with
``{{ ref('other') }}``, which is inlined as a parenthesised subquery, so the same
SQL runs on any warehouse without creating views there.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from reverse_etl.errors import ConfigError
from reverse_etl.project.files import read_text

_REF = re.compile(r"\{\{\s*ref\(\s*(['\"])(?P<name>[A-Za-z0-9_.-]+)\1\s*\)\s*\}\}")
_ANY_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


@dataclass(frozen=True)
class ResolvedModel:
    """A model's final SQL and where it came from."""

    name: str
    sql: str
    origin: str
    """``models/<name>.sql`` or ``dbt:<relation>``, for messages."""

    @property
    def fingerprint(self) -> str:
        """Hash of the SQL: a change means the sync's snapshot no longer applies."""
        # Without the newline that guards a trailing ``-- comment`` (same hash as before it existed).
        return hashlib.sha256(self.sql.rstrip("\n").encode()).hexdigest()[:16]


def resolve_model(models_dir: Path, name: str, *, context: str = "") -> ResolvedModel:
    """Read ``models_dir/<name>.sql`` and inline its ``ref()``s (cycles are errors)."""
    sql = _render(models_dir, name, (), context)
    return ResolvedModel(name=name, sql=sql, origin=f"{models_dir.name}/{name}.sql")


def available_models(models_dir: Path) -> list[str]:
    """Names of the ``.sql`` files in the models directory."""
    return sorted(p.stem for p in models_dir.glob("*.sql")) if models_dir.is_dir() else []


def _render(models_dir: Path, name: str, stack: tuple[str, ...], context: str) -> str:
    if name in stack:
        cycle = " -> ".join((*stack, name))
        raise ConfigError(f"{models_dir.name}/{stack[-1]}.sql: ref() cycle {cycle}; break the cycle")
    path = models_dir / f"{name}.sql"
    if not path.is_file():
        known = available_models(models_dir)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"available: {', '.join(known) or 'none'}"
        where = f"{context}: " if context else ""
        raise ConfigError(f"{where}model {name!r} not found: expected {models_dir.name}/{name}.sql ({hint})")
    text = read_text(path, f"{models_dir.name}/{name}.sql")

    def inline(match: re.Match[str]) -> str:
        return "(" + _render(models_dir, match.group("name"), (*stack, name), context) + ")"

    rendered = _REF.sub(inline, text)
    leftover = _ANY_TEMPLATE.search(_REF.sub("", text))
    if leftover:
        line = text[: text.find(leftover.group(0))].count("\n") + 1
        raise ConfigError(
            f"{models_dir.name}/{name}.sql:{line}: unsupported template {leftover.group(0)[:40]!r}; "
            "plain SQL and {{ ref('model') }} only (use a dbt model for Jinja)"
        )
    return _strip_sql(rendered)


def _strip_sql(sql: str) -> str:
    # A trailing semicolon breaks inlining as a subquery, and so does a last line
    # ending in a ``-- comment`` (it would comment out the closing parenthesis):
    # such SQL ends with a newline, whoever wraps it.
    sql = sql.strip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    if "--" in sql.rsplit("\n", 1)[-1]:
        sql += "\n"
    return sql
