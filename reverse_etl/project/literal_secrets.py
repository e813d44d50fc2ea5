"""Refuse secrets written literally in syncs.yml.

The check looks at parsed values, not at the raw text: the file is rendered a
second time with every ``{{ env_var() }}`` replaced by :data:`MARKER`, and a
secret value is accepted only when what is left after removing the markers is
empty. So neither a ``# env_var(`` comment nor ``abc{{ env_var('X') }}`` nor a
``?password=`` in a URL gets a literal secret through.
"""

from __future__ import annotations

import re
from typing import Any

from reverse_etl.errors import ConfigError
from reverse_etl.project.yaml_lines import LineMap, dotted, line_of

MARKER = "RETLENVVARMARKERQ7Z"
"""Stands for one rendered env_var() value; alphanumeric so YAML keeps it as is."""

_SECRET_PATHS = (
    ("destination", "api_key"),
    ("source", "password"),
    ("source", "private_key_passphrase"),
)
_SECRET_KEY = re.compile(
    r"^(password|passwd|pwd|passphrase|private_key_passphrase|secret|client_secret|token|access_token|api_?key)$",
    re.IGNORECASE,
)
_SECRET_QUERY = re.compile(r"(password|passwd|pwd|token|api_?key|secret)", re.IGNORECASE)


def refuse_literal_secrets(marked: Any, lines: LineMap, filename: str) -> None:
    """Raise :class:`ConfigError` for the first secret in ``marked`` not made only of env_var() values.

    ``marked`` is the file parsed after rendering each env_var() as :data:`MARKER`.
    """
    if not isinstance(marked, dict):
        return
    for section, field in _SECRET_PATHS:
        block = marked.get(section)
        if isinstance(block, dict) and block.get(field) not in (None, ""):
            _require_marker(block[field], (section, field), lines, filename)
    source = marked.get("source")
    if isinstance(source, dict):
        for key in ("connect_args", "credentials"):
            _scan_mapping(source.get(key), ("source", key), lines, filename)
        url = source.get("url")
        if isinstance(url, str):
            _check_url(url, ("source", "url"), lines, filename)
    alerts = marked.get("alerts")
    if isinstance(alerts, dict):  # SMTP passwords, webhook URL tokens and header values
        _scan_mapping(alerts, ("alerts",), lines, filename)
        destinations = alerts.get("destinations")
        for index, destination in enumerate(destinations if isinstance(destinations, list) else []):
            if not isinstance(destination, dict):
                continue
            where = ("alerts", "destinations", index)
            if isinstance(destination.get("url"), str):
                _check_url(destination["url"], (*where, "url"), lines, filename)  # type: ignore[arg-type]
            headers = destination.get("headers")
            for key, value in (headers.items() if isinstance(headers, dict) else ()):
                _require_marker(value, (*where, "headers", key), lines, filename)


def _scan_mapping(value: Any, path: tuple[str | int, ...], lines: LineMap, filename: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _SECRET_KEY.match(key) and item not in (None, ""):
                _require_marker(item, (*path, key), lines, filename)
            else:
                _scan_mapping(item, (*path, key), lines, filename)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _scan_mapping(item, (*path, index), lines, filename)


def _check_url(url: str, path: tuple[str, ...], lines: LineMap, filename: str) -> None:
    scheme_end = url.find("://")
    if scheme_end < 0:
        return
    rest = url[scheme_end + 3:]
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    if "@" in head:
        userinfo = head[: head.rfind("@")]
        if ":" in userinfo and not _only_markers(userinfo.split(":", 1)[1], allow_empty=True):
            _refuse(path, lines, filename, "holds a literal password")
    query = rest[len(head):]
    for name, value in re.findall(r"[?&;]([^=&#]+)=([^&#]*)", query):
        if _SECRET_QUERY.search(name) and not _only_markers(value, allow_empty=True):
            _refuse(path, lines, filename, f"holds a literal {name}= parameter")


def _only_markers(value: Any, *, allow_empty: bool = False) -> bool:
    text = str(value)
    if not text:
        return allow_empty
    return MARKER in text and not text.replace(MARKER, "").strip()


def _require_marker(value: Any, path: tuple[str | int, ...], lines: LineMap, filename: str) -> None:
    if not _only_markers(value):
        _refuse(path, lines, filename, "is a secret written literally")


def _refuse(path: tuple[str | int, ...], lines: LineMap, filename: str, what: str) -> None:
    name = "_".join([str(p) for p in path if not isinstance(p, int)][-2:]).upper()  # no list indexes
    raise ConfigError(
        f"{filename}:{line_of(path, lines)}: {dotted(path)} {what}; write the secret part as "
        f"\"{{{{ env_var('{name}') }}}}\" and set {name} in the environment or .env"
    )
