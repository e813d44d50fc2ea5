"""Prefect: the README's flow and the ready-made flow under ``prefect_test_harness``."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require, write_env
from project_factory import ProjectUnderTest

import reverse_etl
from reverse_etl.insider.emulator import Emulator

require("prefect")

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from reverse_etl.integrations.prefect import ReverseEtlStepFailed, reverse_etl_flow  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent / "examples" / "prefect_flow.py"


@pytest.fixture(scope="module", autouse=True)
def harness() -> Iterator[None]:
    """One temporary Prefect server and database for the module's flows.

    Its first start in a fresh venv (byte-compiling, migrating) on a loaded 2-core
    CI machine took more than the default 30 s; a slow start is not what is tested.
    """
    with prefect_test_harness(server_startup_timeout=240):
        yield


def test_the_flow_returns_the_run_result(project: ProjectUnderTest, insider_emulator: Emulator,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_PROJECT", str(project.root))
    nightly_syncs = runpy.run_path(str(EXAMPLE))["nightly_syncs"]

    state = nightly_syncs(return_state=True)

    assert state.is_completed()
    result = state.result()
    (last,) = reverse_etl.history(project.root)  # tag:daily: only `customers` ran
    assert result["exit_code"] == 0
    (sync,) = result["syncs"]
    assert (sync["sync"], sync["run_id"], sync["outcome"]) == ("customers", last.run_id, "success")
    assert (sync["counts"]["added"], sync["counts"]["acked"]) == (10, 10)
    assert len(insider_emulator.profiles()) == 10


def test_a_failed_sync_fails_the_task_and_flow_with_the_tools_one_line_reason(
        project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    write_env(project, "wrong-key")

    state = reverse_etl_flow(str(project.root), select=["cities"], return_state=True)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    (last,) = reverse_etl.history(project.root)
    assert isinstance(error, ReverseEtlStepFailed)
    assert str(error) == f"cities: failed: {last.error}"
    assert error.summary is not None and error.summary["exit_code"] == 4
    assert "wrong-key" not in str(error) + str(state.message)
    assert insider_emulator.profiles() == []


def test_a_partial_run_completes_when_allowed(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(reject=["u4"])

    strict = reverse_etl_flow(str(project.root), select=["cities"], return_state=True)
    assert strict.is_failed()
    assert str(strict.result(raise_on_failure=False)).startswith("cities: partial: 1 rejected")

    insider_emulator.set_faults(reject=["u4"])
    project.sql("UPDATE raw_customers SET city = 'Rome' WHERE customer_id IN ('u4', 'u6')")
    lenient = reverse_etl_flow(str(project.root), select=["cities"], fail_on_partial=False,
                               return_state=True)
    assert lenient.is_completed()
    (sync,) = lenient.result()["syncs"]
    assert sync["outcome"] == "partial" and sync["counts"]["rejected"] >= 1
    assert insider_emulator.profile(uuid="u6")["attributes"]["city"] == "Rome"  # type: ignore[index]
