"""An events sync: events Insider no longer holds (expired early, profile deleted) are found
by both audits; events other sources sent are not drift; a repair resends exactly the missing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from audit_helpers import drift, found, next_export_day
from click.testing import CliRunner
from project_factory import ProjectUnderTest, make_project

import reverse_etl
from reverse_etl.cli import main
from reverse_etl.insider.audit import AuditResult
from reverse_etl.insider.emulator import Emulator


def events_project(tmp_path: Path, emu: Emulator) -> ProjectUnderTest:
    """30 events of 10 users (u1..u10), 1..30 hours old, synced once."""
    project = make_project(tmp_path / "p", emu.url, rows=10)
    with project.config() as config:
        config["syncs"] = [{"name": "events", "model": "events", "mode": "user_events",
                            "identifiers": {"uuid": "customer_id"},
                            "event": {"name_column": "event_name", "timestamp": "occurred_at", "key": "event_id"}}]
    project.sql("""CREATE TABLE raw_events AS
        SELECT 'e' || i AS event_id, 'u' || (i % 10 + 1) AS customer_id,
               CASE WHEN i % 2 = 0 THEN 'page_viewed' ELSE 'signed_in' END AS event_name,
               date_trunc('second', timezone('UTC', now()) - to_hours(i)) AS occurred_at
        FROM range(1, 31) t(i)""")
    project.write_model("events", "select * from raw_events")
    assert reverse_etl.run(project.root, environ=project.env).exit_code == 0
    return project


def audit(project: ProjectUnderTest, method: str, **options: object) -> AuditResult:
    extra = {"sample": 1000} if method == "sample" else {"segment_id": 123456789, "force": True}
    return reverse_etl.audit(project.root, "events", environ=project.env, examples=100,
                             **{**extra, **options})  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["sample", "full"])
def test_missing_events_are_found_and_resent(tmp_path: Path, insider_emulator: Emulator, method: str) -> None:
    emu = insider_emulator
    project = events_project(tmp_path, emu)
    clean = audit(project, method)
    assert (clean.exit_code, clean.checked, clean.found) == (0, 30, 10)
    if method == "full":
        next_export_day(emu)
    # A web SDK sends u1 an event (not drift); Insider expires u2's two oldest events early; u3 is deleted.
    web = httpx.post(f"{emu.url}/api/user/v1/upsert", headers={"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": "test-key"},
                     json={"users": [{"identifiers": {"uuid": "u1"}, "events": [
                         {"event_name": "page_viewed", "timestamp": emu.profile(uuid="u1")["events"][0]["timestamp"]}]}]})
    assert web.status_code == 200, web.text
    held = sorted(e["timestamp"] for e in emu.profile(uuid="u2")["events"])
    assert len(held) == 3
    expire_before = reverse_etl_epoch(held[1])
    drift(emu, "expire_events", user={"uuid": "u2"}, before=expire_before + 1)
    drift(emu, "delete_profile", user={"uuid": "u3"})
    expected_missing = ({k for (k,) in project.sql(
        f"SELECT event_id FROM raw_events WHERE customer_id = 'u2' AND epoch(occurred_at) <= {expire_before}")}
        | {k for (k,) in project.sql("SELECT event_id FROM raw_events WHERE customer_id = 'u3'")})
    result = audit(project, method)
    assert {key for kind, key, _ in found(result)} == expected_missing
    assert {kind for kind, _, _ in found(result)} == {"event"}
    assert result.exit_code == 3 and result.counts["event"] == len(expected_missing)
    assert result.drifted_users == 2  # u2 and u3
    if method == "sample":
        cli = CliRunner().invoke(main, ["-p", str(project.root), "audit", "events", "--sample", "100"],
                                 env=project.env)
        assert cli.exit_code == 3 and f"{len(expected_missing)} event(s) Insider no longer holds" in cli.stdout
        assert result.cost["quota_units"] == 10 * 2.0  # a read with 2 event names costs 1 + 0.5 * 2
    if method == "full":
        next_export_day(emu)
    before = len(emu.requests())
    repaired = audit(project, method, repair=True)
    assert repaired.exit_code == 0 and repaired.repair is not None
    assert repaired.repair.counts["to_send"] == len(expected_missing)
    resent = [user for e in emu.requests()[before:] if e["path"] == "/api/user/v1/upsert"
              for user in e["body"]["users"]]
    assert sorted(u["identifiers"]["uuid"] for u in resent for _ in u["events"]) == sorted(
        ["u2"] * (len(expected_missing) - 3) + ["u3"] * 3)
    if method == "full":
        next_export_day(emu)
    assert audit(project, method).exit_code == 0


def reverse_etl_epoch(timestamp: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())
