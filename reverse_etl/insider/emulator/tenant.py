"""Tenant settings of the emulator from a JSON or YAML file (``--tenant-config FILE``).

The file is one mapping; every key is optional and names an :class:`Emulator`
keyword::

    partner: acme                      # X-PARTNER-NAME accepted (lowercase)
    api_key: test-key                  # X-REQUEST-TOKEN accepted
    custom_identifiers: [loyalty_id]   # custom identifiers configured in the tenant
    pii_attributes: [tier]             # extra attributes anonymize removes
    forbidden_api_keys: [read-only]    # keys answered 403 Access Denied
    event_ttl_days: 90                 # events older than this are dropped
    rate_limits: {upsert: 25000, anonymize: [500, 60], fps: null}
    custom_attribute_cap: 255
    purchase_requires_quantity: true   # the parameter table's strict reading
    profile_quota: 1000                # profile-read quota units per minute
    dynamic_segments: [123456789]      # segment ids the raw export accepts (all profiles)

Unknown keys and wrongly typed values raise ``ValueError`` naming the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

_LISTS = ("custom_identifiers", "pii_attributes", "forbidden_api_keys")
_NUMBERS = ("event_ttl_days", "profile_quota")
_INTS = ("custom_attribute_cap",)
_STRINGS = ("partner", "api_key")
_BOOLS = ("purchase_requires_quantity",)
TENANT_KEYS = frozenset((*_LISTS, *_NUMBERS, *_INTS, *_STRINGS, *_BOOLS,
                         "rate_limits", "dynamic_segments"))


def _check(key: str, value: Any) -> Any:
    if key in _LISTS:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f"tenant setting {key} must be a list of names")
        return tuple(value)
    if key in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"tenant setting {key} must be a positive number")
        return float(value)
    if key in _INTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"tenant setting {key} must be a non-negative integer")
        return value
    if key in _STRINGS:
        if not isinstance(value, str) or not value:
            raise ValueError(f"tenant setting {key} must be a non-empty string")
        return value
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise ValueError(f"tenant setting {key} must be true or false")
        return value
    if key == "rate_limits":
        if not isinstance(value, dict):
            raise ValueError("tenant setting rate_limits must be a mapping of family to limit")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    # dynamic_segments
    if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ValueError("tenant setting dynamic_segments must be a list of segment ids")
    return {v: None for v in value}


def tenant_settings(raw: Any) -> dict[str, Any]:
    """Validated :class:`Emulator` keywords from a parsed tenant mapping."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("a tenant config must be a mapping of settings")
    unknown = sorted(set(raw) - TENANT_KEYS)
    if unknown:
        raise ValueError(f"unknown tenant setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(TENANT_KEYS))}")
    return {k: _check(k, v) for k, v in raw.items()}


def load_tenant_config(path: str | Path) -> dict[str, Any]:
    """Read a ``.json``, ``.yml`` or ``.yaml`` tenant file into :class:`Emulator` keywords."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: "
                         f"{exc}") from exc
    try:
        return tenant_settings(raw)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from exc
