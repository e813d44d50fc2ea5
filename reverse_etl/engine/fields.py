"""From a sync's mapping and the model's column types to encoded fields.

Each mapped value becomes a *field*: a column holding the exact JSON text that
Insider receives for it (``"Ada"``, ``36``, ``["a","b"]``,
``"1980-01-01T00:00:00Z"``), or NULL when there is nothing to send. Encoding and
validation are SQL expressions DuckDB evaluates over whole columns; Python only
writes the SQL. Comparing JSON texts makes the diff exact and independent of the
warehouse's column types (an INT that becomes a BIGINT is not a change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reverse_etl.config.schema import DEFAULT_ATTRIBUTES, SyncConfig
from reverse_etl.engine.sqltext import ident, literal
from reverse_etl.errors import ConfigError

EMAIL_RE = r"^.+@.+\..+$"
PHONE_RE = r"^\+[1-9][0-9]{6,14}$"
COUNTRY_RE = r"^[A-Z]{2}$"
LANGUAGE_RE = r"^[a-z]{2}_[A-Z]{2}$"
RFC3339_FMT = "%Y-%m-%dT%H:%M:%SZ"
CUSTOM_ATTRIBUTE_CAP = 255

_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}


@dataclass(frozen=True)
class Field:
    """One mapped value of a sync."""

    group: Literal["identifiers", "attributes"]
    insider_name: str
    custom: bool
    column: str
    """The model column (as the model spells it)."""

    @property
    def name(self) -> str:
        """Column name in the engine's frames and in the snapshot."""
        middle = ".custom." if self.custom else "."
        return f"{self.group}{middle}{self.insider_name}"


@dataclass(frozen=True)
class EncodedField:
    """A field with the SQL that encodes it and the SQL that explains a bad value."""

    field: Field
    value_sql: str
    """JSON text of the value, or NULL when there is nothing to send."""
    reason_sql: str
    """NULL when the value is acceptable, else a one-line reason naming the field."""


def plan_fields(sync: SyncConfig) -> tuple[list[Field], Field]:
    """The sync's fields, and the one whose value keys the snapshot."""
    fields: list[Field] = []
    idents = sync.identifiers
    moved_to_attributes: list[tuple[str, str]] = []
    for name, column in (("uuid", idents.uuid), ("email", idents.email),
                         ("phone_number", idents.phone_number)):
        if column is None:
            continue
        as_identifier = not (
            (name == "email" and not sync.options.treat_email_as_identifier)
            or (name == "phone_number" and not sync.options.treat_phone_as_identifier)
        )
        if as_identifier:
            fields.append(Field("identifiers", name, False, column))
        else:
            moved_to_attributes.append((name, column))
    for name, column in idents.custom.items():
        fields.append(Field("identifiers", name, True, column))
    if not fields:
        raise ConfigError(
            f"sync {sync.name!r}: no identifier left once email/phone are not treated as "
            "identifiers; map uuid or a custom identifier"
        )
    attributes = dict(moved_to_attributes)
    attributes.update(sync.attributes)
    for name, column in attributes.items():
        fields.append(Field("attributes", name, name not in DEFAULT_ATTRIBUTES, column))
    custom_count = sum(1 for f in fields if f.group == "attributes" and f.custom)
    if custom_count > CUSTOM_ATTRIBUTE_CAP:
        raise ConfigError(
            f"sync {sync.name!r} maps {custom_count} custom attributes; Insider allows at most "
            f"{CUSTOM_ATTRIBUTE_CAP} per tenant: drop some from attributes"
        )
    key = fields[0]  # uuid first, then email, phone, custom: the most stable identity
    return fields, key


def resolve_columns(fields: list[Field], model_columns: dict[str, str], sync_name: str,
                    model_name: str) -> dict[str, str]:
    """Map each field's configured column to the model's real column (case-insensitive).

    ``model_columns`` maps lower-cased column name → real name. Returns field name →
    real column name; a missing column is a :class:`ConfigError` naming the mapping.
    """
    resolved: dict[str, str] = {}
    for field in fields:
        real = model_columns.get(field.column.lower())
        if real is None:
            available = ", ".join(sorted(model_columns.values())) or "none"
            raise ConfigError(
                f"sync {sync_name!r}: {field.group}.{field.insider_name} maps column "
                f"{field.column!r}, which model {model_name!r} does not return (columns: {available})"
            )
        resolved[field.name] = real
    return resolved


def encode_field(field: Field, column: str, duck_type: str) -> EncodedField:
    """SQL encoding and validation of one field, chosen by the column's DuckDB type."""
    col = ident(column)
    label = f"{field.group}.{field.insider_name}"
    if field.group == "identifiers":
        return _encode_identifier(field, col, label)
    return _encode_attribute(field, col, label, duck_type.upper())


