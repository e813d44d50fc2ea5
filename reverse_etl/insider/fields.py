"""From a sync's mapping and the model's column types to encoded fields.

Each mapped value becomes a *field*: a column holding the exact JSON text that
Insider receives for it (``"Ada"``, ``36``, ``["a","b"]``,
``"1980-01-01T00:00:00Z"``), or NULL when there is nothing to send. Encoding and
validation are SQL expressions DuckDB evaluates over whole columns; Python only
writes the SQL. Comparing JSON texts makes the diff exact and independent of the
warehouse's column types (an INT that becomes a BIGINT is not a change).
"""

from __future__ import annotations

from reverse_etl.diff.fields import EncodedField, Field, PlainForm
from reverse_etl.diff.sqltext import ident, literal, trimmed_text_sql
from reverse_etl.errors import ConfigError
from reverse_etl.insider.config import SyncConfig
from reverse_etl.insider.rules import (
    COUNTRY_RE,
    CURRENCY_RE,
    CUSTOM_ATTRIBUTE_CAP,
    DEFAULT_ATTRIBUTES,
    EMAIL_RE,
    EVENT_NAME_RE,
    LANGUAGE_RE,
    PHONE_RE,
    RFC3339_FMT,
    STANDARD_EVENT_PARAMS,
)

_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
# Integers Insider parses as doubles are exact only up to 2^53.
_WIDE_INTEGER_TYPES = {"BIGINT", "HUGEINT", "UBIGINT", "UHUGEINT"}
_MAX_EXACT_INT = 2**53
# Default date-time attributes Insider types as dates (RFC 3339, years 0001-9999).
_DATE_ATTRIBUTES = {"birthday"}
# Text that looks like an array (`['a', 'b']`, `[1, 2]`) is parsed into one.
_ARRAY_TEXT_RE = r"^\s*\[.*\]\s*$"

# ------------------------------------------------------------------ planning
def identifier_fields(sync: SyncConfig) -> tuple[list[Field], list[tuple[str, str]]]:
    """Identifier fields, plus (attribute, column) pairs moved to attributes by the options."""
    fields: list[Field] = []
    moved: list[tuple[str, str]] = []
    idents = sync.identifiers
    for name, column in (("uuid", idents.uuid), ("email", idents.email),
                         ("phone_number", idents.phone_number)):
        if column is None:
            continue
        demoted = ((name == "email" and not sync.options.treat_email_as_identifier)
                   or (name == "phone_number" and not sync.options.treat_phone_as_identifier))
        if demoted:
            moved.append((name, column))
        else:
            fields.append(Field("identifiers", name, False, column))
    for name, column in idents.custom.items():
        fields.append(Field("identifiers", name, True, column))
    if not fields:
        raise ConfigError(
            f"sync {sync.name!r}: no identifier left once email/phone are not treated as "
            "identifiers; map uuid or a custom identifier"
        )
    return fields, moved


def attribute_fields(sync: SyncConfig, moved: list[tuple[str, str]]) -> list[Field]:
    """Attribute fields (default ones at the root, the rest custom), capped at 255 custom."""
    attributes = dict(moved)
    attributes.update(sync.attributes)
    fields = [Field("attributes", name, name not in DEFAULT_ATTRIBUTES, column)
              for name, column in attributes.items()]
    custom_count = sum(1 for f in fields if f.custom)
    if custom_count > CUSTOM_ATTRIBUTE_CAP:
        raise ConfigError(
            f"sync {sync.name!r} maps {custom_count} custom attributes; Insider allows at most "
            f"{CUSTOM_ATTRIBUTE_CAP} per tenant: drop some from attributes"
        )
    return fields


def param_field(name: str, column: str) -> Field:
    """An event parameter: standard ones at the root of event_params, others custom."""
    return Field("params", name, name not in STANDARD_EVENT_PARAMS, column)


# ------------------------------------------------------------------ encoding
def encode_field(field: Field, column: str | None, duck_type: str | None, *,
                 prefix: str = "") -> EncodedField:
    """SQL encoding and validation of one field, chosen by the column's DuckDB type."""
    if field.constant is not None:
        return EncodedField(field, f"to_json({literal(field.constant)})", "NULL")
    assert column is not None and duck_type is not None
    col = prefix + ident(column)
    kind = duck_type.upper()
    if field.group == "identifiers":
        return _encode_identifier(field, col)
    if field.group == "event":
        return _encode_event_field(field, col, kind)
    return _encode_value(field, col, kind)


