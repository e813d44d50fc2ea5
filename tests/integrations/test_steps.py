"""The step every orchestrator shares (reverse_etl.integrations.steps), in the main suite."""

from __future__ import annotations

import json

import pytest
from conftest import write_env
from project_factory import ProjectUnderTest

import reverse_etl
from reverse_etl.insider.emulator import Emulator
from reverse_etl.integrations.steps import StepFailed, load_structure, run_step, summary


def test_a_successful_step_returns_the_run_and_its_summary(project: ProjectUnderTest,
                                                           insider_emulator: Emulator) -> None:
    result = run_step(project.root, select=["tag:weekly"])

    data = summary(result)
    (last,) = reverse_etl.history(project.root)
    assert data["exit_code"] == 0
    assert [(s["sync"], s["run_id"], s["counts"]["acked"]) for s in data["syncs"]] == [("cities", last.run_id, 10)]
    assert "samples" not in data["syncs"][0]
    json.dumps(data)  # JSON-ready, as XCom and Prefect results need


def test_a_failed_sync_raises_the_clis_line(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    write_env(project, "wrong-key")

    with pytest.raises(StepFailed) as failed:
        run_step(project.root)

    ledger = {r.sync: r for r in reverse_etl.history(project.root)}
    assert str(failed.value) == (f"customers: failed: {ledger['customers'].error}; "
                                 f"cities: failed: {ledger['cities'].error}")
    assert failed.value.exit_code == 4 and failed.value.result is not None


def test_partial_fails_the_step_unless_allowed(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(reject=["u1"])
    with pytest.raises(StepFailed, match=r"^cities: partial: 1 rejected"):
        run_step(project.root, select=["cities"])

    insider_emulator.set_faults(reject=["u1"])
    project.sql("UPDATE raw_customers SET city = 'Lima' WHERE customer_id IN ('u1', 'u9')")
    result = run_step(project.root, select=["cities"], fail_on_partial=False)
    assert result.syncs[0].outcome == "partial" and result.exit_code == 3


def test_a_project_that_does_not_load_is_one_line(project: ProjectUnderTest) -> None:
    with pytest.raises(StepFailed) as failed:
        run_step(project.root, select=["no_such_sync"])
    assert "no_such_sync" in str(failed.value) and "\n" not in str(failed.value)
    assert failed.value.result is None and failed.value.exit_code == 1


def test_definitions_load_without_the_secrets(project: ProjectUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    (project.root / ".env").unlink()
    monkeypatch.delenv("INSIDER_API_KEY", raising=False)

    loaded = load_structure(project.root)

    assert [(s.name, s.tags) for s in loaded.config.syncs] == [("customers", ["daily"]), ("cities", ["weekly"])]
    with pytest.raises(StepFailed, match="INSIDER_API_KEY is not set"):
        run_step(project.root)
