"""Time as the scheduler sees it: injectable, so tests move it by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Tells the current time (timezone-aware)."""

    def now(self) -> datetime:
        """The current time, aware (any zone)."""
        ...


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> datetime:
        """Now, in UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to (for tests and simulations)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime (say its time zone)")
        self._now = start

    def now(self) -> datetime:
        """The time it was last set to."""
        return self._now

    def set(self, when: datetime) -> None:
        """Move to ``when`` (aware)."""
        if when.tzinfo is None:
            raise ValueError("ManualClock.set needs an aware datetime")
        self._now = when
