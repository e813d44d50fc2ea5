"""Row-level validation rules of the emulated Insider UCD API (insider-api.md §1, §2, §8).

Each ``check_*`` function validates one user object of a request and returns
``None`` when it is valid, else a dict of Insider-style errors. Error keys follow
the documented shape ``users.<i>.<field path>.<rule>``. The keys and messages Insider
documents (its API reference's saved examples) are reproduced byte for byte::

    users.<i>.identifiers.*.regexp(^.+@.+\\..+$)      not a valid email address: <v>
    users.<i>.identifiers.*.regexp(^\\+[1-9]\\d{6,14}$)  user has an invalid phone number: <v>
    users.<i>.identifiers.*.type(string)              uuid must be string: <v>
    users.<i>.identifiers.*.in(defaults_column)       key must be one of phone_number(pn), ...
    users.<i>.identifiers.required  +  users.<i>.insider_id.required
                                                      either insider_id or idenifiers must be specified
    users.<i>.events.<j>.event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)
                                                      invalid event name: <name>
    users.<i>.events.<j>.event_params.*.required      <p> parameter is required on <event> event

(``idenifiers`` is Insider's spelling.) Event names are checked lowercase-only although
the key shows the published pattern: Insider's saved example rejects ``homepageView``.

The emulator's other keys (its own, consistent choice)::

    users.<i>.identifiers.custom.<n>.unknown          not a configured custom identifier
    users.<i>.required(attributes|events)             neither attributes nor events
    users.<i>.<field>.unknown                         unknown field in the user object
    users.<i>.attributes.<n>.default                  custom attribute at the root
    users.<i>.attributes.<n>.type(<type>)             wrong type for a default attribute
    users.<i>.attributes.<n>.regexp(<re>)             format of email/phone/country/...
    users.<i>.attributes.birthday.rfc3339(utc)        birthday not RFC3339 with Z
    users.<i>.attributes.custom.<n>.regexp(^[a-z][a-z0-9_]*$)   bad custom name
    users.<i>.attributes.custom.<n>.type              object/null/array of objects...
    users.<i>.events.<j>.timestamp.rfc3339            missing/invalid timestamp
    users.<i>.events.<j>.event_params.<p>.type(<t>)   wrong type for a standard param
    users.<i>.events.<j>.event_params.<p>.default     custom param at the root

The store adds ``...custom.limit(255)``, ``...identifiers.*.conflict`` and the fault
module ``...identifiers.*.rejected``. Strict readings of [open] points: a custom
attribute or event parameter at the root is a row failure (Insider would silently
mis-map it); unknown fields are row failures; country, currency and language must
match ``^[A-Z]{2}$``, ``^[A-Z]{3}$`` and ``^[a-z]{2,3}(_[A-Z]{2})?$``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from typing import Any

Errors = dict[str, list[str]]

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
EMAIL_PATTERN = r"^.+@.+\..+$"
PHONE_PATTERN = r"^\+[1-9]\d{6,14}$"
EVENT_NAME_PATTERN = r"^[a-z0-9][a-zA-Z0-9._-]*$"
"""The pattern Insider publishes (and names in its error key)."""
EVENT_NAME_ENFORCED = r"^[a-z0-9][a-z0-9._-]*$"
"""What Insider enforces: its saved example "Invalid event name" rejects ``homepageView``."""
COUNTRY_PATTERN = r"^[A-Z]{2}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(_[A-Z]{2})?$"

# Insider's rules behave like RE2: ``$`` is the end of the text (a trailing newline
# does not pass) and ``\d`` is ASCII. Python needs fullmatch and re.ASCII for that.
_name_ok = re.compile(NAME_PATTERN, re.ASCII).fullmatch
_email_ok = re.compile(EMAIL_PATTERN, re.ASCII).fullmatch
_phone_ok = re.compile(PHONE_PATTERN, re.ASCII).fullmatch
_event_ok = re.compile(EVENT_NAME_ENFORCED, re.ASCII).fullmatch
_country_ok = re.compile(COUNTRY_PATTERN, re.ASCII).fullmatch
_currency_ok = re.compile(CURRENCY_PATTERN, re.ASCII).fullmatch
_language_ok = re.compile(LANGUAGE_PATTERN, re.ASCII).fullmatch
_rfc3339_ok = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
).fullmatch
_rfc3339_utc_ok = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$", re.ASCII).fullmatch

USER_KEYS = frozenset({"identifiers", "insider_id", "attributes", "events", "not_append",
                       "append"})
IDENTIFIER_KINDS = ("uuid", "email", "phone_number")
EVENT_KEYS = frozenset({"event_name", "timestamp", "event_params"})

# Type tags: "str", "int", "num", "bool", "strs" (array of strings), "ints".
DEFAULT_ATTRIBUTES: dict[str, str] = {
    "name": "str", "surname": "str", "age": "int", "gender": "str",
    "birthday": "str", "language": "str", "country": "str", "city": "str",
    "email": "str", "phone_number": "str", "email_optin": "bool", "sms_optin": "bool",
    "whatsapp_optin": "bool", "gdpr_optin": "bool", "static_segment_id": "ints",
    "list_id": "ints", "lo": "str",
    # Device attributes Insider's own Segment destination sends at the root, and
    # app_version, which the reference deletes as a default attribute.
    "app_version": "str", "last_ip": "str", "timezone": "str", "locale": "str",
    "idfa": "str", "model": "str", "carrier": "str", "os_version": "str", "platform": "str",
}
ARRAY_DEFAULT_ATTRIBUTES = frozenset({"static_segment_id", "list_id"})
STANDARD_EVENT_PARAMS: dict[str, str] = {
    "product_id": "str", "name": "str", "taxonomy": "strs", "url": "str", "currency": "str",
    "quantity": "int", "unit_price": "num", "unit_sale_price": "num",
    "product_image_url": "str", "event_group_id": "str", "variant_id": "str",
    "locale": "str", "color": "str", "size": "str", "shipping_cost": "num",
    "promotion_name": "str", "promotion_discount": "num", "referrer": "str",
    "campaign_id": "str", "campaign_name": "str", "user_agent": "str",
}
UNKNOWN_IDENTIFIER = "key must be one of phone_number(pn), email(em) or uuid"
NO_IDENTIFIERS = "either insider_id or idenifiers must be specified"  # Insider's spelling
REQUIRED_EVENT_PARAMS: dict[str, tuple[str, ...]] = {
    "purchase": ("event_group_id", "currency", "unit_sale_price", "quantity"),
    "cart_page_view": ("event_group_id", "currency", "unit_sale_price"),
}
_TYPE_NAMES = {"str": "string", "int": "integer", "num": "number", "bool": "boolean",
               "strs": "array of strings", "ints": "array of integers"}
# Format checks on default attributes / standard params beyond their type.
_ATTRIBUTE_FORMATS = {
    "email": (EMAIL_PATTERN, _email_ok, "not a valid email address"),
    "phone_number": (PHONE_PATTERN, _phone_ok, "not a valid phone number"),
    "country": (COUNTRY_PATTERN, _country_ok, "not an ISO 3166-1 alpha-2 country code"),
    "language": (LANGUAGE_PATTERN, _language_ok, "not a language like en_US"),
}


# String default attributes (birthday aside) → their format check, for a fast path.
_PLAIN_STRING_ATTRIBUTES: dict[str, tuple[tuple[str, Any, str] | None]] = {
    name: (_ATTRIBUTE_FORMATS.get(name),)
    for name, tag in DEFAULT_ATTRIBUTES.items() if tag == "str" and name != "birthday"
}


def _add(errors: Errors | None, key: str, message: str) -> Errors:
    if errors is None:
        errors = {}
    errors.setdefault(key, []).append(message)
    return errors


def _type_ok(tag: str, v: Any) -> bool:
    t = type(v)
    if tag == "str":
        return t is str
    if tag == "bool":
        return t is bool
    if tag == "int":
        return t is int
    if tag == "num":
        return t is int or t is float
    if tag == "strs":
        return t is list and all(type(x) is str for x in v)
    return t is list and all(type(x) is int for x in v)  # "ints"


def value_problem(v: Any) -> str | None:
    """Why ``v`` is not an allowed attribute/param value (§8), or ``None``."""
    t = type(v)
    if t is str or t is int or t is float or t is bool:
        return None
    if t is list:
        kinds = {type(x) for x in v}
        if not kinds or kinds == {str} or kinds <= {int, float}:
            return None
        if kinds == {bool}:
            return "array of booleans"
        if kinds == {dict}:
            return "array of objects"
        if len(kinds) == 1 and list in kinds:
            return "array of arrays"
        return "array of mixed types"
    if v is None:
        return "null"
    if t is dict:
        return "object"
    return type(v).__name__


def is_rfc3339(v: Any) -> bool:
    """True if ``v`` is an RFC3339 date-time string that parses."""
    if type(v) is not str or not _rfc3339_ok(v):
        return False
    try:
        datetime.fromisoformat(v.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def epoch_of(ts: str) -> float:
    """Epoch seconds of an RFC3339 string already accepted by :func:`is_rfc3339`."""
    return datetime.fromisoformat(ts.replace("z", "Z").replace("t", "T")).timestamp()


def check_identifiers(
    prefix: str, ids: Any, custom_identifiers: Collection[str], errors: Errors | None
) -> Errors | None:
    """Validate an ``identifiers`` object; ``prefix`` is e.g. ``users.3.identifiers``."""
    if type(ids) is not dict or not ids:
        return _add(errors, f"{prefix}.required", "identifiers must be a non-empty object")
    for k, v in ids.items():
        if k == "uuid":
            if type(v) is not str or not v:
                errors = _add(errors, f"{prefix}.*.type(string)", f"uuid must be string: {v}")
        elif k == "email":
            if type(v) is not str or not _email_ok(v):
                errors = _add(errors, f"{prefix}.*.regexp({EMAIL_PATTERN})",
                              f"not a valid email address: {v}")
        elif k == "phone_number":
            if type(v) is not str or not _phone_ok(v):
                errors = _add(errors, f"{prefix}.*.regexp({PHONE_PATTERN})",
                              f"user has an invalid phone number: {v}")
        elif k == "custom":
            if type(v) is not dict or not v:
                errors = _add(errors, f"{prefix}.custom.type(object)",
                              "custom identifiers must be a non-empty object")
                continue
            for name, cv in v.items():
                if name not in custom_identifiers:
                    errors = _add(errors, f"{prefix}.custom.{name}.unknown",
                                  f"not a configured custom identifier: {name}")
                elif type(cv) is not str or not cv:
                    errors = _add(errors, f"{prefix}.custom.{name}.type(string)",
                                  f"custom identifier must be a non-empty string: {cv!r}")
        else:
            errors = _add(errors, f"{prefix}.*.in(defaults_column)", UNKNOWN_IDENTIFIER)
    return errors


_SCALARS = (str, int, float, bool)
_known_good_names: set[str] = set()
"""Custom names already matched against NAME_PATTERN: a tenant reuses a few hundred
names millions of times, and the regex was a tenth of the upsert's cost."""


