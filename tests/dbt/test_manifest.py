"""Resolving dbt models to relations a source can SELECT from."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from dbt_helpers import DbtArtifacts, manifest_json, node

from reverse_etl.errors import ConfigError
from reverse_etl.project.dbt import DbtManifest, load_manifest

WriteManifest = Callable[..., Path]


# ------------------------------------------------------------ the real dbt project
def test_customers_resolves_to_a_table_duckdb_can_read(dbt_artifacts: DbtArtifacts) -> None:
    project = dbt_artifacts.project
    relation = load_manifest(project.project_dir).relation("customers")

    assert relation.unique_id == "model.reverse_etl_fixture.customers"
    assert (relation.schema, relation.identifier) == ("main", "customers")
    assert relation.database == "warehouse"  # dbt-duckdb names the catalog after the file
    name = relation.sql_name("duckdb")
    assert name == '"warehouse"."main"."customers"'
    with duckdb.connect(str(project.database), read_only=True) as con:
        cursor = con.execute(f"SELECT * FROM {name}")
        rows = cursor.fetchall()
        columns = [column[0] for column in cursor.description]
    assert len(rows) == 4
    assert columns == ["customer_id", "email", "first_name", "ltv"]


def test_name_without_database_reads_when_the_file_is_opened_under_another_name(
    dbt_artifacts: DbtArtifacts, tmp_path: Path
) -> None:
    copy = tmp_path / "renamed.duckdb"
    copy.write_bytes(dbt_artifacts.project.database.read_bytes())
    relation = load_manifest(dbt_artifacts.project.project_dir).relation("customers")
    with duckdb.connect(str(copy), read_only=True) as con:
        name = relation.sql_name("duckdb", include_database=False)
        assert name == '"main"."customers"'
        assert con.execute(f"SELECT count(*) FROM {name}").fetchall() == [(4,)]


def test_every_spelling_of_a_model_resolves(dbt_artifacts: DbtArtifacts) -> None:
    manifest = load_manifest(dbt_artifacts.project.project_dir, "target")
    uid = "model.reverse_etl_fixture.customers"
    for spelling in ("customers", "reverse_etl_fixture.customers", uid):
        assert manifest.unique_id(spelling) == uid
    assert manifest.relation("customers_seed").resource_type == "seed"
    assert manifest.adapter_type == "duckdb"
    assert manifest.project_name == "reverse_etl_fixture"
    assert "orders_summary" in manifest
    assert "no_such_model" not in manifest


def test_models_by_tag_reads_dbt_tags(dbt_artifacts: DbtArtifacts) -> None:
    manifest = load_manifest(dbt_artifacts.project.project_dir)
    assert [r.name for r in manifest.models_by_tag("daily")] == [
        "broken_model",
        "customers",
        "orders_summary",
    ]
    assert [r.name for r in manifest.models_by_tag("insider")] == ["customers"]
    assert manifest.models_by_tag("nope") == []


def test_tests_and_parents_come_from_the_graph(dbt_artifacts: DbtArtifacts) -> None:
    manifest = load_manifest(dbt_artifacts.project.project_dir)
    tests = manifest.tests_on("model.reverse_etl_fixture.customers")
    assert "test.reverse_etl_fixture.customers_have_emails" in tests
    assert any(t.startswith("test.reverse_etl_fixture.not_null_customers") for t in tests)
    assert manifest.parents("model.reverse_etl_fixture.orders_summary") == (
        "model.reverse_etl_fixture.customers",
    )


def test_unknown_model_names_close_matches(dbt_artifacts: DbtArtifacts) -> None:
    manifest = load_manifest(dbt_artifacts.project.project_dir)
    with pytest.raises(ConfigError) as error:
        manifest.relation("custmers")
    message = str(error.value)
    assert "'custmers'" in message and "did you mean customers" in message
    assert str(manifest.path) in message and "\n" not in message


# ---------------------------------------------------------------- missing / broken
def test_missing_manifest_says_to_run_dbt(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_manifest(tmp_path)
    expected = f"dbt manifest {tmp_path / 'target' / 'manifest.json'} not found"
    assert str(error.value) == f"{expected}: run `dbt compile` or `dbt run` first"


def test_missing_project_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dbt project directory .*nowhere does not exist"):
        load_manifest(tmp_path / "nowhere")


def test_custom_and_absolute_target_paths(write_manifest: WriteManifest, tmp_path: Path) -> None:
    project = write_manifest(manifest_json([node("customers")]))
    (project / "target").rename(project / "build_output")
    assert load_manifest(project, "build_output").unique_id("customers") == "model.shop.customers"
    absolute = project / "build_output"
    assert load_manifest(tmp_path, absolute).unique_id("customers") == "model.shop.customers"


def test_garbled_manifest_is_a_config_error(write_manifest: WriteManifest) -> None:
    project = write_manifest(manifest_json([node("customers")]))
    path = project / "target" / "manifest.json"
    path.write_text('{"metadata": {}, "nodes": {"model.x": ')
    manifest = load_manifest(project)  # lazy: nothing parsed yet
    with pytest.raises(ConfigError, match=r"manifest\.json is not valid JSON .*dbt compile"):
        manifest.relation("customers")


def test_manifest_removed_after_loading(write_manifest: WriteManifest) -> None:
    project = write_manifest(manifest_json([node("customers")]))
    manifest = load_manifest(project)
    (project / "target" / "manifest.json").unlink()
    with pytest.raises(ConfigError, match="run `dbt compile` or `dbt run` first"):
        manifest.relation("customers")


def test_rebuilt_manifest_is_reread(write_manifest: WriteManifest) -> None:
    project = write_manifest(manifest_json([node("customers")]))
    assert "orders" not in load_manifest(project)
    path = project / "target" / "manifest.json"
    write_manifest(manifest_json([node("customers"), node("orders")]))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert "orders" in load_manifest(project)


def test_only_metadata_and_nodes_are_parsed(write_manifest: WriteManifest) -> None:
    project = write_manifest(manifest_json([node("customers")]))
    path = project / "target" / "manifest.json"
    # Garbage after "nodes" is never decoded: proof that macros & co. are skipped.
    text = path.read_text()
    cut = text.index('"sources"')
    path.write_text(text[:cut] + '"sources": {this is not json')
    assert DbtManifest(path).unique_id("customers") == "model.shop.customers"


# -------------------------------------------------------------- resolution rules
def test_ambiguous_name_across_packages(write_manifest: WriteManifest) -> None:
    document = manifest_json(
        [node("customers", package="pkg_a"), node("customers", package="pkg_b")],
        project_name="root",
    )
    manifest = load_manifest(write_manifest(document))
    with pytest.raises(ConfigError) as error:
        manifest.relation("customers")
    assert "ambiguous" in str(error.value)
    assert "pkg_a.customers, pkg_b.customers" in str(error.value)
    assert manifest.unique_id("pkg_b.customers") == "model.pkg_b.customers"
    assert manifest.unique_id("model.pkg_a.customers") == "model.pkg_a.customers"


def test_root_project_wins_like_ref(write_manifest: WriteManifest) -> None:
    document = manifest_json(
        [node("customers", package="shop"), node("customers", package="vendor")],
        project_name="shop",
    )
    assert load_manifest(write_manifest(document)).unique_id("customers") == "model.shop.customers"


def test_versioned_models(write_manifest: WriteManifest) -> None:
    document = manifest_json(
        [
            node("dim_customers", version=1, latest_version=1),
            node("dim_customers", version=2, latest_version=1),
            node("facts", version=1),
            node("facts", version=3),
        ]
    )
    manifest = load_manifest(write_manifest(document))
    # dbt's latest_version wins over the highest number (v2 is a prerelease here).
    assert manifest.unique_id("dim_customers") == "model.shop.dim_customers.v1"
    assert manifest.unique_id("dim_customers.v2") == "model.shop.dim_customers.v2"
    assert manifest.unique_id("shop.dim_customers.v2") == "model.shop.dim_customers.v2"
    assert manifest.relation("dim_customers.v2").identifier == "dim_customers_v2"
    assert manifest.unique_id("facts") == "model.shop.facts.v3"  # no latest_version: highest


def test_ephemeral_and_disabled_models_are_explained(write_manifest: WriteManifest) -> None:
    document = manifest_json(
        [node("customers"), node("stg_customers", materialized="ephemeral")],
        disabled={"model.shop.old_customers": [{"name": "old_customers", "package_name": "shop"}]},
    )
    manifest = load_manifest(write_manifest(document))
    with pytest.raises(ConfigError, match="'old_customers' is disabled in the dbt project"):
        manifest.relation("old_customers")
    with pytest.raises(ConfigError, match="'stg_customers' not found"):
        manifest.relation("stg_customers")
    assert manifest.find("stg_customers") is None


def test_snowflake_manifest_names(write_manifest: WriteManifest) -> None:
    # dbt-snowflake leaves identifiers unquoted by default; Snowflake upper-cases them.
    unquoted = {"database": False, "schema": False, "identifier": False}
    document = manifest_json(
        [
            node(
                "customers",
                database="ANALYTICS",
                schema="dbt_prod",
                relation_name="ANALYTICS.dbt_prod.customers",
            ),
            node(
                "Mixed",
                database="ANALYTICS",
                schema="dbt_prod",
                quoting={"identifier": True},
                relation_name='ANALYTICS.dbt_prod."Mixed"',
            ),
        ],
        adapter_type="snowflake",
        quoting=unquoted,
    )
    manifest = load_manifest(write_manifest(document))
    customers = manifest.relation("customers")
    assert customers.sql_name("snowflake") == "ANALYTICS.dbt_prod.customers"
    assert customers.sql_name() == "ANALYTICS.dbt_prod.customers"
    assert customers.sql_name("snowflake", include_database=False) == '"DBT_PROD"."CUSTOMERS"'
    assert customers.sql_name("duckdb") == '"ANALYTICS"."dbt_prod"."customers"'
    mixed = manifest.relation("Mixed")
    assert mixed.sql_name("snowflake", include_database=False) == '"DBT_PROD"."Mixed"'


def test_snowflake_names_select_through_the_connector(write_manifest: WriteManifest) -> None:
    fakesnow = pytest.importorskip("fakesnow")
    connector = pytest.importorskip("snowflake.connector")
    document = manifest_json(
        [
            node(
                "customers",
                database="ANALYTICS",
                schema="DBT",
                relation_name="ANALYTICS.DBT.customers",
            )
        ],
        adapter_type="snowflake",
        quoting={"database": False, "schema": False, "identifier": False},
    )
    relation = load_manifest(write_manifest(document)).relation("customers")
    with fakesnow.patch():
        con = connector.connect(database="ANALYTICS", schema="DBT")
        cur = con.cursor()
        cur.execute("create database if not exists analytics")
        cur.execute("create schema if not exists analytics.dbt")
        cur.execute("create table analytics.dbt.customers (id int)")
        cur.execute("insert into analytics.dbt.customers values (1), (2)")
        for name in (
            relation.sql_name("snowflake"),
            relation.sql_name("snowflake", include_database=False),
        ):
            cur.execute(f"select count(*) from {name}")
            assert cur.fetchone() == (2,)
        con.close()


def test_quotes_are_escaped_and_dialects_differ(write_manifest: WriteManifest) -> None:
    document = manifest_json([node('we"ird', database="db", schema="s`x")])
    relation = load_manifest(write_manifest(document)).relation('we"ird')
    assert relation.relation_name is None  # an old manifest: built from parts
    assert relation.sql_name("duckdb") == '"db"."s`x"."we""ird"'
    assert relation.sql_name("bigquery") == '`db`.`s``x`.`we"ird`'
    assert relation.sql_name("tsql") == '[db].[s`x].[we"ird]'
    assert relation.sql_name("postgresql") == relation.sql_name("postgres")
