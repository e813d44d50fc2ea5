"""A project with ``dbt:`` and no ``source:`` whose dbt profile is dbt-snowflake, run against fakesnow.

dbt-snowflake itself is not needed: reverse-etl reads only its profiles.yml and
the manifest (written here the way dbt-snowflake writes it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakesnow_helpers import FakeSnowflake

import reverse_etl
from reverse_etl.insider.emulator import Emulator

pytest.importorskip("snowflake.connector")
pytest.importorskip("fakesnow")

UNQUOTED = {"database": False, "schema": False, "identifier": False}


def _dbt_snowflake_project(directory: Path, database: str, port: int) -> None:
    (directory / "target").mkdir(parents=True)
    (directory / "dbt_project.yml").write_text("name: shop\nprofile: shop\nconfig-version: 2\n")
    output = {"type": "snowflake", "account": "fakesnow", "user": "{{ env_var('SF_USER') }}",
              "password": "{{ env_var('SF_PASSWORD') }}", "role": "SYSADMIN", "warehouse": "COMPUTE_WH",
              "database": database, "schema": "PUBLIC", "threads": 8, "client_session_keep_alive": False,
              "host": "127.0.0.1", "port": "{{ env_var('SF_PORT') | as_number }}", "protocol": "http"}
    (directory / "profiles.yml").write_text(json.dumps({"shop": {"target": "dev", "outputs": {"dev": output}}}))
    uid = "model.shop.customers"
    manifest = {
        "metadata": {"adapter_type": "snowflake", "project_name": "shop", "quoting": UNQUOTED},
        "nodes": {uid: {"unique_id": uid, "name": "customers", "package_name": "shop", "resource_type": "model",
                        "database": database, "schema": "PUBLIC", "alias": "customers",
                        "relation_name": f"{database}.PUBLIC.customers", "tags": [],
                        "config": {"materialized": "table", "tags": [], "quoting": {}},
                        "depends_on": {"macros": [], "nodes": []}}},
        "sources": {}, "disabled": {}, "parent_map": {}, "child_map": {},
    }
    (directory / "target" / "manifest.json").write_text(json.dumps(manifest))


def test_dbt_snowflake_profile_runs_against_fakesnow(tmp_path: Path, fakesnow_server: FakeSnowflake,
                                                     database: str, insider_emulator: Emulator) -> None:
    fakesnow_server.execute(database, f"create database if not exists {database}",
                            f"create schema if not exists {database}.PUBLIC",
                            f"create table {database}.PUBLIC.customers (customer_id varchar, email varchar)",
                            f"insert into {database}.PUBLIC.customers values ('c1', 'a@example.com'), "
                            "('c2', 'b@example.com')")
    _dbt_snowflake_project(tmp_path / "dbt", database, fakesnow_server.port)
    root = tmp_path / "sync"
    root.mkdir()
    (root / "syncs.yml").write_text(json.dumps({
        "version": 1, "dbt": {"project_dir": "../dbt"},
        "destination": {"type": "insider", "partner": "acme", "api_key": "{{ env_var('INSIDER_API_KEY') }}",
                        "api_base_url": insider_emulator.url, "fps_base_url": insider_emulator.url},
        "syncs": [{"name": "contacts", "model": "customers", "identifiers": {"uuid": "customer_id"},
                   "attributes": {"email": "email"}}]}))
    env = {"INSIDER_API_KEY": "test-key", "SF_USER": "profile_user", "SF_PASSWORD": "s3cret-Pa55word-abc",
           "SF_PORT": str(fakesnow_server.port)}
    result = reverse_etl.run(root, environ=env)
    assert result.exit_code == 0, result.syncs[0].message
    assert result.syncs[0].counts["acked"] == 2
    assert sorted(p["identifiers"]["uuid"] for p in insider_emulator.profiles()) == ["c1", "c2"]
    login = fakesnow_server.gate.logins[-1]
    assert login["LOGIN_NAME"] == "profile_user" and login["PASSWORD"] == "s3cret-Pa55word-abc"
    again = reverse_etl.run(root, environ=env)
    assert again.exit_code == 0 and again.syncs[0].counts["to_send"] == 0
