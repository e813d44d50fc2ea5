"""``serve`` checks staleness on its own clock: a sync that stopped running alerts once, with no run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alert_receivers import WebhookReceiver
from project_factory import ProjectUnderTest
from serve_factory import make_service

from reverse_etl.serve.clock import ManualClock


def test_a_sync_gone_quiet_alerts_once_from_the_scheduler_tick(project: ProjectUnderTest,
                                                                webhook: WebhookReceiver) -> None:
    with project.config() as config:
        config["alerts"] = {"destinations": [{"type": "webhook", "url": webhook.url("/hook")}],
                            "stale_after_hours": 2, "timeout_seconds": 2}
    first = make_service(project)
    first.submit("customers", "api")
    first.queue.run_pending()
    assert webhook.at("/hook") == []  # a success: nothing to say

    now = datetime.now(UTC)
    clock = ManualClock(now + timedelta(hours=1))
    service = make_service(project, clock)
    service.scheduler.begin()
    service.scheduler.tick()
    assert webhook.at("/hook") == []  # 1 h without success: not stale yet

    clock.set(now + timedelta(hours=3))
    service.scheduler.tick()
    (alert,) = webhook.at("/hook")
    assert alert["kind"] == "stale" and alert["sync"] == "customers"
    clock.set(now + timedelta(hours=3, minutes=10))
    service.scheduler.tick()  # the same spell: no second alert
    assert len(webhook.at("/hook")) == 1
    assert [r.sync for r in service.history()] == ["customers"]  # no run was needed to notice