def _encode_identifier(field: Field, col: str) -> EncodedField:
    # Identifiers are strings for Insider (a numeric customer id becomes "42").
    text = trimmed_text_sql(col)
    reasons = []
    if field.insider_name == "email" and not field.custom:
        reasons.append(_regex_reason(text, EMAIL_RE, f"{field.label}: not a valid email address: "))
    elif field.insider_name == "phone_number" and not field.custom:
        reasons.append(_regex_reason(text, PHONE_RE, f"{field.label}: not an E.164 phone number (+ and 7-15 digits): "))
    return EncodedField(field, f"to_json({text})", _first_reason(reasons))


def _encode_event_field(field: Field, col: str, kind: str) -> EncodedField:
    if field.insider_name == "event_name":
        text = trimmed_text_sql(col)
        reason = (f"CASE WHEN {text} IS NULL THEN {literal('event.event_name: missing')} "
                  f"WHEN NOT regexp_full_match({text}, {literal(EVENT_NAME_RE)}) THEN "
                  f"{literal('event.event_name: must match ' + EVENT_NAME_RE + ': ')} || {text} END")
        return EncodedField(field, f"to_json({text})", reason)
    # timestamp
    value, parse_reason = _datetime(col, kind, field.label)
    missing = f"CASE WHEN {col} IS NULL THEN {literal('event.timestamp: missing; every event needs a time')} END"
    return EncodedField(field, value, _first_reason([missing, parse_reason]))


def _encode_value(field: Field, col: str, kind: str) -> EncodedField:
    """Attributes and event parameters: Insider's allowed value types (§8)."""
    name, label, root = field.insider_name, field.label, not field.custom
    attribute = root and field.group == "attributes"
    if attribute and name == "age":
        return _encode_age(field, col, kind)
    if attribute and name == "gender" and kind != "VARCHAR":
        return _rejected_with_value(field, col, f"{label}: must be text, not {kind}: ")
    if attribute and name in _DATE_ATTRIBUTES and not (
            kind == "VARCHAR" or kind == "DATE" or kind.startswith("TIMESTAMP")):
        return _rejected_with_value(field, col, f"{label}: expected a date or timestamp, not {kind}: ")
    if kind == "VARCHAR":
        if attribute and name in _DATE_ATTRIBUTES:
            value, reason = _datetime(col, kind, label)
            return EncodedField(field, value, reason)
        if root and name == "taxonomy" and field.group == "params":
            # A single category is a one-element taxonomy.
            parsed, reason = _text_array(col, label)
            # (A NULL category is no taxonomy, not [null].)
            return EncodedField(field, f"CASE WHEN {col} IS NOT NULL THEN coalesce({parsed}, to_json([{col}])) END",
                                reason, PlainForm(_may_be_array(col), f"CASE WHEN {col} IS NOT NULL THEN to_json([{col}]) END",
                                                  "NULL"))
        checks = []
        pattern = {
            ("attributes", "email"): (EMAIL_RE, "not a valid email address"),
            ("attributes", "phone_number"): (PHONE_RE, "not an E.164 phone number"),
            ("attributes", "country"): (COUNTRY_RE, "not an ISO 3166-1 alpha-2 code"),
            ("attributes", "language"): (LANGUAGE_RE, "not a language like en_US"),
            ("params", "currency"): (CURRENCY_RE, "not an ISO 4217 currency code"),
        }.get((field.group, name)) if root else None
        if pattern:
            checks.append(_regex_reason(col, pattern[0], f"{label}: {pattern[1]}: "))
        parsed, array_reason = _text_array(col, label)
        plain = PlainForm(_may_be_array(col), f"to_json({col})", _first_reason(checks))
        return EncodedField(field, f"coalesce({parsed}, to_json({col}))", _first_reason([*checks, array_reason]), plain)
    # Arrays first: DECIMAL(p,s)[] must not be taken for a DECIMAL.
    if kind.endswith("[]"):
        element = kind[:-2]
        if element == "VARCHAR" or element in _INTEGER_TYPES or element in _FLOAT_TYPES or element.startswith("DECIMAL"):
            # Nulls inside an array have no Insider meaning; they are dropped.
            return EncodedField(field, f"to_json(list_filter({col}, lambda x: x IS NOT NULL))",
                                _element_reason(col, element, label))
        what = ("booleans" if element == "BOOLEAN"
                else "objects" if element.startswith(("STRUCT", "MAP", "JSON")) else element.lower())
        return _always_rejected(field, col, f"{label}: arrays of {what} are not allowed by Insider")
    fractional = kind in _FLOAT_TYPES or kind.startswith("DECIMAL")
    if root and field.group == "params" and name == "quantity" and fractional:
        # Insider wants an integer quantity: 2.0 is sent as 2, 2.5 is rejected.
        reason = (f"CASE WHEN {col} IS NOT NULL AND {col} <> round({col}) THEN "
                  f"{literal(label + ': must be a whole number: ')} || CAST({col} AS VARCHAR) END")
        return EncodedField(field, f"to_json(CAST({col} AS BIGINT))", reason)
    if kind == "BOOLEAN" or kind in _INTEGER_TYPES or kind.startswith("DECIMAL"):
        return EncodedField(field, f"to_json({col})", _exact_number_reason(col, kind, label))
    if kind in _FLOAT_TYPES:
        reason = (f"CASE WHEN {col} IS NOT NULL AND NOT isfinite({col}) THEN "
                  f"{literal(label + ': not a finite number: ')} || CAST({col} AS VARCHAR) END")
        return EncodedField(field, f"CASE WHEN isfinite({col}) THEN to_json({col}) END", reason)
    if kind == "DATE" or kind.startswith("TIMESTAMP"):
        value, reason = _datetime(col, kind, label)
        return EncodedField(field, value, reason)
    if kind.startswith(("STRUCT", "MAP", "JSON", "UNION")):
        return _always_rejected(field, col, f"{label}: objects are not allowed by Insider; flatten it into columns")
    return _always_rejected(field, col, f"{label}: values of type {kind} are not supported; cast it to text or a number")


