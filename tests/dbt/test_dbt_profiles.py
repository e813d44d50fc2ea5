"""A project with ``dbt:`` and no ``source:`` reads dbt's profiles.yml; manifest vs source databases."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dbt_helpers import DbtArtifacts, manifest_json, node

import reverse_etl
from reverse_etl.cli import main
from reverse_etl.errors import ConfigError
from reverse_etl.insider.emulator import Emulator

UPSERT = "/api/user/v1/upsert"


def _project(root: Path, emulator_url: str, dbt: dict[str, Any], source: dict[str, Any] | None = None,
             **extra: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "version": 1, "dbt": dbt,
        "destination": {"type": "insider", "partner": "acme", "api_key": "{{ env_var('INSIDER_API_KEY') }}",
                        "api_base_url": emulator_url, "fps_base_url": emulator_url},
        "syncs": [{"name": "customer_profiles", "model": "customers", "identifiers": {"uuid": "customer_id"},
                   "attributes": {"email": "email", "name": "first_name"}}],
        **extra,
    }
    if source is not None:
        config["source"] = source
    (root / "syncs.yml").write_text(json.dumps(config, indent=2))
    return root


def _upserts(emulator: Emulator) -> int:
    return sum(1 for e in emulator.requests() if e["path"] == UPSERT and e["status"] == 200)


def test_dbt_duckdb_profile_is_the_source(tmp_path: Path, dbt_artifacts: DbtArtifacts,
                                          insider_emulator: Emulator) -> None:
    built = dbt_artifacts.project
    root = _project(tmp_path / "sync", insider_emulator.url, {"project_dir": str(built.project_dir)})
    env = {"INSIDER_API_KEY": "test-key", "DBT_DUCKDB_PATH": str(built.database)}
    first = reverse_etl.run(root, environ=env)
    assert first.exit_code == 0, first.syncs[0].message
    acked = first.syncs[0].counts["acked"]
    assert acked > 0 and len(insider_emulator.profiles()) == acked
    before = _upserts(insider_emulator)
    second = reverse_etl.run(root, environ=env)
    assert second.exit_code == 0 and second.syncs[0].counts["to_send"] == 0
    assert _upserts(insider_emulator) == before


def _profiles(directory: Path, output: dict[str, Any], target: str = "dev") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "dbt_project.yml").write_text("name: shop\nprofile: shop\nconfig-version: 2\n")
    (directory / "profiles.yml").write_text(json.dumps({"shop": {"target": target, "outputs": output}}))
    return directory


def test_profile_env_var_defaults_and_profiles_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_PROFILES_DIR", "")  # --profiles-dir below sets it in this process
    dbt_dir = _profiles(tmp_path / "dbt", {
        "dev": {"type": "duckdb", "path": "{{ env_var('SHOP_DB', 'dev.duckdb') }}", "threads": 4},
        "prod": {"type": "duckdb", "path": "prod.duckdb"}})
    root = _project(tmp_path / "p", "http://127.0.0.1:9", {"project_dir": "../dbt"})
    env = {"INSIDER_API_KEY": "k"}
    project = reverse_etl.load_project(root, env)
    assert project.config.source.type == "duckdb"
    assert project.config.source.path == str(dbt_dir.resolve() / "dev.duckdb")
    assert reverse_etl.load_project(root, {**env, "SHOP_DB": "x.duckdb"}).config.source.path.endswith("/x.duckdb")
    # --target picks dbt's output when syncs.yml has no targets of its own.
    assert reverse_etl.load_project(root, env, target="prod").config.source.path.endswith("/prod.duckdb")
    other = _profiles(tmp_path / "elsewhere", {"dev": {"type": "duckdb", "path": "/data/other.duckdb"}})
    assert reverse_etl.load_project(root, {**env, "DBT_PROFILES_DIR": str(other)}).config.source.path == \
        "/data/other.duckdb"
    result = CliRunner().invoke(main, ["--profiles-dir", str(other), "--project", str(root), "state", "where"],
                                env=env)
    assert result.exit_code == 0, result.output
    assert reverse_etl.load_project(root, {**os.environ, **env}).config.source.path == "/data/other.duckdb"


@pytest.mark.parametrize(("output", "target", "expected"), [
    ({"dev": {"type": "postgres", "host": "h"}}, None,
     r"^profiles.yml:\d+: shop.outputs.dev.type: 'postgres' outputs cannot be read as a source yet "
     r"\(duckdb and snowflake can\); add a `source:` section to syncs.yml instead$"),
    ({"dev": {"type": "duckdb"}}, "qa", r"^profiles.yml:\d+: profile 'shop' has no output 'qa'; outputs: dev$"),
    ({"dev": {"type": "snowflake", "account": "a", "user": "u", "password": "{{ env_var('SF_PW') }}"}}, None,
     r"^profiles.yml:\d+: shop.outputs.dev.password: environment variable SF_PW is not set"),
    ({"dev": {"type": "snowflake", "account": "a", "user": "u"}}, None,
     r"^profiles.yml:\d+: shop.outputs.dev: set either password or private_key_path"),
])
def test_profile_problems_are_one_line(tmp_path: Path, output: dict[str, Any], target: str | None,
                                       expected: str) -> None:
    _profiles(tmp_path / "dbt", output)
    root = _project(tmp_path / "p", "http://127.0.0.1:9", {"project_dir": "../dbt"})
    with pytest.raises(ConfigError, match=expected):
        reverse_etl.load_project(root, {"INSIDER_API_KEY": "k"}, target=target)


def test_manifest_of_another_database_is_refused_before_sending(
        tmp_path: Path, dbt_artifacts: DbtArtifacts, insider_emulator: Emulator) -> None:
    built = dbt_artifacts.project
    dev_db = tmp_path / "dev.duckdb"
    shutil.copyfile(built.database, dev_db)  # the same tables, under the dev database's name
    root = _project(tmp_path / "sync", insider_emulator.url, {"project_dir": str(built.project_dir)},
                    source={"type": "duckdb", "path": str(dev_db)})
    result = reverse_etl.run(root, environ={"INSIDER_API_KEY": "test-key"})
    assert result.exit_code == 1
    assert result.syncs[0].message == (
        f"sync 'customer_profiles': dbt model 'customers' is built in database 'warehouse' "
        f"({built.project_dir}/target/manifest.json) but source: reads database 'dev'; build the manifest "
        "for the same target as the source (dbt compile --target ...) or point source: at 'warehouse'")
    assert insider_emulator.requests() == []


def test_snowflake_manifest_database_must_match(tmp_path: Path) -> None:
    project_dir = tmp_path / "dbt"
    (project_dir / "target").mkdir(parents=True)
    (project_dir / "target" / "manifest.json").write_text(json.dumps(manifest_json(
        [node("customers", database="PROD_DB", schema="ANALYTICS")], adapter_type="snowflake")))
    root = _project(tmp_path / "p", "http://127.0.0.1:9", {"project_dir": "../dbt"},
                    source={"type": "snowflake", "account": "a", "user": "u", "database": "DEV_DB",
                            "password": "{{ env_var('SF_PASSWORD') }}"})
    with pytest.raises(ConfigError, match=r"built in database 'PROD_DB' .* reads database 'DEV_DB'"):
        reverse_etl.validate(root, environ={"INSIDER_API_KEY": "k", "SF_PASSWORD": "pw"})
