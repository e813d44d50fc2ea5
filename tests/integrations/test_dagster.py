"""Dagster: the assets materialized in process with ``materialize()`` against the emulator."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import require, write_env
from project_factory import ProjectUnderTest

import reverse_etl
from reverse_etl.insider.emulator import Emulator

dg = require("dagster")
EXAMPLE = Path(__file__).resolve().parent / "examples" / "dagster_defs.py"
FIXTURE_PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "dbt_project"

from reverse_etl.integrations.dagster import ReverseEtlResource, reverse_etl_assets  # noqa: E402


@pytest.fixture
def example(project: ProjectUnderTest, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The README's definitions file, loaded for ``project`` (its names: syncs, defs)."""
    monkeypatch.setenv("ETL_PROJECT", str(project.root))
    return runpy.run_path(str(EXAMPLE))


def materialize(example: dict[str, Any], **kwargs: Any) -> dg.ExecuteInProcessResult:
    return dg.materialize(example["syncs"], resources=example["defs"].resources,
                          instance=dg.DagsterInstance.ephemeral(), **kwargs)


def recorded(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    """What Dagster recorded: asset name -> materialization metadata values."""
    out = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        out[materialization.asset_key.path[-1]] = {k: v.value for k, v in materialization.metadata.items()}
    return out


def test_each_sync_is_an_asset_whose_materialization_records_the_run(
        project: ProjectUnderTest, example: dict[str, Any], insider_emulator: Emulator) -> None:
    result = materialize(example)

    assert result.success
    events = recorded(result)
    assert set(events) == {"customers", "cities"}
    meta = events["customers"]
    ledger = {r.sync: r for r in reverse_etl.history(project.root)}
    assert meta["run_id"] == ledger["customers"].run_id
    assert meta["outcome"] == "success"
    assert (meta["added"], meta["acked"], meta["rejected"]) == (10, 10, 0)
    assert meta["duration_seconds"] == pytest.approx(ledger["customers"].seconds, abs=0.05)
    assert len(insider_emulator.profiles()) == 10
    assert insider_emulator.profile(uuid="u3")["attributes"]["city"] == "City3"  # type: ignore[index]

    # The next materialization sends only what changed: one row.
    project.sql("UPDATE raw_customers SET city = 'Paris' WHERE customer_id = 'u3'")
    again = materialize(example, selection=dg.AssetSelection.assets("cities"))
    meta = recorded(again)["cities"]
    assert list(recorded(again)) == ["cities"]
    assert (meta["changed"], meta["unchanged"], meta["acked"]) == (1, 9, 1)
    assert insider_emulator.profile(uuid="u3")["attributes"]["city"] == "Paris"  # type: ignore[index]


def test_the_daily_job_selects_the_assets_by_the_syncs_tag(
        project: ProjectUnderTest, example: dict[str, Any], insider_emulator: Emulator) -> None:
    job = example["defs"].resolve_job_def("daily_syncs")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())

    assert result.success
    assert list(recorded(result)) == ["customers"]
    assert [r.sync for r in reverse_etl.history(project.root)] == ["customers"]
    # reverse_etl's own selectors choose which assets exist at all.
    assert [a.key.path for a in reverse_etl_assets(project.root, select=["tag:weekly"])] == [["cities"]]


def test_a_failed_sync_fails_its_asset_with_the_tools_one_line_reason(
        project: ProjectUnderTest, example: dict[str, Any], insider_emulator: Emulator) -> None:
    write_env(project, "wrong-key")

    result = materialize(example, raise_on_error=False)

    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 2
    ledger = {r.sync: r for r in reverse_etl.history(project.root)}
    # Failure.description: the line Dagster's UI shows for the failed step.
    descriptions = {f.step_key: f.event_specific_data.user_failure_data.description for f in failures}
    for sync in ("customers", "cities"):
        assert descriptions[sync] == f"{sync}: failed: {ledger[sync].error}"
        assert "Insider refused the credentials" in descriptions[sync]
    assert "wrong-key" not in str(descriptions)
    assert result.get_asset_materialization_events() == []
    assert insider_emulator.profiles() == []