def _encode_age(field: Field, col: str, kind: str) -> EncodedField:
    """``age`` is an integer for Insider: 36.0 is sent as 36; 36.5, "abc" or true are rejected."""
    label = field.label
    if kind in _INTEGER_TYPES:
        return EncodedField(field, f"to_json({col})", _exact_number_reason(col, kind, label))
    if kind == "VARCHAR":
        number = f"try_cast(trim({col}) AS DOUBLE)"
        shown = col
    elif kind in _FLOAT_TYPES or kind.startswith("DECIMAL"):
        number = f"CAST({col} AS DOUBLE)"
        shown = f"CAST({col} AS VARCHAR)"
    else:
        return _rejected_with_value(field, col, f"{label}: must be an integer, not {kind}: ")
    whole = (f"({number} IS NOT NULL AND isfinite({number}) AND {number} = round({number}) "
             f"AND abs({number}) <= {_MAX_EXACT_INT})")
    reason = (f"CASE WHEN {col} IS NOT NULL AND NOT {whole} THEN "
              f"{literal(label + ': must be an integer: ')} || {shown} END")
    return EncodedField(field, f"CASE WHEN {whole} THEN to_json(CAST({number} AS BIGINT)) END", reason)


def _exact_number_reason(col: str, kind: str, label: str) -> str:
    """Reason for a number a JSON reader parsing doubles would change (NULL when exact)."""
    if kind in _WIDE_INTEGER_TYPES:
        return (f"CASE WHEN {col} > {_MAX_EXACT_INT} OR {col} < -{_MAX_EXACT_INT} THEN "
                f"{literal(label + ': beyond 2^53, Insider would round it: ')} || CAST({col} AS VARCHAR) END")
    if kind.startswith("DECIMAL"):
        return (f"CASE WHEN {col} IS NOT NULL AND try_cast(CAST({col} AS DOUBLE) AS {kind}) "
                f"IS DISTINCT FROM {col} THEN "
                f"{literal(label + ': too many significant digits for a double, Insider would round it: ')} "
                f"|| CAST({col} AS VARCHAR) END")
    return "NULL"


