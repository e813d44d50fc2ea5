"""Which syncs run after a dbt invocation, from its run_results.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from dbt_helpers import DbtArtifacts, manifest_json, node

from reverse_etl.errors import ConfigError
from reverse_etl.project.dbt import Verdict, classify, load_manifest, load_run_results

MODELS = ["customers", "orders_summary", "broken_model"]


# ------------------------------------------------------------ real dbt invocations
def test_successful_build_runs_every_model(dbt_artifacts: DbtArtifacts) -> None:
    manifest = load_manifest(dbt_artifacts.project.project_dir)
    results = load_run_results(dbt_artifacts.build)
    assert results.command == "build"
    assert results["model.reverse_etl_fixture.customers"] == "success"
    verdicts = classify(manifest, results, MODELS)
    assert {name: str(v) for name, v in verdicts.items()} == dict.fromkeys(MODELS, "run")
    assert verdicts["customers"].unique_id == "model.reverse_etl_fixture.customers"


def test_failed_model_is_skipped_with_dbts_error(dbt_artifacts: DbtArtifacts) -> None:
    manifest = load_manifest(dbt_artifacts.project.project_dir)
    verdicts = classify(manifest, load_run_results(dbt_artifacts.broken), MODELS)

    assert verdicts["customers"].should_run
    broken = verdicts["broken_model"]
    assert not broken.should_run
    assert broken.status == "error"
    # The header "Runtime Error in model broken_model (...)" is dropped for the cause.
    assert str(broken).startswith("skip: error: Catalog Error: Table with name does_not_exist")
    assert "\n" not in str(broken)
    assert str(verdicts["orders_summary"]) == "skip: not in this dbt run"


def test_failed_dbt_test_blocks_its_model_and_children(dbt_artifacts: DbtArtifacts) -> None:
    manifest = load_manifest(dbt_artifacts.project.project_dir)
    results = load_run_results(dbt_artifacts.failed_tests)
    verdicts = classify(manifest, results, MODELS)

    customers = verdicts["customers"]
    assert customers.status == "success" and not customers.should_run
    assert customers.reason == (
        "dbt test customers_have_emails failed: Got 4 results, configured to fail if != 0"
    )
    assert str(verdicts["orders_summary"]) == (
        "skip: skipped by dbt because dbt test customers_have_emails failed"
    )
    relaxed = classify(manifest, results, ["customers"], block_on_failed_tests=False)
    assert relaxed["customers"].should_run


def test_plain_status_mapping_is_accepted(dbt_artifacts: DbtArtifacts) -> None:
    manifest = load_manifest(dbt_artifacts.project.project_dir)
    statuses = dict(load_run_results(dbt_artifacts.broken))
    verdicts = classify(manifest, statuses, MODELS)
    assert verdicts["customers"] == Verdict(
        "run", "", "model.reverse_etl_fixture.customers", "success"
    )
    assert str(verdicts["broken_model"]) == "skip: error in dbt"


def test_unknown_model_is_a_config_error(dbt_artifacts: DbtArtifacts) -> None:
    manifest = load_manifest(dbt_artifacts.project.project_dir)
    with pytest.raises(ConfigError, match="'custmers' not found"):
        classify(manifest, load_run_results(dbt_artifacts.build), ["custmers"])


# --------------------------------------------------------------- synthetic files
Write = Callable[..., Path]


@pytest.fixture
def shop(write_manifest: Write) -> Path:
    return write_manifest(
        manifest_json(
            [
                node("customers"),
                node("orders", depends_on=("model.shop.customers",)),
                node("events", materialized="incremental"),
            ]
        )
    )


def run_results(tmp_path: Path, results: list[dict[str, object]], **args: object) -> Path:
    path = tmp_path / "run_results.json"
    document = {
        "metadata": {"generated_at": "2026-01-01T00:00:00Z", "invocation_id": "abc"},
        "results": results,
        "elapsed_time": 1.0,
        "args": {"which": "run", **args},
    }
    path.write_text(json.dumps(document))
    return path


def result(uid: str, status: str, message: str | None = "OK") -> dict[str, object]:
    return {"unique_id": uid, "status": status, "message": message, "timing": []}


def test_skipped_and_partial_statuses(shop: Path, tmp_path: Path) -> None:
    path = run_results(
        tmp_path,
        [
            result(
                "model.shop.customers",
                "error",
                "Database Error in model customers "
                "(models/customers.sql)\n  permission denied for schema main\n  more",
            ),
            result("model.shop.orders", "skipped", None),
            result("model.shop.events", "partial success", "2 of 3 batches"),
        ],
    )
    loaded = load_run_results(path)
    assert (loaded.generated_at, loaded.invocation_id, len(loaded)) == (
        "2026-01-01T00:00:00Z",
        "abc",
        3,
    )
    verdicts = classify(load_manifest(shop), loaded, ["customers", "orders", "events"])
    assert verdicts["customers"].reason == "error: permission denied for schema main"
    assert verdicts["orders"].reason == "skipped by dbt because customers failed"
    assert verdicts["events"].reason.startswith("partial success")


def test_commands_that_rebuild_nothing(shop: Path, tmp_path: Path) -> None:
    manifest = load_manifest(shop)
    compiled = run_results(tmp_path, [result("model.shop.customers", "success")], which="compile")
    verdict = classify(manifest, load_run_results(compiled), ["customers"])["customers"]
    assert str(verdict) == (
        "skip: the last dbt command was `dbt compile`, which rebuilds no models"
    )
    empty = run_results(tmp_path, [result("model.shop.customers", "success")], empty=True)
    verdict = classify(manifest, load_run_results(empty), ["customers"])["customers"]
    assert verdict.reason == "the dbt run used --empty (models were built without rows)"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, r"run_results\.json not found: run `dbt run` or `dbt build` first"),
        ("{not json", r"run_results\.json cannot be read: Expecting property name"),
        ('{"metadata": {}}', r"is not a dbt run_results\.json \(no 'results' list\)"),
        ('{"results": [{"status": "success"}]}', "has a result without a unique_id"),
        (b"\xff\xfe\x00", r"run_results\.json cannot be read"),
    ],
)
def test_bad_run_results_files(tmp_path: Path, content: str | bytes | None, expected: str) -> None:
    path = tmp_path / "run_results.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=expected) as error:
        load_run_results(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