def _good_name(name: str) -> bool:
    if name in _known_good_names:
        return True
    if _name_ok(name):
        if len(_known_good_names) < 100_000:
            _known_good_names.add(name)
        return True
    return False


def _check_custom_values(prefix: str, custom: Any, errors: Errors | None) -> Errors | None:
    if type(custom) is not dict:
        return _add(errors, f"{prefix}.type(object)", "custom must be an object")
    for name, v in custom.items():
        if not _good_name(name):
            errors = _add(errors, f"{prefix}.{name}.regexp({NAME_PATTERN})",
                          f"not a valid name: {name}")
        if type(v) in _SCALARS:
            continue  # the common case, without a call
        problem = value_problem(v)
        if problem is not None:
            errors = _add(errors, f"{prefix}.{name}.type", f"value type not allowed: {problem}")
    return errors


def _check_attributes(prefix: str, attrs: Any, errors: Errors | None) -> Errors | None:
    if type(attrs) is not dict:
        return _add(errors, f"{prefix}.type(object)", "attributes must be an object")
    for k, v in attrs.items():
        if k == "custom":
            errors = _check_custom_values(f"{prefix}.custom", v, errors)
            continue
        plain = _PLAIN_STRING_ATTRIBUTES.get(k)
        if plain is not None and type(v) is str:
            # Most default attributes are strings with at most a format: no further calls.
            fmt = plain[0]
            if fmt is not None and not fmt[1](v):
                errors = _add(errors, f"{prefix}.{k}.regexp({fmt[0]})", f"{fmt[2]}: {v}")
            continue
        tag = DEFAULT_ATTRIBUTES.get(k)
        if tag is None:
            errors = _add(errors, f"{prefix}.{k}.default",
                          f"{k} is not a default attribute; put it under attributes.custom")
        elif not _type_ok(tag, v):
            errors = _add(errors, f"{prefix}.{k}.type({_TYPE_NAMES[tag]})",
                          f"{k} must be {_TYPE_NAMES[tag]}: {v!r}")
        elif k == "birthday":
            if not _rfc3339_utc_ok(v) or not is_rfc3339(v):
                errors = _add(errors, f"{prefix}.birthday.rfc3339(utc)",
                              f"birthday must be RFC3339 in UTC (Z): {v}")
        else:
            fmt = _ATTRIBUTE_FORMATS.get(k)
            if fmt is not None and not fmt[1](v):
                errors = _add(errors, f"{prefix}.{k}.regexp({fmt[0]})", f"{fmt[2]}: {v}")
    return errors