def _encode_identifier(field: Field, col: str, label: str) -> EncodedField:
    # Identifiers are strings for Insider (a numeric customer id becomes "42").
    text = f"nullif(trim(CAST({col} AS VARCHAR)), '')"
    value = f"to_json({text})"
    reasons = []
    if field.insider_name == "email" and not field.custom:
        reasons.append(_regex_reason(text, EMAIL_RE, f"{label}: not a valid email address: "))
    elif field.insider_name == "phone_number" and not field.custom:
        reasons.append(_regex_reason(text, PHONE_RE, f"{label}: not an E.164 phone number (+ and 7-15 digits): "))
    return EncodedField(field, value, _first_reason(reasons))


def _encode_attribute(field: Field, col: str, label: str, duck_type: str) -> EncodedField:
    name = field.insider_name
    if duck_type == "VARCHAR":
        text = col
        if name == "birthday" and not field.custom:
            parsed = f"try_cast({text} AS TIMESTAMPTZ)"
            value = f"CASE WHEN {parsed} IS NOT NULL THEN {_rfc3339(parsed, tz=True)} END"
            reason = (f"CASE WHEN {text} IS NOT NULL AND {parsed} IS NULL THEN "
                      f"{literal(label + ': not an RFC3339 date: ')} || {text} END")
            return EncodedField(field, value, reason)
        value = f"to_json({text})"
        checks = []
        if name == "email" and not field.custom:
            checks.append(_regex_reason(text, EMAIL_RE, f"{label}: not a valid email address: "))
        elif name == "phone_number" and not field.custom:
            checks.append(_regex_reason(text, PHONE_RE, f"{label}: not an E.164 phone number: "))
        elif name == "country" and not field.custom:
            checks.append(_regex_reason(text, COUNTRY_RE, f"{label}: not an ISO 3166-1 alpha-2 code: "))
        elif name == "language" and not field.custom:
            checks.append(_regex_reason(text, LANGUAGE_RE, f"{label}: not a language like en_US: "))
        return EncodedField(field, value, _first_reason(checks))
    if duck_type == "BOOLEAN" or duck_type in _INTEGER_TYPES or duck_type.startswith("DECIMAL"):
        return EncodedField(field, f"to_json({col})", "NULL")
    if duck_type in _FLOAT_TYPES:
        reason = (f"CASE WHEN {col} IS NOT NULL AND NOT isfinite({col}) THEN "
                  f"{literal(label + ': not a finite number: ')} || CAST({col} AS VARCHAR) END")
        return EncodedField(field, f"CASE WHEN isfinite({col}) THEN to_json({col}) END", reason)
    if duck_type == "DATE" or duck_type.startswith("TIMESTAMP"):
        tz = "WITH TIME ZONE" in duck_type
        return EncodedField(field, _rfc3339(col, tz=tz), "NULL")
    if duck_type.endswith("[]"):
        element = duck_type[:-2]
        if element == "VARCHAR" or element in _INTEGER_TYPES or element in _FLOAT_TYPES or element.startswith("DECIMAL"):
            # Nulls inside an array have no Insider meaning; they are dropped.
            return EncodedField(field, f"to_json(list_filter({col}, lambda x: x IS NOT NULL))", "NULL")
        kind = "booleans" if element == "BOOLEAN" else "objects" if element.startswith(("STRUCT", "MAP", "JSON")) else element.lower()
        return _always_rejected(field, col, f"{label}: arrays of {kind} are not allowed by Insider")
    if duck_type.startswith(("STRUCT", "MAP", "JSON", "UNION")):
        return _always_rejected(field, col, f"{label}: objects are not allowed by Insider; flatten it into columns")
    return _always_rejected(field, col, f"{label}: values of type {duck_type} are not supported; cast it to text or a number")


def _always_rejected(field: Field, col: str, message: str) -> EncodedField:
    return EncodedField(field, "NULL", f"CASE WHEN {col} IS NOT NULL THEN {literal(message)} END")


def _rfc3339(expr: str, *, tz: bool) -> str:
    utc = f"timezone('UTC', {expr})" if tz else f"CAST({expr} AS TIMESTAMP)"
    return f"to_json(strftime({utc}, {literal(RFC3339_FMT)}))"


def _regex_reason(text: str, pattern: str, message: str) -> str:
    return (f"CASE WHEN {text} IS NOT NULL AND NOT regexp_full_match({text}, {literal(pattern)}) "
            f"THEN {literal(message)} || {text} END")


def _first_reason(reasons: list[str]) -> str:
    if not reasons:
        return "NULL"
    if len(reasons) == 1:
        return reasons[0]
    return "coalesce(" + ", ".join(reasons) + ")"
