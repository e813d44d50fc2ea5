"""One redaction function for everything reverse_etl prints or records.

:func:`redact` masks, in any text:

* URL userinfo passwords: ``https://user:pass@host`` -> ``https://user:***@host``;
* password-like query parameters: ``?password=...``, ``token=``, ``api_key=``,
  ``secret=`` (and their spellings ``passwd``, ``pwd``, ``access_token``, ...);
* every secret value registered with :func:`register_secret`; the loader
  registers the value of each ``SecretStr`` field of a loaded config.

The CLI applies it to every line it prints (errors, ``--json``, logs), and the
run ledger to each record it appends.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "***"
_MIN_SECRET_LENGTH = 4
"""Shorter registered values are not masked: they would mask ordinary words."""

_USERINFO = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^\s:/@]*:)(?P<password>[^\s@]*)@", re.IGNORECASE)
_SECRET_QUERY = re.compile(
    r"(?P<head>[?&;](?:[a-z0-9_.-]*?)(?:password|passwd|pwd|token|api_?key|apikey|secret)[a-z0-9_.-]*=)"
    r"(?P<value>[^&#;\s'\"]*)",
    re.IGNORECASE,
)

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | SecretStr | None) -> None:
    """Mask ``value`` wherever it appears from now on (in this process)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not value:
        return
    with _lock:
        for candidate in (value, value.strip()):
            if len(candidate) >= _MIN_SECRET_LENGTH:
                _secrets.add(candidate)


def register_config_secrets(config: BaseModel) -> None:
    """Register every ``SecretStr`` (and the password of a secret URL) found in ``config``."""
    for value in _secret_values(config):
        register_secret(value)
        match = _USERINFO.search(value)
        if match:
            register_secret(match.group("password"))
        for query in _SECRET_QUERY.finditer(value):
            register_secret(query.group("value"))


def _secret_values(value: Any) -> Iterable[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_values(getattr(value, name, None))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and _is_secret_name(str(key)):
                yield item
            else:
                yield from _secret_values(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _secret_values(item)


def _is_secret_name(name: str) -> bool:
    return bool(re.search(r"password|passwd|pwd|token|api_?key|secret|passphrase", name, re.IGNORECASE))


def forget_secrets() -> None:
    """Drop every registered value (for tests)."""
    with _lock:
        _secrets.clear()


def redact(text: str) -> str:
    """``text`` with URL passwords, secret query parameters and registered secrets masked."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m.group('head')}{MASK}@" if m.group("password") else m.group(0), text)
    text = _SECRET_QUERY.sub(lambda m: f"{m.group('head')}{MASK}" if m.group("value") else m.group(0), text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_value(value: Any) -> Any:
    """``value`` with :func:`redact` applied to every string in it (dicts, lists, keys too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k) if isinstance(k, str) else k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value