def _check_event(prefix: str, ev: Any, errors: Errors | None,
                 required_params: dict[str, tuple[str, ...]]) -> Errors | None:
    if type(ev) is not dict:
        return _add(errors, f"{prefix}.type(object)", "event must be an object")
    for k in ev:
        if k not in EVENT_KEYS:
            errors = _add(errors, f"{prefix}.{k}.unknown", f"unknown field: {k}")
    name = ev.get("event_name")
    if type(name) is not str or not _event_ok(name):
        errors = _add(errors, f"{prefix}.event_name.*.regexp({EVENT_NAME_PATTERN})",
                      f"invalid event name: {name}")
    ts = ev.get("timestamp")
    if ts is None:
        errors = _add(errors, f"{prefix}.timestamp.required", "timestamp is required")
    elif not is_rfc3339(ts):
        errors = _add(errors, f"{prefix}.timestamp.rfc3339",
                      f"timestamp must be RFC3339: {ts}")
    params = ev.get("event_params", {})
    if type(params) is not dict:
        return _add(errors, f"{prefix}.event_params.type(object)", "event_params must be an object")
    pp = f"{prefix}.event_params"
    for k, v in params.items():
        if k == "custom":
            errors = _check_custom_values(f"{pp}.custom", v, errors)
            continue
        tag = STANDARD_EVENT_PARAMS.get(k)
        if tag is None:
            errors = _add(errors, f"{pp}.{k}.default",
                          f"{k} is not a standard event parameter; put it under event_params.custom")
        elif not _type_ok(tag, v):
            errors = _add(errors, f"{pp}.{k}.type({_TYPE_NAMES[tag]})",
                          f"{k} must be {_TYPE_NAMES[tag]}: {v!r}")
        elif k == "currency" and not _currency_ok(v):
            errors = _add(errors, f"{pp}.currency.regexp({CURRENCY_PATTERN})",
                          f"not an ISO 4217 currency code: {v}")
    for required in required_params.get(name, ()) if type(name) is str else ():
        if required not in params:
            errors = _add(errors, f"{pp}.*.required",
                          f"{required} parameter is required on {name} event")
    return errors


