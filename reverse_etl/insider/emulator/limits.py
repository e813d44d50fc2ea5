"""Per-endpoint-family rate limits (insider-api.md §1-§4, §6) as sliding windows.

Families and documented defaults (requests per window)::

    upsert            25,000 / 60 s   shared by upsert and attribute delete
    identity_update    2,000 / 60 s
    identity_delete   25,000 / 60 s   the reference's "Delete identifiers" limitations
    user_delete       10,000 / 60 s
    anonymize            500 / 60 s
    fps                  100 / 1 s

``rate_limits`` overrides any family with an int (requests per the family's
window) or a ``(requests, window_seconds)`` pair; ``None`` disables a family's
limit. A sliding window (not fixed minute buckets) means a burst can never get
twice the limit through across a bucket edge. A rejected request does not use up
budget. The raw export's one-per-UTC-day rule lives in ``export.py``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

DEFAULT_LIMITS: dict[str, tuple[int, float]] = {
    "upsert": (25_000, 60.0),
    "identity_update": (2_000, 60.0),
    "identity_delete": (25_000, 60.0),
    "user_delete": (10_000, 60.0),
    "anonymize": (500, 60.0),
    "fps": (100, 1.0),
}

# Which family each endpoint draws from.
ENDPOINT_FAMILY: dict[str, str] = {
    "upsert": "upsert",
    "attribute_delete": "upsert",
    "identity_update": "identity_update",
    "identity_delete": "identity_delete",
    "user_delete": "user_delete",
    "anonymize": "anonymize",
    "fps_upload": "fps",
}


def parse_limits(raw: Mapping[str, Any] | None) -> dict[str, tuple[int, float] | None]:
    """Merge overrides into the defaults; raises ``ValueError`` on a bad entry."""
    limits: dict[str, tuple[int, float] | None] = dict(DEFAULT_LIMITS)
    for family, value in (raw or {}).items():
        if family not in DEFAULT_LIMITS:
            raise ValueError(f"unknown rate-limit family {family!r}; known: "
                             f"{', '.join(DEFAULT_LIMITS)}")
        if value is None:
            limits[family] = None
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits[family] = (value, DEFAULT_LIMITS[family][1])
        elif (isinstance(value, tuple | list) and len(value) == 2
              and isinstance(value[0], int) and value[0] > 0
              and isinstance(value[1], int | float) and value[1] > 0):
            limits[family] = (int(value[0]), float(value[1]))
        else:
            raise ValueError(f"rate limit for {family} must be a positive int, "
                             "a (requests, seconds) pair or None")
    return limits


class RateLimiter:
    """Sliding-window counters, one per family."""

    def __init__(self, raw: Mapping[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = parse_limits(raw)
        self._clock = clock
        self._hits: dict[str, deque[float]] = {f: deque() for f in self.limits}

    def reset(self) -> None:
        """Forget every recorded request."""
        for hits in self._hits.values():
            hits.clear()

    def acquire(self, endpoint: str) -> int | None:
        """Record a request; ``None`` if allowed, else the Retry-After in seconds."""
        family = ENDPOINT_FAMILY.get(endpoint)
        if family is None:
            return None
        limit = self.limits.get(family)
        if limit is None:
            return None
        count, window = limit
        now = self._clock()
        hits = self._hits[family]
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= count:
            return max(1, math.ceil(hits[0] + window - now))
        hits.append(now)
        return None
