"""Schedules with an injected clock: both syncs planned, fired on time, missed runs reported, never doubled."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from project_factory import ProjectUnderTest
from serve_factory import make_service, two_sync_project

import reverse_etl
from reverse_etl.errors import ConfigError
from reverse_etl.insider.emulator import Emulator
from reverse_etl.serve.clock import ManualClock
from reverse_etl.serve.queue import QueuedRun, RunQueue


def test_both_syncs_are_scheduled_in_their_own_time_zones(project: ProjectUnderTest) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 10, 15, tzinfo=UTC))
    service = make_service(project, clock)
    service.scheduler.begin()
    assert service.scheduler.next_run("customers") == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    # 06:30 in Istanbul (UTC+3) is 03:30 UTC; 10:15 UTC is past it, so: tomorrow.
    assert service.scheduler.next_run("cities") == datetime(2026, 3, 2, 3, 30, tzinfo=UTC)
    rows = {r["sync"]: r for r in service.overview()}
    assert rows["customers"]["schedule"] == "0 * * * * (UTC)"
    assert rows["cities"]["schedule"] == "30 6 * * * (Europe/Istanbul)"
    assert rows["cities"]["next_run"] == "2026-03-02T03:30:00Z"


def test_a_due_schedule_runs_the_sync_and_plans_the_next(project: ProjectUnderTest,
                                                          insider_emulator: Emulator) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 10, 59, 30, tzinfo=UTC))
    service = make_service(project, clock)
    service.scheduler.begin()
    assert service.scheduler.tick() == []  # not yet
    clock.set(datetime(2026, 3, 1, 11, 0, 1, tzinfo=UTC))
    assert service.scheduler.tick() == ["customers"]
    assert service.queue.run_pending() == 1
    assert [r.sync for r in reverse_etl.history(project.root, environ=project.env)] == ["customers"]
    assert insider_emulator.profile(uuid="u1") is not None
    assert service.scheduler.next_run("customers") == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert service.scheduler.missed_total("customers") == 0


def test_runs_missed_while_the_server_was_down_are_reported_and_caught_up_once(
        project: ProjectUnderTest) -> None:
    first = make_service(project)
    first.submit("customers", "api")
    first.queue.run_pending()
    last = first.history("customers")[-1]
    started = datetime.strptime(last.started_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    # The server comes back 3 h 10 min later: three hourly slots passed without it.
    later = started.replace(minute=0, second=0) + timedelta(hours=3, minutes=10)
    service = make_service(project, ManualClock(later))
    service.scheduler.begin()
    assert service.scheduler.missed_total("customers") == 3
    assert service.scheduler.missed_total("cities") == 0  # never ran: nothing to compare with
    row = next(r for r in service.overview() if r["sync"] == "customers")
    assert row["state"] == "queued" and len(row["missed"]) == 1
    assert row["missed"][0].startswith("3 scheduled run(s) missed between")
    assert service.queue.run_pending() == 1  # one catch-up run, not three
    assert len(service.history("customers")) == 2


def test_a_clock_that_jumps_over_slots_reports_them(project: ProjectUnderTest) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 10, 30, tzinfo=UTC))
    service = make_service(project, clock)
    service.scheduler.begin()
    clock.set(datetime(2026, 3, 1, 13, 5, tzinfo=UTC))  # 11:00, 12:00 and 13:00 all passed
    assert service.scheduler.tick() == ["customers"]
    assert service.scheduler.missed_total("customers") == 2
    assert service.queue.depth == 1


def test_overlapping_triggers_coalesce_into_one_pending_run_and_never_overlap() -> None:
    started, release = threading.Event(), threading.Event()
    active, most, executed = [0], [0], []
    guard = threading.Lock()

    def execute(run: QueuedRun) -> None:
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        executed.append(run.id)
        started.set()
        release.wait(10)
        with guard:
            active[0] -= 1

    queue = RunQueue(execute)
    queue.start()
    try:
        running, joined = queue.submit("customers", "schedule")
        assert not joined and started.wait(10)
        follow_up, joined_1 = queue.submit("customers", "api")      # while running: one follow-up
        again, joined_2 = queue.submit("customers", "dbt-cloud")    # joins the follow-up
        third, joined_3 = queue.submit("customers", "schedule")
        assert (joined_1, joined_2, joined_3) == (False, True, True)
        assert follow_up.id == again.id == third.id != running.id
        assert follow_up.triggers == ["api", "dbt-cloud", "schedule"]
        release.set()
        assert follow_up.done.wait(10)
    finally:
        queue.stop()
    assert executed == [running.id, follow_up.id] and most[0] == 1


def test_a_run_held_by_the_cli_lock_is_refused_not_doubled(served) -> None:  # type: ignore[no-untyped-def]
    from reverse_etl.state import SyncLock

    state_dir = served.service.project.state_dir
    with SyncLock(state_dir / "customers" / "lock", "customers"):
        answer = served.trigger("customers", wait="true").json()
    assert answer["outcome"] == "failed"
    assert "already running" in answer["message"]
    assert served.service.history("customers")[-1].failure == "lock"


@pytest.mark.parametrize(("schedule", "expected"), [
    ("0 * * *", "is not a five-field cron expression"),
    ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
])
def test_a_bad_schedule_is_one_line_naming_the_field(tmp_path: Path, schedule: object, expected: str) -> None:
    project = two_sync_project(tmp_path / "p", "http://127.0.0.1:9")
    with project.config() as config:
        config["syncs"][0]["schedule"] = schedule
    with pytest.raises(ConfigError) as info:
        reverse_etl.validate(project.root, environ=project.env)
    message = str(info.value)
    assert "schedule" in message and expected in message and "\n" not in message.strip()


def test_the_worker_stays_up_after_a_run_fails(project: ProjectUnderTest) -> None:
    service = make_service(project)
    project.write_model("customer_cities", "select nope from raw_customers")
    service.submit("cities", "api")
    service.submit("customers", "api")
    service.queue.start()
    deadline = time.monotonic() + 60
    while service.queue.depth and time.monotonic() < deadline:
        time.sleep(0.05)
    service.queue.stop()
    outcomes = {r.sync: r.outcome for r in service.history()}
    assert outcomes == {"cities": "failed", "customers": "success"}