def _check_who(i: int, user: dict[str, Any], custom_identifiers: Collection[str],
               errors: Errors | None) -> Errors | None:
    """``identifiers`` or ``insider_id``: at least one, each well formed."""
    ids = user.get("identifiers")
    if ids is None and "insider_id" not in user:
        errors = _add(errors, f"users.{i}.identifiers.required", NO_IDENTIFIERS)
        return _add(errors, f"users.{i}.insider_id.required", NO_IDENTIFIERS)
    if ids is not None:
        errors = check_identifiers(f"users.{i}.identifiers", ids, custom_identifiers, errors)
    if "insider_id" in user and (type(user["insider_id"]) is not str or not user["insider_id"]):
        errors = _add(errors, f"users.{i}.insider_id.type(string)", "insider_id must be a string")
    return errors


def check_upsert_user(i: int, user: Any, custom_identifiers: Collection[str],
                      required_params: dict[str, tuple[str, ...]] | None = None
                      ) -> Errors | None:
    """Validate the i-th user object of an upsert request (§1, §8).

    ``required_params``: event name -> parameters it requires (default
    :data:`REQUIRED_EVENT_PARAMS`; a tenant setting may relax purchase's quantity).
    """
    required = REQUIRED_EVENT_PARAMS if required_params is None else required_params
    if type(user) is not dict:
        return {f"users.{i}.type(object)": ["user must be an object"]}
    errors: Errors | None = None
    for k in user:
        if k not in USER_KEYS:
            errors = _add(errors, f"users.{i}.{k}.unknown", f"unknown field: {k}")
    errors = _check_who(i, user, custom_identifiers, errors)
    attrs = user.get("attributes")
    events = user.get("events")
    if not attrs and not events:
        errors = _add(errors, f"users.{i}.required(attributes|events)",
                      "at least one of a non-empty attributes or events is required")
    if attrs is not None:
        errors = _check_attributes(f"users.{i}.attributes", attrs, errors)
    if events is not None:
        if type(events) is not list:
            errors = _add(errors, f"users.{i}.events.type(array)", "events must be an array")
        else:
            for j, ev in enumerate(events):
                errors = _check_event(f"users.{i}.events.{j}", ev, errors, required)
    for flag in ("not_append", "append"):
        value = user.get(flag)
        if value is not None and type(value) is not bool:
            errors = _add(errors, f"users.{i}.{flag}.type(boolean)", f"{flag} must be a boolean")
    return errors


