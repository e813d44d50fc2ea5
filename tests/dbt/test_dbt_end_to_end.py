"""dbt → reverse_etl → Insider, with a real dbt-duckdb project and the emulator.

The reverse_etl project and the dbt project share one DuckDB file: dbt builds
``warehouse.duckdb`` and the sync's DuckDB source reads it, resolving
``model: customers`` through dbt's manifest (there is no models/customers.sql).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dbt_helpers import DbtProject, make_dbt_project

import reverse_etl
from reverse_etl.insider.config import ProjectConfig
from reverse_etl.insider.emulator import Emulator
from reverse_etl.run.results import RunResult, SyncResult

UPSERT = "/api/user/v1/upsert"
ENV = {"INSIDER_API_KEY": "test-key"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        "dbt" not in ProjectConfig.model_fields
        or "dbt_run_results" not in inspect.signature(reverse_etl.run).parameters,
        reason="syncs.yml `dbt:` and reverse_etl.run(dbt_run_results=...) are not wired yet",
    ),
]


def sync(name: str, model: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "model": model, "identifiers": {"uuid": "customer_id"}, **extra}


@pytest.fixture()
def chained(tmp_path: Path, insider_emulator: Emulator) -> DbtProject:
    """A reverse_etl project whose syncs read models of the dbt project beside it."""
    dbt_project = make_dbt_project(tmp_path)  # builds into tmp_path/warehouse.duckdb
    config = {
        "version": 1,
        "source": {"type": "duckdb", "path": "warehouse.duckdb"},
        "dbt": {"project_dir": "dbt_project", "target_path": "target"},
        "destination": {
            "type": "insider",
            "partner": "acme",
            "api_key": "{{ env_var('INSIDER_API_KEY') }}",
            "api_base_url": insider_emulator.url,
            "fps_base_url": insider_emulator.url,
        },
        "syncs": [
            sync(
                "customer_profiles",
                "customers",
                attributes={"email": "email", "name": "first_name", "ltv": "ltv"},
            ),
            sync("broken_contacts", "broken_model", attributes={"email": "email"}),
            sync("value_flags", "orders_summary", attributes={"high_value": "high_value"}),
        ],
    }
    # JSON is YAML; env_var() is rendered in the raw text before parsing.
    (tmp_path / "syncs.yml").write_text(json.dumps(config, indent=2))
    return dbt_project


def run_after_dbt(project: DbtProject, **kwargs: Any) -> dict[str, SyncResult]:
    result: RunResult = reverse_etl.run(
        project.project_dir.parent,
        environ=ENV,
        dbt_run_results=project.target / "run_results.json",
        **kwargs,
    )
    return {s.sync: s for s in result.syncs}


def upserted(emu: Emulator) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    for entry in emu.requests():
        if entry["path"].split("?")[0] == UPSERT and entry["status"] == 200:
            users.extend(entry["body"].get("users", []))
    return users


def test_second_dbt_run_sends_only_the_changed_rows(
    chained: DbtProject, insider_emulator: Emulator
) -> None:
    chained.dbt("build")
    first = run_after_dbt(chained)
    assert {name: r.outcome for name, r in first.items()} == dict.fromkeys(first, "success")
    assert first["customer_profiles"].counts["added"] == 4
    assert insider_emulator.profile(uuid="2")["attributes"]["name"] == "Grace"  # type: ignore[index]

    # Change one customer and add one, rebuild with dbt, sync again.
    seed = chained.seed_csv.read_text().replace("Grace", "Gracie")
    chained.seed_csv.write_text(seed + "5,barbara@example.com,Barbara,42.0\n")
    chained.dbt("build")
    insider_emulator.reset()
    second = run_after_dbt(chained, select=["customer_profiles"])

    counts = second["customer_profiles"].counts
    assert (counts["added"], counts["changed"], counts["unchanged"]) == (1, 1, 3)
    sent = sorted(upserted(insider_emulator), key=lambda u: u["identifiers"]["uuid"])
    assert [u["identifiers"]["uuid"] for u in sent] == ["2", "5"]
    assert sent[0]["attributes"] == {"name": "Gracie"}
    assert insider_emulator.profile(uuid="5")["attributes"]["email"] == "barbara@example.com"  # type: ignore[index]


def test_failed_dbt_model_leaves_its_sync_skipped(
    chained: DbtProject, insider_emulator: Emulator
) -> None:
    chained.dbt("build")
    chained.run_with_broken_model()
    results = run_after_dbt(chained)

    assert results["customer_profiles"].outcome == "success"
    assert results["customer_profiles"].counts["added"] == 4
    broken = results["broken_contacts"]
    assert broken.outcome == "skipped"
    assert "broken_model" in (broken.message or "")
    assert "error: Catalog Error: Table with name does_not_exist" in (broken.message or "")
    value_flags = results["value_flags"]
    assert value_flags.outcome == "skipped"
    assert "not in this dbt run" in (value_flags.message or "")
    assert {u["identifiers"]["uuid"] for u in upserted(insider_emulator)} == {"1", "2", "3", "4"}


def test_cli_chains_after_dbt(chained: DbtProject, insider_emulator: Emulator) -> None:
    from reverse_etl.cli import main

    chained.dbt("seed")
    chained.dbt("run", "--vars", "{break: true}", expect_success=False)
    outcome = CliRunner().invoke(
        main,
        [
            "--project",
            str(chained.project_dir.parent),
            "run",
            "--json",
            "--dbt-run-results",
            str(chained.target / "run_results.json"),
        ],
        env=ENV,
    )
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads(outcome.stdout)
    by_name = {s["sync"]: s for s in summary["syncs"]}
    assert by_name["customer_profiles"]["outcome"] == "success"
    assert by_name["value_flags"]["outcome"] == "success"
    assert by_name["broken_contacts"]["outcome"] == "skipped"
    assert len(insider_emulator.profiles()) == 4
