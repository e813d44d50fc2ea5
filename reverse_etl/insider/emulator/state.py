"""Everything one emulator instance holds: options, profiles, faults, limits, request log.

The aiohttp handlers (event-loop thread) and the Python inspection helpers (the
test's thread) share one :class:`EmulatorState`; every read or write of mutable
state happens under ``state.lock``. Handlers never await while holding it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .faults import FaultInjector
from .limits import RateLimiter
from .store import ProfileStore

#: A dynamic segment for the raw export: ``None`` (every profile) or a predicate
#: over the inspection dict of a profile.
SegmentPredicate = Callable[[dict[str, Any]], bool] | None


@dataclass
class EmulatorOptions:
    """Configuration of one emulated tenant (see ``Emulator`` for the meaning)."""

    partner: str = "acme"
    api_key: str = "test-key"
    event_ttl_days: float = 90
    rate_limits: Mapping[str, Any] | None = None
    faults: Mapping[str, Any] | None = None
    custom_attribute_cap: int = 255
    custom_identifiers: tuple[str, ...] = ("loyalty_id", "segment_anonymous_id")
    request_log_limit: int | None = None
    forbidden_api_keys: tuple[str, ...] = ()
    clock: Callable[[], float] = time.time
    fps_callback_delay: float = 0.0
    fps_max_file_bytes: int = 10_000_000
    export_delay: float = 0.0
    dynamic_segments: Mapping[int, SegmentPredicate] = field(
        default_factory=lambda: {123456789: None})
    pii_attributes: tuple[str, ...] = ()
    purchase_requires_quantity: bool = True
    profile_quota: float = 1000.0

    def __post_init__(self) -> None:
        if not self.partner or self.partner != self.partner.lower():
            raise ValueError("partner must be a non-empty lowercase name")
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        self.custom_identifiers = tuple(self.custom_identifiers)
        self.forbidden_api_keys = tuple(self.forbidden_api_keys)
        self.pii_attributes = tuple(self.pii_attributes)


def _copy(value: Any) -> Any:
    # orjson round trip: a fast deep copy that also proves the value is JSON-able.
    return orjson.loads(orjson.dumps(value))


class EmulatorState:
    """Mutable state of one emulator, guarded by ``lock``."""

    def __init__(self, options: EmulatorOptions) -> None:
        self.options = options
        self.lock = threading.RLock()
        self.store = ProfileStore(options.custom_attribute_cap, options.event_ttl_days)
        self.faults = FaultInjector(options.faults)
        self.limiter = RateLimiter(options.rate_limits)
        self.dynamic_segments: dict[int, SegmentPredicate] = dict(options.dynamic_segments)
        self.base_url = ""  # set by the server once the port is known
        self.clock_offset = 0.0  # Emulator.advance_clock
        # Pending FPS callbacks / export hooks (asyncio tasks), cancelled on stop.
        self.tasks: set[Any] = set()
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.log: deque[dict[str, Any]] = deque(maxlen=self.options.request_log_limit)
        self._seq = 0
        self.requests: Counter[str] = Counter()
        self.statuses: dict[str, Counter[str]] = {}
        self.rows_accepted = 0
        self.rows_failed = 0
        # First-party segments by name, raw exports by file name, export days used.
        self.segments: dict[str, dict[str, Any]] = {}
        self.exports: dict[str, dict[str, Any]] = {}
        self.export_days: set[str] = set()
        # Profile-read quota spent: (time, cost) within the last minute; consents by udid.
        self.profile_quota_spent: deque[tuple[float, float]] = deque()
        self.consents: dict[str, bool] = {}

    def now(self) -> float:
        """Epoch seconds from the injectable clock."""
        return self.options.clock() + self.clock_offset

    def reset(self) -> None:
        """Forget profiles, logs, counters, segments, exports and rate-limit windows."""
        with self.lock:
            self.store.reset()
            self.limiter.reset()
            self._reset_counters()

    def record(self, entry: dict[str, Any]) -> None:
        """Append a request-log entry (never containing the token) and count it."""
        with self.lock:
            self._seq += 1
            entry["seq"] = self._seq
            self.log.append(entry)
            endpoint = entry["endpoint"]
            self.requests[endpoint] += 1
            status = str(entry["status"]) if entry["status"] is not None else "dropped"
            self.statuses.setdefault(endpoint, Counter())[status] += 1

    # -- inspection -----------------------------------------------------------
    def lookup(self, criteria: Iterable[tuple[str, str]]) -> dict[str, Any] | None:
        """The profile matching every (kind, value) criterion, as a copied dict."""
        with self.lock:
            profile = None
            for kind, value in criteria:
                if kind == "insider_id":
                    p = self.store.by_id.get(value)
                else:
                    p = self.store.index.get((kind, value))
                if p is None or (profile is not None and p is not profile):
                    return None
                profile = p
            return _copy(profile.to_dict()) if profile is not None else None

    def profiles(self) -> list[dict[str, Any]]:
        """Every profile, oldest first, as copied dicts."""
        with self.lock:
            return _copy([p.to_dict() for p in self.store.by_id.values()])

    def counts(self) -> dict[str, Any]:
        """Totals: users, events, dropped events, rows, requests and statuses per endpoint."""
        with self.lock:
            return {
                "users": len(self.store.by_id),
                "events": self.store.events,
                "events_dropped_ttl": self.store.events_dropped_ttl,
                "custom_attribute_names": len(self.store.custom_names),
                "rows_accepted": self.rows_accepted,
                "rows_failed": self.rows_failed,
                "requests": dict(self.requests),
                "statuses": {k: dict(v) for k, v in self.statuses.items()},
                "segments": len(self.segments),
                "exports": len(self.exports),
            }

    def request_log(self) -> list[dict[str, Any]]:
        """The request log, oldest first, as copied dicts."""
        with self.lock:
            return _copy(list(self.log))

    def segment_list(self) -> list[dict[str, Any]]:
        """First-party segments received, with their processing results."""
        with self.lock:
            return _copy(list(self.segments.values()))

    def export_list(self) -> list[dict[str, Any]]:
        """Raw exports produced (file name, url, format, rows, created, hook result)."""
        with self.lock:
            return _copy([{k: v for k, v in e.items() if k != "data"}
                          for e in self.exports.values()])