def _check_names(prefix: str, names: Any, default: bool, errors: Errors | None) -> Errors | None:
    if type(names) is not list:
        return _add(errors, f"{prefix}.type(array)", "must be an array of attribute names")
    for n in names:
        if type(n) is not str or not _name_ok(n):
            errors = _add(errors, f"{prefix}.regexp({NAME_PATTERN})", f"not a valid name: {n}")
        elif default and n not in DEFAULT_ATTRIBUTES:
            errors = _add(errors, f"{prefix}.{n}.default",
                          f"{n} is not a default attribute; use custom.whole")
    return errors


def _check_partial(prefix: str, partial: Any, default: bool, errors: Errors | None) -> Errors | None:
    if type(partial) is not dict:
        return _add(errors, f"{prefix}.type(object)", "partial must be an object")
    for n, v in partial.items():
        if not _name_ok(n):
            errors = _add(errors, f"{prefix}.{n}.regexp({NAME_PATTERN})", f"not a valid name: {n}")
        elif default and n not in ARRAY_DEFAULT_ATTRIBUTES:
            errors = _add(errors, f"{prefix}.{n}.array",
                          f"only array attributes can be partially deleted: {n}")
        if type(v) is not list or value_problem(v) is not None:
            errors = _add(errors, f"{prefix}.{n}.type(array)",
                          "partial values must be an array of strings or numbers")
    return errors


def check_delete_user(i: int, user: Any, custom_identifiers: Collection[str]) -> Errors | None:
    """Validate the i-th user object of an attribute delete request (§2)."""
    if type(user) is not dict:
        return {f"users.{i}.type(object)": ["user must be an object"]}
    errors: Errors | None = None
    for k in user:
        if k not in ("identifiers", "insider_id", "whole", "partial", "custom"):
            errors = _add(errors, f"users.{i}.{k}.unknown", f"unknown field: {k}")
    errors = _check_who(i, user, custom_identifiers, errors)
    if "whole" in user:
        errors = _check_names(f"users.{i}.whole", user["whole"], True, errors)
    if "partial" in user:
        errors = _check_partial(f"users.{i}.partial", user["partial"], True, errors)
    custom = user.get("custom")
    if custom is not None:
        if type(custom) is not dict:
            errors = _add(errors, f"users.{i}.custom.type(object)", "custom must be an object")
        else:
            for k in custom:
                if k not in ("whole", "partial"):
                    errors = _add(errors, f"users.{i}.custom.{k}.unknown", f"unknown field: {k}")
            if "whole" in custom:
                errors = _check_names(f"users.{i}.custom.whole", custom["whole"], False, errors)
            if "partial" in custom:
                errors = _check_partial(f"users.{i}.custom.partial", custom["partial"], False,
                                        errors)
    if not any(k in user for k in ("whole", "partial", "custom")):
        errors = _add(errors, f"users.{i}.required(whole|partial|custom)",
                      "nothing to delete: give whole, partial or custom")
    return errors
