"""The local once-per-UTC-day guard for raw data exports.

Insider accepts one raw export request per partner and UTC day and answers 429
to the next one (insider-api.md §7). Asking anyway wastes nothing on Insider's
side, but an orchestrator retrying a failed task would hammer it and learn only
"429"; so the date of the last accepted request is kept in
``<state>/exports.json`` and a second pull the same UTC day is refused before
anything is sent, with the time it can run again. ``--force`` skips the check
(Insider still has the last word).

File layout (one entry per partner, so projects sharing a state directory with
different partners do not block each other)::

    {"acme": {"date": "2024-05-01", "export": "cart_activity",
              "requested_at": "2024-05-01T08:12:03Z"}}
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reverse_etl.errors import DeliveryError, StateError

GUARD_FILENAME = "exports.json"


def next_utc_midnight(now: datetime) -> datetime:
    """The start of the UTC day after ``now``: when the next export may be requested."""
    day = now.astimezone(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


def describe_wait(now: datetime) -> str:
    """``after 2024-05-02 00:00 UTC (in 5h 12m)``."""
    midnight = next_utc_midnight(now)
    left = max(0, int((midnight - now).total_seconds()))
    hours, minutes = divmod((left + 59) // 60, 60)
    return f"after {midnight:%Y-%m-%d %H:%M} UTC (in {hours}h {minutes:02d}m)"


class DailyGuard:
    """Reads and records the UTC date of the last accepted export request per partner."""

    def __init__(self, state_dir: Path, partner: str) -> None:
        self.path = state_dir / GUARD_FILENAME
        self.partner = partner

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StateError(f"{self.path}: unreadable ({exc}); delete it to reset the "
                             "once-per-day export guard") from None
        return data if isinstance(data, dict) else {}

    def last(self) -> dict[str, Any] | None:
        """The last accepted request of this partner (date, export, requested_at), if any."""
        entry = self._read().get(self.partner)
        return entry if isinstance(entry, dict) and "date" in entry else None

    def check(self, export: str, now: datetime) -> None:
        """Raise DeliveryError if this partner already used today's (UTC) export."""
        entry = self.last()
        today = now.astimezone(UTC).date()
        if entry is None or entry.get("date") != today.isoformat():
            return
        by = entry.get("export", "?")
        at = str(entry.get("requested_at", ""))[11:16] or "earlier"
        raise DeliveryError(
            f"export {export!r}: partner {self.partner!r} already requested today's raw export "
            f"(export {by!r} at {at} UTC) and Insider allows one per UTC day; run it again "
            f"{describe_wait(now)}, or pass --force to skip this local check")

    def record(self, export: str, now: datetime) -> None:
        """Remember that this partner's export for ``now``'s UTC day is used."""
        data = self._read()
        data[self.partner] = {"date": now.astimezone(UTC).date().isoformat(), "export": export,
                              "requested_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash never leaves a half-written guard behind.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".exports-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StateError(f"cannot write {self.path}: {exc}") from None

