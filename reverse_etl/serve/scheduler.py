"""Schedules: cron expressions in explicit time zones, evaluated against an injectable clock.

croniter computes the fire times; this module decides what to do with them:

- at start, fire times that passed since a sync's last recorded run (the ledger)
  are **missed runs**: they are counted, logged, shown on the overview page and in
  ``/metrics``, and one catch-up run is queued (not one per missed slot: the
  sync sends what changed, once);
- a fire time reached while the process was busy or asleep (the clock jumped over
  more than one slot) is reported the same way;
- each due sync is handed to the run queue, which coalesces it with any other
  trigger waiting for the same sync.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter  # type: ignore[import-untyped]

from reverse_etl.project.schedule import Schedule
from reverse_etl.serve.clock import Clock

log = logging.getLogger("reverse_etl.serve")

MAX_COUNTED = 10_000
"""Missed slots counted at most (a minutely schedule down for a month stops counting here)."""

@dataclass(frozen=True)
class SyncPlan:
    """The schedules that apply to one sync (its own and those of its tags)."""

    sync: str
    schedules: tuple[Schedule, ...]

    def next_after(self, when: datetime) -> datetime:
        """The first fire time strictly after ``when``, in UTC."""
        return min(_next(s, when) for s in self.schedules)

    def fires_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Fire times in (start, end], in UTC, oldest first (at most :data:`MAX_COUNTED`)."""
        found: list[datetime] = []
        cursor = start
        while len(found) < MAX_COUNTED:
            nxt = self.next_after(cursor)
            if nxt > end:
                break
            found.append(nxt)
            cursor = nxt
        return found

    def describe(self) -> str:
        """``0 * * * * (UTC)``, several joined by ``; ``."""
        return "; ".join(s.describe() for s in self.schedules)

def _next(schedule: Schedule, when: datetime) -> datetime:
    local = when.astimezone(ZoneInfo(schedule.timezone))
    nxt: datetime = croniter(schedule.cron, local).get_next(datetime)
    return nxt.astimezone(UTC)

@dataclass(frozen=True)
class MissedRuns:
    """Scheduled runs that did not happen at their time."""

    sync: str
    count: int
    first: datetime
    last: datetime
    why: str

    def describe(self) -> str:
        """One line for pages and logs."""
        return (f"{self.count} scheduled run(s) missed between {self.first:%Y-%m-%d %H:%M} and "
                f"{self.last:%Y-%m-%d %H:%M} UTC ({self.why}); one catch-up run was queued")

Submit = Callable[[str, str], object]
"""submit(sync, trigger): hand a due sync to the run queue."""

class Scheduler:
    """Fires the plans' syncs on time; :meth:`tick` does one step (tests call it directly)."""

    def __init__(self, plans: Sequence[SyncPlan], submit: Submit, clock: Clock,
                 last_started: Callable[[str], datetime | None],
                 on_tick: Callable[[datetime], None] | None = None) -> None:
        self.plans = {p.sync: p for p in plans}
        self._on_tick = on_tick
        self._submit = submit
        self._clock = clock
        self._last_started = last_started
        self._next: dict[str, datetime] = {}
        self.missed: dict[str, list[MissedRuns]] = {}
        self.fired: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        """Plan the next fire of every sync; report (and catch up) runs missed while down."""
        now = self._clock.now()
        for sync, plan in self.plans.items():
            last = self._last_started(sync)
            if last is not None:
                missed = plan.fires_between(last, now)
                if missed:
                    self._report(MissedRuns(sync, len(missed), missed[0], missed[-1],
                                            f"the server was not running; last run started "
                                            f"{last.astimezone(UTC):%Y-%m-%d %H:%M} UTC"))
                    self._submit(sync, "catch-up")
            with self._lock:
                self._next[sync] = plan.next_after(now)

    def tick(self) -> list[str]:
        """Queue every sync whose fire time has come; returns their names."""
        now = self._clock.now()
        due: list[str] = []
        with self._lock:
            for sync, nxt in list(self._next.items()):
                if nxt > now:
                    continue
                plan = self.plans[sync]
                slots = [nxt, *plan.fires_between(nxt, now)]
                if len(slots) > 1:
                    self._report(MissedRuns(sync, len(slots) - 1, slots[1], slots[-1],
                                            "the server was busy or asleep past the next slot"))
                self._next[sync] = plan.next_after(now)
                self.fired[sync] = self.fired.get(sync, 0) + 1
                due.append(sync)
        for sync in due:
            self._submit(sync, "schedule")
        if self._on_tick is not None:
            try:
                self._on_tick(now)
            except Exception:  # a periodic check must never stop the schedules
                log.exception("periodic check failed")
        return due

    def next_run(self, sync: str) -> datetime | None:
        """When ``sync`` runs next (UTC), None when it has no schedule."""
        with self._lock:
            return self._next.get(sync)

    def missed_total(self, sync: str) -> int:
        """Scheduled runs of ``sync`` missed since this process started."""
        return sum(m.count for m in self.missed.get(sync, []))

    def start(self) -> None:
        """Tick on a thread until :meth:`stop`, sleeping until the next fire time."""
        self.begin()
        self._thread = threading.Thread(target=self._loop, name="reverse-etl-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            with self._lock:
                soonest = min(self._next.values(), default=None)
            wait = 30.0 if soonest is None else (soonest - self._clock.now()).total_seconds()
            # Wake at least every 30 s: a clock that jumps (suspend, NTP) is noticed soon.
            self._stop.wait(min(max(wait, 0.05), 30.0))

    def _report(self, missed: MissedRuns) -> None:
        self.missed.setdefault(missed.sync, []).append(missed)
        log.warning("sync %s: %s", missed.sync, missed.describe())

def plans_for(syncs: Sequence[tuple[str, Sequence[str], Schedule | None]],
              tag_schedules: Sequence[tuple[Sequence[str], Schedule]]) -> list[SyncPlan]:
    """Plans from each sync's own schedule and the tag schedules that selected it.

    ``syncs``: (name, tags, own schedule); ``tag_schedules``: (names selected, schedule).
    """
    plans = []
    for name, _tags, own in syncs:
        found = [own] if own is not None else []
        found += [schedule for names, schedule in tag_schedules if name in names]
        if found:
            plans.append(SyncPlan(name, tuple(found)))
    return plans

def utc(when: datetime) -> datetime:
    """``when`` in UTC (naive datetimes are taken as UTC: the ledger writes UTC)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