def _element_reason(col: str, element: str, label: str) -> str:
    """Reason for an array whose elements break the rules of a scalar of their type
    (the first offending element is named); NULL when every element is fine."""
    if element in _WIDE_INTEGER_TYPES:
        bad = f"list_filter({col}, lambda x: x > {_MAX_EXACT_INT} OR x < -{_MAX_EXACT_INT})"
        message = ": an element is beyond 2^53, Insider would round it: "
    elif element in _FLOAT_TYPES:
        bad = f"list_filter({col}, lambda x: NOT isfinite(x))"
        message = ": an element is not a finite number: "
    elif element.startswith("DECIMAL"):
        bad = f"list_filter({col}, lambda x: try_cast(CAST(x AS DOUBLE) AS {element}) IS DISTINCT FROM x)"
        message = ": an element has too many significant digits for a double, Insider would round it: "
    else:
        return "NULL"
    return f"CASE WHEN len({bad}) > 0 THEN {literal(label + message)} || CAST({bad}[1] AS VARCHAR) END"


def _may_be_array(col: str) -> str:
    """True on text :func:`_text_array` may take for an array: without a ``[`` it takes none."""
    return f"contains({col}, '[')"


def _text_array(col: str, label: str) -> tuple[str, str]:
    """(JSON array or NULL, reason) for text like ``['a', 'b']`` or ``[1, 2]``.

    JSON text is taken as is; Python-style single quotes are accepted too. The
    array must hold only strings or only numbers (Insider's rule).
    """
    # contains('[') first: necessary for the pattern, and far cheaper than the regex, which
    # (conjunctions run left to right on the rows still true) then sees only bracketed texts.
    # (Built on _may_be_array, so a text it rejects is never taken here: the plain forms rely on it.)
    looks = f"({col} IS NOT NULL AND {_may_be_array(col)} AND regexp_full_match({col}, {literal(_ARRAY_TEXT_RE)}))"
    as_json = (f"CASE WHEN json_valid({col}) THEN {col}::JSON "
               f"WHEN json_valid(replace({col}, '''', '\"')) THEN replace({col}, '''', '\"')::JSON END")
    # The parsed text is bound once per expression, as the parameter of a lambda over a
    # one-element list. Spelled out wherever it is used, it made up most of a sync's encoding
    # SQL, and DuckDB's binding and optimising of that text cost more than running it on 10k
    # rows. json_type over '$[*]' lists the element types with no per-element lambda.
    parsed, element = "__reverse_etl_json", "__reverse_etl_element"

    def with_parsed(body: str) -> str:
        return f"CASE WHEN {looks} THEN list_transform([{as_json}], lambda {parsed}: {body})[1] END"

    types = f"json_type({parsed}, '$[*]')"
    is_array = f"json_type({parsed}) = 'ARRAY'"
    uniform = f"(list_has_all(['VARCHAR'], {types}) OR list_has_all(['BIGINT', 'UBIGINT', 'DOUBLE'], {types}))"
    value = with_parsed(f"CASE WHEN {is_array} AND {uniform} THEN json({parsed})::VARCHAR END")
    # An integer element beyond 2^53 (kept as written in the JSON text) would be rounded by Insider.
    integral = (f"(json_type({element}) IN ('BIGINT', 'UBIGINT') OR "
                f"(json_type({element}) = 'DOUBLE' AND NOT regexp_matches(CAST({element} AS VARCHAR), '[.eE]')))")
    big = (f"list_filter(CAST(json_extract({parsed}, '$[*]') AS JSON[]), lambda {element}: {integral} AND "
           f"coalesce(abs(try_cast(CAST({element} AS VARCHAR) AS HUGEINT)) > {_MAX_EXACT_INT}, TRUE))")
    mixed = literal(label + ": arrays must hold only strings or only numbers (no objects, booleans or mixed types): ")
    rounded = literal(label + ": an element is beyond 2^53, Insider would round it: ")
    reason = with_parsed(f"CASE WHEN NOT {is_array} THEN NULL WHEN NOT {uniform} THEN {mixed} || {col} "
                         f"ELSE {rounded} || CAST(({big})[1] AS VARCHAR) END")
    return value, reason


