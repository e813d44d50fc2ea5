"""``audit:`` of a sync: serve audits it on schedule and alerts once when drift passes ``alert_above``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alert_receivers import WebhookReceiver
from project_factory import ProjectUnderTest
from serve_factory import make_service

from reverse_etl.insider.emulator import Emulator
from reverse_etl.serve.clock import ManualClock


def audited_project(project: ProjectUnderTest, webhook: WebhookReceiver, **audit: Any) -> None:
    with project.config() as config:
        config["syncs"][0]["audit"] = {"cron": "0 4 * * *", "timezone": "UTC", "sample": 100, **audit}
        config["alerts"] = {"destinations": [{"type": "webhook", "url": webhook.url("/hook")}],
                            "timeout_seconds": 2}


def synced_then_drifted(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    first = make_service(project)
    first.submit("customers", "api")
    first.queue.run_pending()
    assert first.history("customers")[-1].outcome == "success"
    insider_emulator.drift("set_attributes", user={"uuid": "u3"}, attributes={"name": "Edited in the panel"})


def test_a_scheduled_audit_finds_the_drift_and_alerts_once(project: ProjectUnderTest, insider_emulator: Emulator,
                                                          webhook: WebhookReceiver) -> None:
    audited_project(project, webhook)
    synced_then_drifted(project, insider_emulator)
    clock = ManualClock(datetime(2026, 3, 1, 3, 59, tzinfo=UTC))
    service = make_service(project, clock)
    service.audit_scheduler.begin()
    assert service.audit_scheduler.tick() == []
    clock.set(datetime(2026, 3, 1, 4, 0, 5, tzinfo=UTC))
    assert service.audit_scheduler.tick() == ["customers"]
    assert service.queue.run_pending() == 1

    (alert,) = webhook.at("/hook")
    assert alert["kind"] == "drift" and alert["sync"] == "customers"
    assert alert["summary"].startswith("1 user(s) differ at Insider (8.3% of 12 checked")
    assert alert["counts"] == {"attribute": 1}
    assert "reverse-etl audit customers --sample N" in alert["command"]
    row = next(r for r in service.overview() if r["sync"] == "customers")
    assert "1 of 12 user(s) differ at Insider" in row["audit"]
    assert "next audit 2026-03-02T04:00:00Z" in row["audit"]
    # The audit only reads: Insider still holds the edit, and no run was recorded for it.
    assert insider_emulator.profile(uuid="u3")["attributes"]["name"] == "Edited in the panel"
    assert [r.sync for r in service.history()] == ["customers"]


def test_drift_below_alert_above_is_shown_but_not_alerted(project: ProjectUnderTest, insider_emulator: Emulator,
                                                        webhook: WebhookReceiver) -> None:
    audited_project(project, webhook, alert_above=0.5)
    synced_then_drifted(project, insider_emulator)
    service = make_service(project)
    service.submit("audit:customers", "api")
    service.queue.run_pending()
    assert webhook.at("/hook") == []
    row = next(r for r in service.overview() if r["sync"] == "customers")
    assert "1 of 12 user(s) differ at Insider" in row["audit"]
