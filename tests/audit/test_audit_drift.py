"""Each kind of drift, injected into the emulator after a successful sync, is found exactly,
by a sample audit (profile reads) and a full one (raw export); a repair clears it."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_helpers import audit, drift, found, next_export_day, synced

import reverse_etl
from reverse_etl.insider.emulator import Emulator

METHODS = ["sample", "full"]


@pytest.mark.parametrize("method", METHODS)
def test_unchanged_tenant_is_no_drift(tmp_path: Path, insider_emulator: Emulator, method: str) -> None:
    project = synced(tmp_path, insider_emulator)
    result = audit(project, method)
    assert (result.exit_code, result.drifted_users, result.checked, result.found) == (0, 0, 12, 12)
    assert result.repair is None


@pytest.mark.parametrize("method", METHODS)
def test_each_injected_drift_is_reported_exactly(tmp_path: Path, insider_emulator: Emulator, method: str) -> None:
    emu = insider_emulator
    project = synced(tmp_path, emu)
    drift(emu, "set_attributes", user={"uuid": "u3"}, attributes={"city": "Paris"})   # panel edit
    drift(emu, "set_attributes", user={"uuid": "u4"}, custom={"ltv": 1.5, "tags": None})  # other integration
    drift(emu, "set_identifier", user={"uuid": "u5"}, kind="email", value="moved@example.com")
    drift(emu, "delete_profile", user={"uuid": "u6"})
    drift(emu, "delete_pii", user={"uuid": "u7"})  # name, city and the email identifier go
    drift(emu, "unify", user={"uuid": "u8"}, into={"uuid": "u9"})  # u8 merged away

    result = audit(project, method)

    assert found(result) == {
        ("attribute", "u3", "attributes.city"),
        ("attribute", "u4", "attributes.ltv"), ("attribute", "u4", "attributes.tags"),
        ("identifier", "u5", "identifiers.email"),
        ("missing", "u6", None),
        ("attribute", "u7", "attributes.name"), ("attribute", "u7", "attributes.city"),
        ("identifier", "u7", "identifiers.email"),
        ("missing", "u8", None),
    }
    assert result.counts == {"missing": 2, "removed_present": 0, "identifier": 2, "attribute": 3, "event": 0}
    assert (result.drifted_users, result.exit_code) == (6, 3)
    by_key = {(ex["key"], ex["field"]): ex for exs in result.examples.values() for ex in exs}
    assert (by_key["u3", "attributes.city"]["model"], by_key["u3", "attributes.city"]["insider"]) == (
        '"City3"', '"Paris"')
    assert by_key["u4", "attributes.ltv"]["insider"] == "1.5"
    assert by_key["u5", "identifiers.email"]["insider"] == '"moved@example.com"'
    if method == "sample":
        assert result.cost["profile_reads"] == 12 and result.cost["quota_units"] == 12
    else:
        assert result.cost["raw_exports"] == 1


@pytest.mark.parametrize("method", METHODS)
def test_dry_run_sends_nothing_and_repair_clears_the_drift(tmp_path: Path, insider_emulator: Emulator,
                                                           method: str) -> None:
    emu = insider_emulator
    project = synced(tmp_path, emu)
    drift(emu, "set_attributes", user={"uuid": "u3"}, attributes={"city": "Paris"}, custom={"ltv": 7})
    drift(emu, "set_identifier", user={"uuid": "u5"}, kind="email", value="moved@example.com")
    drift(emu, "delete_profile", user={"uuid": "u6"})
    drift(emu, "delete_pii", user={"uuid": "u7"})
    before = emu.profiles()
    writes = emu.counts()["rows_accepted"]

    planned = audit(project, method)
    assert planned.repair is not None and not planned.repaired and planned.repair.outcome == "planned"
    assert planned.repair.counts["to_send"] >= 4
    assert emu.profiles() == before and emu.counts()["rows_accepted"] == writes  # a dry run sends nothing
    if method == "full":
        next_export_day(emu)

    sent_before = len(emu.requests())
    repaired = audit(project, method, repair=True)
    assert repaired.repaired and repaired.repair is not None and repaired.repair.outcome == "success"
    assert repaired.exit_code == 0
    # Exactly the drifted users were written: u3 (two attributes), u5 (identity), u6 (new), u7 (PII back).
    repair_requests = [e for e in emu.requests()[sent_before:] if not e["path"].startswith(("/api/raw", "/acme/"))]
    written = {user["identifiers"]["uuid"] for entry in repair_requests
               if entry["path"] == "/api/user/v1/upsert" for user in entry["body"]["users"]}
    assert written == {"u3", "u6", "u7"}
    assert [e["body"] for e in repair_requests if e["path"] == "/api/user/v1/identity"] == [
        {"old_identifier": {"email": "moved@example.com"}, "new_identifier": {"email": "user5@example.com"}}]
    assert emu.profile(uuid="u3")["attributes"]["city"] == "City3"
    assert emu.profile(uuid="u3")["attributes"]["custom"]["ltv"] == 31.5
    assert emu.profile(uuid="u5")["identifiers"]["email"] == "user5@example.com"
    assert emu.profile(uuid="u6")["attributes"]["name"] == "Name6"
    assert emu.profile(uuid="u7")["identifiers"]["email"] == "user7@example.com"
    # The repair is a run like any other: in the ledger, and the next run sends nothing.
    last = reverse_etl.history(project.root, environ=project.env)[-1]
    assert last.outcome == "success" and last.counts["acked"] == repaired.repair.counts["to_send"]
    assert any("audit repair: 4 drifted key(s)" in note for note in last.details["notes"])
    if method == "full":
        next_export_day(emu)
    after = audit(project, method)
    assert (after.exit_code, after.drifted_users) == (0, 0)
    rerun = reverse_etl.run(project.root, environ=project.env)
    assert rerun.syncs[0].counts["to_send"] == 0


@pytest.mark.parametrize("method", METHODS)
def test_user_the_model_removed_but_insider_holds(tmp_path: Path, insider_emulator: Emulator,
                                                  method: str) -> None:
    emu = insider_emulator
    project = synced(tmp_path, emu, on_removed="delete_user")
    project.sql("DELETE FROM raw_customers WHERE customer_id = 'u2'")  # removed, not yet run
    result = audit(project, method)
    assert found(result) == {("removed_present", "u2", None)}
    assert result.counts["removed_present"] == 1 and result.exit_code == 3
    if method == "full":
        next_export_day(emu)
    repaired = audit(project, method, repair=True)
    assert repaired.exit_code == 0 and repaired.repair is not None
    assert repaired.repair.counts["removed"] == 1 and repaired.repair.counts["to_send"] == 1
    assert emu.profile(uuid="u2") is None and emu.profile(uuid="u3") is not None


def test_profiles_other_sources_created_are_not_drift(tmp_path: Path, insider_emulator: Emulator) -> None:
    emu = insider_emulator
    project = synced(tmp_path, emu, on_removed="delete_user")
    drift(emu, "add_profile", insider_id="csv-import-1", identifiers={"uuid": "web-1"},
          attributes={"name": "Imported"})
    result = audit(project, "full")
    assert (result.exit_code, result.drifted_users, result.not_in_model) == (0, 0, 1)
