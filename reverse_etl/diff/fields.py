"""Mapped values as the engine sees them: a field, its column, and its encoding SQL.

A destination decides which fields a sync has and how each is encoded and
validated (the SQL in :class:`EncodedField`); the engine only moves them
through the diff. ``name`` is the column name in the engine's tables and the
snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reverse_etl.errors import ConfigError

Group = Literal["identifiers", "attributes", "event", "params"]


@dataclass(frozen=True)
class Field:
    """One mapped value of a sync."""

    group: Group
    insider_name: str
    custom: bool
    column: str | None
    """The model column (as the model spells it), or None for a constant."""
    constant: str | None = None

    @property
    def name(self) -> str:
        """Column name in the engine's frames and in the snapshot."""
        middle = ".custom." if self.custom else "."
        return f"{self.group}{middle}{self.insider_name}"

    @property
    def label(self) -> str:
        """How messages name the field (``attributes.city``)."""
        return f"{self.group}.{self.insider_name}"


@dataclass(frozen=True)
class PlainForm:
    """A field's shorter encoding, exact on every row that does not need the full one.

    The engine evaluates ``unless_sql`` over the rows it is about to encode and uses
    ``value_sql`` and ``reason_sql`` when it is true on none of them. DuckDB binds and
    optimises every expression it is given, whichever rows reach it: a text attribute's
    array handling (for the rare text that looks like an array) was most of a run's
    encoding SQL, planned again on every run that changed a row.
    """

    unless_sql: str
    """True on a row the plain form would encode differently (NULL counts as false)."""
    value_sql: str
    reason_sql: str


@dataclass(frozen=True)
class EncodedField:
    """A field with the SQL that encodes it and the SQL that explains a bad value."""

    field: Field
    value_sql: str
    """JSON text of the value, or NULL when there is nothing to send."""
    reason_sql: str
    """NULL when the value is acceptable, else a one-line reason naming the field."""
    plain: PlainForm | None = None
    """The same encoding, shorter, for runs where no row needs the full one."""


def resolve_columns(fields: list[Field], model_columns: dict[str, str], sync_name: str,
                    model_name: str) -> dict[str, str]:
    """Map each field's configured column to the model's real column (case-insensitive).

    ``model_columns`` maps lower-cased column name → real name. Returns field name →
    real column name; a missing column is a :class:`ConfigError` naming the mapping.
    """
    resolved: dict[str, str] = {}
    for field in fields:
        if field.column is None:
            continue
        real = model_columns.get(field.column.lower())
        if real is None:
            available = ", ".join(sorted(model_columns.values())) or "none"
            raise ConfigError(
                f"sync {sync_name!r}: {field.label} maps column {field.column!r}, "
                f"which model {model_name!r} does not return (columns: {available})"
            )
        resolved[field.name] = real
    return resolved