def test_a_partial_sync_fails_its_asset_unless_allowed(project: ProjectUnderTest,
                                                       insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(reject=["u2"])
    assets = reverse_etl_assets(project.root, select=["customers"])

    strict = dg.materialize(assets, resources={"reverse_etl": ReverseEtlResource(project_dir=str(project.root))},
                            raise_on_error=False)
    assert not strict.success
    (failure,) = [e for e in strict.all_events if e.event_type_value == "STEP_FAILURE"]
    (last,) = reverse_etl.history(project.root)
    assert failure.event_specific_data.user_failure_data.description == f"customers: partial: {last.error}"
    assert "1 rejected" in last.error  # type: ignore[operator]

    insider_emulator.set_faults(reject=["u2"])
    project.sql("UPDATE raw_customers SET city = 'Oslo' WHERE customer_id IN ('u2', 'u5')")
    lenient = dg.materialize(assets, resources={"reverse_etl": ReverseEtlResource(
        project_dir=str(project.root), fail_on_partial=False)})
    meta = recorded(lenient)["customers"]
    assert meta["outcome"] == "partial" and meta["rejected"] >= 1
    assert insider_emulator.profile(uuid="u5")["attributes"]["city"] == "Oslo"  # type: ignore[index]


def test_a_dbt_models_sync_depends_on_the_asset_dagster_dbt_makes_for_it(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    dagster_dbt = require("dagster_dbt")
    dbt_dir = tmp_path / "dbt_project"
    shutil.copytree(FIXTURE_PROJECT, dbt_dir, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*"))
    (tmp_path / "syncs.yml").write_text(f"""
version: 1
source: {{type: duckdb, path: warehouse.duckdb}}
dbt: {{project_dir: dbt_project, target_path: target}}
destination:
  type: insider
  partner: acme
  api_key: "{{{{ env_var('INSIDER_API_KEY') }}}}"
  api_base_url: {insider_emulator.url}
  fps_base_url: {insider_emulator.url}
syncs:
  - name: customer_profiles
    model: customers
    identifiers: {{uuid: customer_id}}
    attributes: {{email: email, ltv: ltv}}
""")
    (tmp_path / ".env").write_text("INSIDER_API_KEY=test-key\n")
    env = {"DBT_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"), "DO_NOT_TRACK": "1"}
    dbt = dagster_dbt.DbtCliResource(project_dir=str(dbt_dir), profiles_dir=str(dbt_dir),
                                     dbt_executable=str(Path(sys.executable).parent / "dbt"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        _dbt_parse(dbt_dir, env)

        # The resource by key, not by a parameter annotation: this module's annotations are strings.
        @dagster_dbt.dbt_assets(manifest=dbt_dir / "target" / "manifest.json", select="customers_seed customers",
                                required_resource_keys={"dbt"})
        def shop(context):  # type: ignore[no-untyped-def]
            yield from context.resources.dbt.cli(["build"], context=context).stream()

        (sync_asset,) = reverse_etl_assets(tmp_path)
        (spec,) = sync_asset.specs
        assert [d.asset_key for d in spec.deps] == [dg.AssetKey(["customers"])]
        assert dg.AssetKey(["customers"]) in shop.keys  # the very key dagster-dbt gave the model

        result = dg.materialize([shop, sync_asset], resources={
            "dbt": dbt, "reverse_etl": ReverseEtlResource(project_dir=str(tmp_path))})

    assert result.success
    keys = [e.step_materialization_data.materialization.asset_key
            for e in result.get_asset_materialization_events()]
    assert keys[-1] == dg.AssetKey("customer_profiles") and set(keys[:-1]) <= set(shop.keys)
    assert len(insider_emulator.profiles()) > 0

    # After a dbt invocation that did not rebuild `customers`, the sync is skipped: no materialization.
    subprocess.run([str(Path(sys.executable).parent / "dbt"), "seed", "--project-dir", str(dbt_dir),
                    "--profiles-dir", str(dbt_dir)], cwd=dbt_dir, env={**os.environ, **env}, check=True,
                   capture_output=True, timeout=240)
    sent = len(insider_emulator.requests())
    gated = dg.materialize([sync_asset], resources={"reverse_etl": ReverseEtlResource(
        project_dir=str(tmp_path), dbt_run_results=str(dbt_dir / "target" / "run_results.json"))})
    assert gated.success
    assert gated.get_asset_materialization_events() == []
    assert len(insider_emulator.requests()) == sent


def _dbt_parse(dbt_dir: Path, env: dict[str, str]) -> None:
    """``dbt parse`` so the manifest exists before definitions are read (as `dagster dev` needs)."""
    dbt = str(Path(sys.executable).parent / "dbt")
    subprocess.run([dbt, "parse", "--project-dir", str(dbt_dir), "--profiles-dir", str(dbt_dir)],
                   cwd=dbt_dir, env={**os.environ, **env}, check=True, capture_output=True, timeout=240)
