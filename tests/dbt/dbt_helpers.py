"""Helpers for the dbt tests: a real copy of the fixture project, synthetic artifacts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURE_PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "dbt_project"


def _dbt_executable() -> str | None:
    # The dbt script installed next to this interpreter, so the venv's dbt runs.
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else shutil.which("dbt")


@dataclass
class DbtProject:
    """A copy of the fixture project building into its own DuckDB file."""

    project_dir: Path
    database: Path

    @property
    def target(self) -> Path:
        """dbt's target directory (manifest.json, run_results.json)."""
        return self.project_dir / "target"

    @property
    def seed_csv(self) -> Path:
        """The customers seed; tests edit it to change the model's rows."""
        return self.project_dir / "seeds" / "customers_seed.csv"

    def env(self) -> dict[str, str]:
        """Environment for a dbt invocation: the DuckDB path and no telemetry."""
        env = dict(os.environ)
        env.update(
            DBT_DUCKDB_PATH=str(self.database),
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            DO_NOT_TRACK="1",
            DBT_USE_COLORS="false",
        )
        return env

    def dbt(self, *args: str, expect_success: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``dbt <args>`` in the project; fail the test if the exit code is unexpected."""
        executable = _dbt_executable()
        assert executable, "dbt is not installed"
        completed = subprocess.run(
            [
                executable,
                *args,
                "--project-dir",
                str(self.project_dir),
                "--profiles-dir",
                str(self.project_dir),
            ],
            cwd=self.project_dir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if (completed.returncode == 0) != expect_success:
            raise AssertionError(
                f"dbt {' '.join(args)} exited {completed.returncode}:\n"
                f"{completed.stdout[-4000:]}\n{completed.stderr[-2000:]}"
            )
        return completed

    def run_with_broken_model(self) -> subprocess.CompletedProcess[str]:
        """``dbt run`` of customers and broken_model with ``break`` set: broken_model fails."""
        return self.dbt("run", "--select", "customers", "broken_model", "--vars", "{break: true}",
                        expect_success=False)

    def keep_run_results(self, name: str) -> Path:
        """Copy target/run_results.json aside (the next dbt call overwrites it)."""
        kept = self.project_dir / "kept" / f"{name}.json"
        kept.parent.mkdir(exist_ok=True)
        shutil.copyfile(self.target / "run_results.json", kept)
        return kept


def make_dbt_project(root: Path) -> DbtProject:
    """Copy the fixture project under ``root`` (without stray build output)."""
    if _dbt_executable() is None:
        pytest.skip("dbt is not installed (pip install 'reverse_etl[dbt]')")
    pytest.importorskip("dbt.adapters.duckdb")
    project_dir = root / "dbt_project"
    shutil.copytree(
        FIXTURE_PROJECT,
        project_dir,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb*"),
    )
    return DbtProject(project_dir=project_dir, database=root / "warehouse.duckdb")


# ------------------------------------------------------------ synthetic artifacts
def node(
    name: str,
    *,
    package: str = "shop",
    resource_type: str = "model",
    database: str | None = "analytics",
    schema: str = "main",
    alias: str | None = None,
    relation_name: str | None = None,
    materialized: str = "table",
    tags: tuple[str, ...] = (),
    depends_on: tuple[str, ...] = (),
    version: int | str | None = None,
    latest_version: int | str | None = None,
    quoting: dict[str, bool] | None = None,
    attached_node: str | None = None,
) -> tuple[str, dict[str, object]]:
    """A manifest node shaped like dbt 1.11 writes it (only the fields read here)."""
    uid = f"{resource_type}.{package}.{name}" + (f".v{version}" if version is not None else "")
    body: dict[str, object] = {
        "unique_id": uid,
        "name": name,
        "package_name": package,
        "resource_type": resource_type,
        "database": database,
        "schema": schema,
        "alias": alias or (f"{name}_v{version}" if version is not None else name),
        "relation_name": relation_name,
        "tags": list(tags),
        "config": {"materialized": materialized, "tags": list(tags), "quoting": quoting or {}},
        "depends_on": {"macros": [], "nodes": list(depends_on)},
        "version": version,
        "latest_version": latest_version,
        "raw_code": "select 1",
    }
    if resource_type == "test":
        body["attached_node"] = attached_node
    return uid, body


def manifest_json(
    nodes: list[tuple[str, dict[str, object]]],
    *,
    adapter_type: str = "duckdb",
    project_name: str = "shop",
    quoting: dict[str, bool] | None = None,
    disabled: dict[str, list[dict[str, object]]] | None = None,
) -> dict[str, object]:
    """A whole manifest.json document, keys in the order dbt writes them."""
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "adapter_type": adapter_type,
            "project_name": project_name,
            "quoting": quoting or {"database": True, "schema": True, "identifier": True},
        },
        "nodes": dict(nodes),
        "sources": {},
        "macros": {"macro.dbt.big": {"macro_sql": "x" * 1000}},
        "disabled": disabled or {},
        "parent_map": {},
        "child_map": {},
    }


@dataclass
class DbtArtifacts:
    """A built project and the run_results.json of each scenario."""

    project: DbtProject
    build: Path
    """``dbt build``: everything succeeds."""
    broken: Path
    """``dbt run --select customers broken_model --vars '{break: true}'``."""
    failed_tests: Path
    """``dbt build --vars '{fail_tests: true}'``: customers builds, its test fails."""
