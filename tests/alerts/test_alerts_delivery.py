"""Alerts reach a local webhook receiver and a local SMTP server, once each, with no secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_receivers import MailReceiver, WebhookReceiver
from project_factory import ProjectUnderTest, make_project

import reverse_etl
from reverse_etl.alerts import check_staleness
from reverse_etl.insider.emulator import Emulator

WRONG_KEY = "wrong-Key-9f8e7d6c"
WEBHOOK_TOKEN = "hook-Token-5a4b3c2d"


def configure_alerts(project: ProjectUnderTest, webhook: WebhookReceiver, smtp: MailReceiver | None,
                     **rules: Any) -> None:
    """alerts: a JSON webhook (its token in the URL), a Slack webhook and (optionally) email."""
    destinations: list[dict[str, Any]] = [
        {"type": "webhook", "url": '{{ env_var("HOOK_URL") }}',
         "headers": {"Authorization": '{{ env_var("HOOK_AUTH") }}'}},
        {"type": "slack", "url": webhook.url("/slack")},
    ]
    if smtp is not None:
        destinations.append({"type": "email", "host": "127.0.0.1", "port": smtp.port,
                             "from": "etl@example.com", "to": ["oncall@example.com", "data@example.com"]})
    project.env["HOOK_URL"] = webhook.url(f"/hook?token={WEBHOOK_TOKEN}")
    project.env["HOOK_AUTH"] = f"Bearer {WEBHOOK_TOKEN}"
    with project.config() as config:
        config["alerts"] = {"destinations": destinations, "timeout_seconds": 2, **rules}


def run(project: ProjectUnderTest) -> reverse_etl.RunResult:
    return reverse_etl.run(project.root, environ=project.env)


def json_alerts(webhook: WebhookReceiver) -> list[dict[str, Any]]:
    return [r["body"] for r in webhook.received if r["path"].startswith("/hook")]


def test_refused_credentials_alert_once_at_each_destination(
        tmp_path: Path, insider_emulator: Emulator, webhook: WebhookReceiver,
        smtp_server: MailReceiver) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=5)
    configure_alerts(project, webhook, smtp_server)
    project.env["INSIDER_API_KEY"] = WRONG_KEY
    result = run(project)
    sync = result.syncs[0]
    assert sync.outcome == "failed" and sync.failure == "auth"
    assert result.exit_code == 4  # the alerts change nothing about how the run ends

    (hook,) = json_alerts(webhook)
    assert hook["kind"] == "failed" and hook["sync"] == "customers" and hook["failure"] == "auth"
    assert hook["run_id"] == sync.run_id and hook["counts"]["to_send"] == 5
    assert hook["command"] == "reverse-etl history customers"
    assert webhook.received[0]["headers"]["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    (slack,) = webhook.at("/slack")
    assert set(slack) == {"text"} and "*reverse-etl: sync 'customers' failed*" in slack["text"]
    assert "investigate: reverse-etl history customers" in slack["text"]
    (mail,) = smtp_server.messages
    assert mail["Subject"] == "reverse-etl: sync 'customers' failed"
    assert smtp_server.envelopes == [("etl@example.com", ["oncall@example.com", "data@example.com"])]
    body = mail.get_payload(decode=True).decode()
    assert f"run: {sync.run_id} (failed)" in body and "to_send=5" in body

    everything = json.dumps([r["body"] for r in webhook.received]) + str(mail)
    assert WRONG_KEY not in everything and WEBHOOK_TOKEN not in everything


def test_partial_run_alerts_above_the_ratio_only(tmp_path: Path, insider_emulator: Emulator,
                                                 webhook: WebhookReceiver) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=20)
    configure_alerts(project, webhook, None, rejected_ratio=0.1)
    insider_emulator.set_faults(reject=["u3", "u4"])  # 2 of 20: 10%, not above the ratio
    assert run(project).syncs[0].outcome == "partial"
    assert webhook.received == []

    project.sql("UPDATE raw_customers SET city = 'Oslo' WHERE customer_id IN ('u5', 'u6', 'u7')")
    insider_emulator.set_faults(reject=["u3", "u4", "u5"])  # retried u3, u4 + 3 changed: 3 of 5 refused
    second = run(project).syncs[0]
    assert second.outcome == "partial" and second.counts["to_send"] == 5
    (hook,) = json_alerts(webhook)
    assert hook["kind"] == "partial" and hook["run_id"] == second.run_id
    assert hook["counts"]["rejected"] == 3 and "60.0% of 5 sent, above 0.1" in hook["summary"]
    assert hook["command"] == "reverse-etl rejected customers"
    assert len(webhook.at("/slack")) == 1


def test_an_undeliverable_alert_is_noted_and_never_fails_the_run(
        tmp_path: Path, insider_emulator: Emulator, webhook: WebhookReceiver) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=5)
    configure_alerts(project, webhook, None)
    with project.config() as config:  # nothing listens on port 9; the receiver answers 500
        config["alerts"]["destinations"][1]["url"] = "http://127.0.0.1:9/slack"
    webhook.status = 500
    insider_emulator.set_faults(reject=["u1"])
    with project.config() as config:
        config["syncs"][0]["options"] = {"max_rejected_ratio": 0.1}  # 1 of 5 rejected: the run fails
    result = run(project)
    sync = result.syncs[0]
    assert sync.outcome == "failed" and sync.failure == "delivery" and result.exit_code == 4
    assert len(json_alerts(webhook)) == 1  # delivered, but answered 500: noted, not retried
    missed = [n for n in sync.notes if "not delivered" in n]
    assert len(missed) == 2, sync.notes
    assert any("HTTP 500" in n for n in missed) and any("ConnectError" in n for n in missed)
    assert all(WEBHOOK_TOKEN not in n for n in sync.notes)
    assert insider_emulator.profile(uuid="u2") is not None  # the rest was delivered and committed
    assert reverse_etl.run(project.root, environ=project.env).syncs[0].counts["to_send"] == 1


def test_stale_sync_alerts_once_per_spell(tmp_path: Path, insider_emulator: Emulator,
                                          webhook: WebhookReceiver) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3)
    configure_alerts(project, webhook, None, stale_after_hours=6)
    first = run(project).syncs[0]
    assert first.outcome == "success" and webhook.received == []
    loaded = reverse_etl.load_project(project.root, project.env)
    now = datetime.now(UTC)
    assert check_staleness(loaded, now=now + timedelta(hours=5)) == []

    later = now + timedelta(hours=7)
    (alert,) = check_staleness(loaded, now=later)
    assert alert.kind == "stale" and alert.sync == "customers"
    (hook,) = json_alerts(webhook)
    assert hook["kind"] == "stale" and hook["last_success"] and "stale after 6 h" in hook["summary"]
    assert check_staleness(loaded, now=later + timedelta(hours=1)) == []  # the same spell
    assert len(json_alerts(webhook)) == 1

    assert run(project).syncs[0].outcome == "success"  # a success ends the spell
    assert check_staleness(loaded, now=datetime.now(UTC) + timedelta(hours=1)) == []
    assert len(check_staleness(loaded, now=datetime.now(UTC) + timedelta(hours=7))) == 1


def test_staleness_is_checked_when_any_sync_of_the_project_runs(
        tmp_path: Path, insider_emulator: Emulator, webhook: WebhookReceiver) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3)
    with project.config() as config:
        config["syncs"].append({**config["syncs"][0], "name": "customers_copy"})
    configure_alerts(project, webhook, None, stale_after_hours=1)
    assert reverse_etl.run(project.root, environ=project.env).exit_code == 0
    # customers last succeeded 2 hours ago (its ledger says so); only customers_copy runs now.
    ledger = project.root / ".reverse_etl" / "runs.jsonl"
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    old = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for record in records:
        if record["sync"] == "customers":
            record["started_at"] = record["finished_at"] = old
    ledger.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = reverse_etl.run(project.root, environ=project.env, select=["customers_copy"])
    assert result.exit_code == 0
    (hook,) = json_alerts(webhook)
    assert hook["kind"] == "stale" and hook["sync"] == "customers" and hook["last_success"] == old


@pytest.mark.parametrize(("alerts", "expected"), [
    ({"destinations": []}, "syncs.yml:2: alerts.destinations: List should have at least 1 item"),
    ({"destinations": [{"type": "pager", "url": "x"}]}, "alerts.destinations[0]"),
    ({"destinations": [{"type": "email", "host": "h", "from": "nobody", "to": ["a@b.c"]}]},
     "alerts.destinations[0].email.from"),
    ({"destinations": [{"type": "slack", "url": "http://x"}], "rejected_ratio": True}, "alerts.rejected_ratio"),
    ({"destinations": [{"type": "slack", "url": "http://x"}], "stale_hours": 3}, "alerts.stale_hours"),
])
def test_bad_alerts_config_is_one_line_naming_the_field(tmp_path: Path, alerts: dict[str, Any],
                                                         expected: str) -> None:
    project = make_project(tmp_path / "p")
    with project.config() as config:
        pass
    project.write_config({"alerts": alerts, **config})
    with pytest.raises(reverse_etl.ConfigError) as info:
        reverse_etl.load_project(project.root, project.env)
    message = str(info.value)
    assert expected in message and "\n" not in message, message


@pytest.mark.parametrize(("destination", "expected"), [
    ({"type": "email", "host": "h", "from": "a@b.c", "to": ["a@b.c"], "password": "literal-Pass1"},
     "alerts.destinations[0].password is a secret written literally"),
    ({"type": "webhook", "url": "http://127.0.0.1/h?token=abcd1234"}, "holds a literal token= parameter"),
    ({"type": "webhook", "url": "http://127.0.0.1/h", "headers": {"Authorization": "Bearer abc123"}},
     "alerts.destinations[0].headers.Authorization is a secret written literally"),
])
def test_alert_secrets_written_literally_are_refused(tmp_path: Path, destination: dict[str, Any],
                                                     expected: str) -> None:
    project = make_project(tmp_path / "p")
    with project.config() as config:
        config["alerts"] = {"destinations": [destination]}
    with pytest.raises(reverse_etl.ConfigError, match="env_var") as info:
        reverse_etl.load_project(project.root, project.env)
    assert expected in str(info.value)
