"""Reading Insider's answers: one verdict per HTTP response.

:func:`judge` turns a status code and body into a :class:`Verdict` the client
acts on (ack, partial rejection, bisect, reject, retry, stop). The 200-with-row
-failures shape is parsed by :func:`parse_fail_map`, which maps the
``users.<i>.<path>`` keys back to the i-th user of the request.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from reverse_etl.insider.http.endpoints import Endpoint
from reverse_etl.insider.http.retrying import RetryableError

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
"""Answers worth retrying with backoff (Insider documents 429 and 500/502/503/504/520)."""

_FAIL_KEY = re.compile(r"^users\.(\d+)(?:\.(.*))?$", re.DOTALL)
_MAX_REASON = 500


class Kind(enum.Enum):
    """What the client should do with a response."""

    ACK = "ack"  # every row accepted (``note`` may say "not found")
    PARTIAL = "partial"  # 200 with row failures: ``rejected`` maps request index -> reason
    REJECT = "reject"  # every row of the request rejected with ``reason``
    BISECT = "bisect"  # the request as a whole was refused: split it to find the bad rows
    RETRY = "retry"  # transient: try again after backoff (``retry_after`` if Insider said)
    AUTH = "auth"  # credentials refused: stop the whole delivery
    FATAL = "fatal"  # the run cannot succeed (wrong URL, ...): stop the whole delivery


@dataclass(frozen=True, slots=True)
class Verdict:
    """The client's reading of one response."""

    kind: Kind
    reason: str = ""
    rejected: dict[int, str] = field(default_factory=dict)
    retry_after: float | None = None
    note: str | None = None


def shorten(text: str, limit: int = _MAX_REASON) -> str:
    """One line, at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _load(content: bytes) -> Any:
    try:
        return orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None


def message_of(content: bytes) -> str:
    """Insider's human message from an error body (``error``, ``message`` or ``statusMessage``)."""
    payload = _load(content)
    if isinstance(payload, dict):
        for key in ("error", "message", "statusMessage"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return shorten(value)
    text = content.decode("utf-8", "replace").strip()
    return shorten(text) if text else "no message"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _messages(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def parse_fail_map(fail: Mapping[str, Any], n_users: int) -> dict[int, str] | None:
    """Request index -> reason from a ``data.fail`` object; None when it cannot be mapped.

    Every key must look like ``users.<i>.<path>`` with ``i`` inside the request;
    a single unmappable key makes the whole map unusable, because the failure
    could then belong to any user and must not be acknowledged silently.
    """
    errors = fail.get("errors")
    if not isinstance(errors, Mapping) or not errors:
        return None
    rejected: dict[int, str] = {}
    for key, value in errors.items():
        match = _FAIL_KEY.match(str(key))
        if match is None:
            return None
        index = int(match.group(1))
        if index >= n_users:
            return None
        path = match.group(2)
        reason = f"{path}: {_messages(value)}" if path else _messages(value)
        previous = rejected.get(index)
        rejected[index] = reason if previous is None else f"{previous} | {reason}"
    return {index: shorten(reason) for index, reason in rejected.items()}


def _fail_count(fail: Mapping[str, Any]) -> int:
    count = fail.get("count", 0)
    try:
        return int(count)
    except (TypeError, ValueError):
        return 1  # a count we cannot read is not a zero count


def _judge_ok(endpoint: Endpoint, content: bytes, n_users: int) -> Verdict:
    if not endpoint.bulk:
        return Verdict(Kind.ACK)
    payload = _load(content)
    if not isinstance(payload, dict):
        return Verdict(
            Kind.REJECT,
            f"Insider answered 200 with an unreadable body: "
            f"{shorten(content.decode('utf-8', 'replace'), 200)}",
        )
    data = payload.get("data")
    fail = data.get("fail") if isinstance(data, dict) else None
    if not isinstance(fail, dict) or (_fail_count(fail) == 0 and not fail.get("errors")):
        return Verdict(Kind.ACK)
    rejected = parse_fail_map(fail, n_users)
    # More failures counted than users named: the unnamed ones could be any row.
    if rejected is None or _fail_count(fail) > len(rejected):
        raw = orjson.dumps(fail).decode()
        return Verdict(
            Kind.REJECT, f"Insider reported failures it did not tie to users: {shorten(raw)}"
        )
    return Verdict(Kind.PARTIAL, rejected=rejected)


def judge(
    endpoint: Endpoint,
    status: int,
    content: bytes,
    n_users: int,
    retry_after_header: str | None = None,
) -> Verdict:
    """Classify one response to a request carrying ``n_users`` users."""
    if 200 <= status < 300:
        return _judge_ok(endpoint, content, n_users)
    message = message_of(content)
    if status in (401, 403):
        return Verdict(
            Kind.AUTH,
            f"Insider refused the credentials ({status} {message}): "
            "check destination.partner and destination.api_key",
        )
    if status == 400 and "partner is invalid" in message.lower():
        return Verdict(
            Kind.AUTH,
            f"Insider does not know this partner (400 {message}): check destination.partner",
        )
    if status in TRANSIENT_STATUSES or status >= 500:
        return Verdict(
            Kind.RETRY,
            f"HTTP {status}: {message}",
            retry_after=parse_retry_after(retry_after_header),
        )
    if 300 <= status < 400:
        # A redirect (http → https, a proxy's login page) is a configuration problem,
        # never a verdict on the rows: rejecting them would hold them back for good.
        return Verdict(
            Kind.FATAL,
            f"Insider's address redirected {endpoint.method} {endpoint.path} ({status}): "
            "check destination.api_base_url (https, no trailing path)",
        )
    if status == 404:
        if _load(content) is None or "no such user" not in message.lower():
            # Not Insider's documented "no such user" answer: the base URL or path is
            # wrong (a gateway's JSON 404 must not count as "user already deleted").
            return Verdict(
                Kind.FATAL,
                f"Insider answered 404 for {endpoint.method} {endpoint.path} "
                f"({message}): check destination.api_base_url",
            )
        if endpoint.not_found_is_result:
            return Verdict(Kind.ACK, note=f"not found: {message}")
        return Verdict(Kind.REJECT, f"HTTP 404: {message}")
    if status in (400, 413) and endpoint.bulk:
        return Verdict(Kind.BISECT, f"HTTP {status}: {message}")
    if status in (405, 415):
        return Verdict(
            Kind.FATAL,
            f"Insider refused {endpoint.method} {endpoint.path} ({status} {message}): "
            "check destination.api_base_url",
        )
    return Verdict(Kind.REJECT, f"HTTP {status}: {message}")


def profile_read_answer(response: httpx.Response, unreadable: Callable[[str], Exception]) -> dict[str, Any] | None:
    """What a profile read (``POST /api/user/v1/profile``) answered: the profile, or None (404:
    no such user). 429 and 5xx raise :class:`RetryableError` (with Retry-After); any other answer
    cannot tell what Insider holds and raises ``unreadable(one line)``.
    """
    if response.status_code == 404:
        return None
    if response.status_code == 200:
        answer = orjson.loads(response.content)
        if isinstance(answer, dict):
            return answer
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableError(f"profile read: HTTP {response.status_code}",
                             parse_retry_after(response.headers.get("Retry-After")))
    raise unreadable(f"profile read: HTTP {response.status_code}: {shorten(response.text)}")
