"""``reverse-etl audit``: exit 0 equal, 3 drifted; --json; one error line for bad usage;
boolean audiences; modes it cannot audit; the emulator's drift API answers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from audit_helpers import SEGMENT, audit, drift, found, synced
from click.testing import CliRunner

import reverse_etl
from reverse_etl.cli import main
from reverse_etl.insider.emulator import Emulator


def cli(project_root: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["-p", str(project_root), "audit", "customers", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_exit_codes_text_and_json(tmp_path: Path, insider_emulator: Emulator) -> None:
    emu = insider_emulator
    project = synced(tmp_path, emu)
    code, out, _ = cli(project.root, project.env, "--sample", "50")
    assert code == 0 and "customers: no drift" in out and "12 profile read(s)" in out
    drift(emu, "set_attributes", user={"uuid": "u2"}, attributes={"city": "Paris"})
    code, out, _ = cli(project.root, project.env, "--full", "--segment", str(SEGMENT), "--force")
    assert code == 3
    assert "1 user(s) with attributes that differ" in out
    assert 'u2 attributes.city: model "City2", Insider "Paris"' in out
    assert "rerun with --repair" in out and "test-key" not in out
    code, out, _ = cli(project.root, project.env, "--sample", "50", "--json")
    report = json.loads(out)
    assert (code, report["exit_code"], report["drifted"], report["counts"]["attribute"]) == (3, 3, True, 1)
    assert report["examples"]["attribute"][0]["insider"] == '"Paris"'
    code, out, _ = cli(project.root, project.env, "--sample", "50", "--repair")
    assert code == 0 and "repair: success" in out
    assert cli(project.root, project.env, "--sample", "50")[0] == 0


def test_usage_errors_are_one_line(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = synced(tmp_path, insider_emulator, rows=2)
    for args in ([], ["--sample", "5", "--full"], ["--sample", "0"]):
        code, _, err = cli(project.root, project.env, *args)
        assert code == 1 and len([line for line in err.splitlines() if line.startswith("error:")]) == 1, args
    code, _, err = cli(project.root, project.env, "--full")
    assert code == 1 and "--segment ID" in err and "Traceback" not in err
    code, _, err = cli(project.root, project.env, "--full", "--segment", "999", "--force")
    assert code == 4 and "segment_id 999 is not a dynamic segment" in err and "check --segment" in err


def test_boolean_audiences(tmp_path: Path, insider_emulator: Emulator) -> None:
    emu = insider_emulator
    project = synced(tmp_path, emu, rows=4, audiences=[{"name": "High Value", "when": "lifetime_value > 20"}])
    # u2..u4 are members (true); u1 never entered: absent and false both mean "not a member".
    drift(emu, "set_attributes", user={"uuid": "u1"}, custom={"high_value": False})
    assert audit(project, "sample").drifted_users == 0
    drift(emu, "set_attributes", user={"uuid": "u3"}, custom={"high_value": False})
    result = audit(project, "sample")
    assert found(result) == {("attribute", "u3", "attributes.high_value")}
    assert audit(project, "sample", repair=True).exit_code == 0
    assert emu.profile(uuid="u3")["attributes"]["custom"]["high_value"] is True


def test_a_sync_without_attributes_to_compare_is_refused(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = synced(tmp_path, insider_emulator, rows=2)
    with project.config() as config:
        config["syncs"][0]["operation"] = "delete_attributes"
    code, _, err = cli(project.root, project.env, "--sample", "5")
    assert code == 1 and "audit compares user attributes" in err


def test_drift_api_answers(insider_emulator: Emulator) -> None:
    emu = insider_emulator
    emu.add_profile("p1", {"uuid": "a"}, {"name": "A"})
    emu.add_profile("p2", {"uuid": "b", "email": "b@x.io"}, {"name": "B", "city": "C"})
    with emu.state.lock:
        emu.state.store.by_id["p1"].events.extend([{"event_name": "e", "timestamp": "2024-01-01T00:00:00Z"},
                                                    {"event_name": "e", "timestamp": "2025-01-01T00:00:00Z"}])
        emu.state.store.events += 2
    url = f"{emu.url}/_emulator/drift"
    assert httpx.post(url, json={"action": "expire_events", "before": 1704153600}).json()["expired"] == 1
    assert [e["timestamp"] for e in emu.profile(uuid="a")["events"]] == ["2025-01-01T00:00:00Z"]
    assert httpx.post(url, json={"action": "nope"}).status_code == 400
    assert httpx.post(url, json={"action": "delete_profile", "user": {"uuid": "zz"}}).status_code == 404
    assert httpx.post(url, json={"action": "set_identifier", "user": {"uuid": "a"}, "kind": "email",
                                 "value": "b@x.io"}).status_code == 400  # someone else's
    drift(emu, "unify", user={"uuid": "b"}, into={"uuid": "a"})
    merged = emu.profile(uuid="a")
    assert merged["identifiers"]["email"] == "b@x.io" and merged["attributes"]["city"] == "C"
    assert merged["attributes"]["name"] == "A" and emu.profile(insider_id="p2") is None
    assert reverse_etl.AuditResult  # the API exports the result type


def test_invalid_model_rows_are_never_audited(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = synced(tmp_path, insider_emulator, rows=5)
    project.sql("INSERT INTO raw_customers VALUES (NULL, 'nokey@example.com', 'N', 'C', 1.0, ['t'])")
    result = audit(project, "sample")
    assert (result.invalid_rows, result.model_rows, result.checked, result.drifted_users) == (1, 5, 5, 0)