def _datetime(col: str, kind: str, label: str) -> tuple[str, str]:
    """(RFC 3339 UTC JSON text, reason) for a DATE, TIMESTAMP[TZ] or text column."""
    if kind == "VARCHAR":
        parsed = f"try_cast({col} AS TIMESTAMPTZ)"
        reason = (f"CASE WHEN {col} IS NOT NULL AND {parsed} IS NULL THEN "
                  f"{literal(label + ': not an RFC 3339 date-time: ')} || {col} END")
        in_range = _in_range(parsed, tz=True)
        range_reason = (f"CASE WHEN {parsed} IS NOT NULL AND NOT {in_range} THEN "
                        f"{literal(label + ': outside years 0001-9999 (RFC 3339): ')} || {col} END")
        value = f"CASE WHEN {parsed} IS NOT NULL AND {in_range} THEN {_rfc3339(parsed, tz=True)} END"
        return value, _first_reason([reason, range_reason])
    if kind == "DATE" or kind.startswith("TIMESTAMP"):
        in_range = _in_range(col, tz="WITH TIME ZONE" in kind)
        reason = (f"CASE WHEN {col} IS NOT NULL AND NOT {in_range} THEN "
                  f"{literal(label + ': outside years 0001-9999 (RFC 3339): ')} || CAST({col} AS VARCHAR) END")
        value = f"CASE WHEN {in_range} THEN {_rfc3339(col, tz='WITH TIME ZONE' in kind)} END"
        return value, reason
    return "NULL", f"CASE WHEN {col} IS NOT NULL THEN {literal(label + ': expected a date or timestamp, not ' + kind)} END"


def timestamp_sql(col: str, kind: str) -> str:
    """The column as a UTC TIMESTAMP (for TTL checks), NULL when unparseable."""
    if kind.upper() == "VARCHAR":
        return f"CAST(timezone('UTC', try_cast({col} AS TIMESTAMPTZ)) AS TIMESTAMP)"
    if "WITH TIME ZONE" in kind.upper():
        return f"CAST(timezone('UTC', {col}) AS TIMESTAMP)"
    if kind.upper() == "DATE" or kind.upper().startswith("TIMESTAMP"):
        return f"CAST({col} AS TIMESTAMP)"
    return "CAST(NULL AS TIMESTAMP)"  # not a date: refused by its reason, not by the TTL


def _in_range(expr: str, *, tz: bool = False) -> str:
    """SQL: the date/timestamp is finite and its year is 1..9999 (no BC dates).

    A TIMESTAMPTZ is judged in UTC, where it is sent: ``9999-12-31 23:30-02`` is year
    10000 there, whatever the session's time zone says.
    """
    year = f"year(timezone('UTC', {expr}))" if tz else f"year({expr})"
    return f"(NOT isinf({expr}) AND {year} BETWEEN 1 AND 9999)"


def _rejected_with_value(field: Field, col: str, message: str) -> EncodedField:
    return EncodedField(field, "NULL",
                        f"CASE WHEN {col} IS NOT NULL THEN {literal(message)} || CAST({col} AS VARCHAR) END")


def _always_rejected(field: Field, col: str, message: str) -> EncodedField:
    return EncodedField(field, "NULL", f"CASE WHEN {col} IS NOT NULL THEN {literal(message)} END")


def _rfc3339(expr: str, *, tz: bool) -> str:
    utc = f"timezone('UTC', {expr})" if tz else f"CAST({expr} AS TIMESTAMP)"
    return f"to_json(strftime({utc}, {literal(RFC3339_FMT)}))"


def _regex_reason(text: str, pattern: str, message: str) -> str:
    return (f"CASE WHEN {text} IS NOT NULL AND NOT regexp_full_match({text}, {literal(pattern)}) "
            f"THEN {literal(message)} || {text} END")


def _first_reason(reasons: list[str]) -> str:
    reasons = [r for r in reasons if r != "NULL"]
    if not reasons:
        return "NULL"
    if len(reasons) == 1:
        return reasons[0]
    return "coalesce(" + ", ".join(reasons) + ")"
