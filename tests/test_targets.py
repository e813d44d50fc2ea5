"""Environments (``targets:``): dev and prod against two emulators, each with its own state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from project_factory import ProjectUnderTest, make_project
from test_sync_engine import UPSERT, sent

import reverse_etl
from reverse_etl.cli import main
from reverse_etl.errors import ConfigError
from reverse_etl.insider.emulator import Emulator


@pytest.fixture
def prod_emulator() -> Iterator[Emulator]:
    """A second Insider (partner ``acmeprod``): production."""
    with Emulator(partner="acmeprod", api_key="prod-key") as emu:
        yield emu


def _two_targets(root: Path, dev: Emulator, prod: Emulator) -> ProjectUnderTest:
    project = make_project(root, dev.url, rows=6)
    with project.config() as config:
        config["target"] = "dev"
        config["targets"] = {
            "dev": {"destination": {"api_base_url": dev.url, "fps_base_url": dev.url}},
            "prod": {"destination": {"partner": "acmeprod", "api_key": '{{ env_var("PROD_KEY") }}',
                                     "api_base_url": prod.url, "fps_base_url": prod.url}},
        }
    return project


def _upserted(emu: Emulator) -> list[str]:
    return sorted(u["identifiers"]["uuid"] for u in sent(emu, UPSERT))


def test_dev_then_prod_each_keep_their_own_state(tmp_path: Path, insider_emulator: Emulator,
                                                  prod_emulator: Emulator) -> None:
    project = _two_targets(tmp_path / "p", insider_emulator, prod_emulator)
    # PROD_KEY is unset: the dev target does not need it.
    dev = reverse_etl.run(project.root, environ=project.env)
    assert dev.exit_code == 0 and dev.target == "dev"
    assert len(insider_emulator.profiles()) == 6 and prod_emulator.requests() == []

    env = {**project.env, "PROD_KEY": "prod-key"}
    prod = reverse_etl.run(project.root, environ=env, target="prod")
    assert prod.exit_code == 0 and prod.target == "prod"
    assert prod.syncs[0].counts["acked"] == 6  # a first run there, not dev's snapshot
    assert len(prod_emulator.profiles()) == 6
    assert (project.root / ".reverse_etl" / "dev" / "customers").is_dir()
    metas = {t: json.loads((project.root / ".reverse_etl" / t / "customers" / "meta.json").read_text())
             for t in ("dev", "prod")}
    assert metas["dev"]["destination"].startswith("dev@acme:")
    assert metas["prod"]["destination"].startswith("prod@acmeprod:")

    project.sql("UPDATE raw_customers SET city = 'Berlin' WHERE customer_id = 'u2'")
    dev_before, prod_before = _upserted(insider_emulator), _upserted(prod_emulator)
    again = reverse_etl.run(project.root, environ={**env, "REVERSE_ETL_TARGET": "dev"})
    assert again.target == "dev" and again.syncs[0].counts["changed"] == 1
    assert _upserted(insider_emulator) == sorted([*dev_before, "u2"])
    prod_again = reverse_etl.run(project.root, environ=env, target="prod")
    assert prod_again.syncs[0].counts["changed"] == 1
    assert _upserted(prod_emulator) == sorted([*prod_before, "u2"])


def test_plan_and_run_name_the_target(tmp_path: Path, insider_emulator: Emulator,
                                      prod_emulator: Emulator) -> None:
    project = _two_targets(tmp_path / "p", insider_emulator, prod_emulator)
    env = {**project.env, "PROD_KEY": "prod-key"}
    runner = CliRunner()
    planned = runner.invoke(main, ["--project", str(project.root), "plan", "--target", "prod"], env=env)
    assert planned.exit_code == 0, planned.output
    assert planned.output.splitlines()[0] == "target: prod"
    ran = runner.invoke(main, ["--target", "prod", "--project", str(project.root), "run", "--json"], env=env)
    assert ran.exit_code == 0, ran.output
    assert '"target":"prod"' in ran.output
    assert len(prod_emulator.profiles()) == 6 and insider_emulator.requests() == []


def test_unknown_target_is_one_line_listing_the_known_ones(tmp_path: Path, insider_emulator: Emulator,
                                                           prod_emulator: Emulator) -> None:
    project = _two_targets(tmp_path / "p", insider_emulator, prod_emulator)
    result = CliRunner().invoke(main, ["--project", str(project.root), "run", "--target", "stage"],
                                env=project.env)
    assert result.exit_code == 1
    assert result.output.strip() == ("error: syncs.yml: target 'stage' (from --target) is not defined; "
                                     "known targets: dev, prod")
    with pytest.raises(ConfigError, match=r"from \$REVERSE_ETL_TARGET.*known targets: dev, prod"):
        reverse_etl.plan(project.root, environ={**project.env, "REVERSE_ETL_TARGET": "qa"})
    assert insider_emulator.requests() == [] and prod_emulator.requests() == []


def test_the_selected_targets_variables_are_required(tmp_path: Path, insider_emulator: Emulator,
                                                     prod_emulator: Emulator) -> None:
    project = _two_targets(tmp_path / "p", insider_emulator, prod_emulator)
    with pytest.raises(ConfigError, match=r"^syncs.yml:\d+: environment variable PROD_KEY is not set"):
        reverse_etl.plan(project.root, environ=project.env, target="prod")


@pytest.mark.parametrize(("targets", "expected"), [
    ({"dev": {"destinaton": {"partner": "x"}}},
     r"^syncs.yml:\d+: targets.dev.destinaton: unknown field; a target overrides only source, destination, state, dbt$"),
    ({"dev": {}, "prod": {"destination": {"concurrency": "many"}}},
     r"^syncs.yml:\d+: targets.prod.destination.concurrency: Input should be a valid integer"),
    ({"dev": {}, "prod": {"destination": {"api_key": "literal-secret-value"}}},
     r"^syncs.yml:\d+: destination.api_key is a secret written literally"),
    ({"dev": {}, "prod": {"state": {"path": "s3://b/p", "secret_key": "x"}}},
     r"targets.prod.state: .*credentials never go in syncs.yml"),
])
def test_every_target_is_validated_with_file_line_and_field(tmp_path: Path, targets: dict[str, object],
                                                            expected: str) -> None:
    project = make_project(tmp_path / "p")
    with project.config() as config:
        config["target"] = "dev"
        config["targets"] = targets
    with pytest.raises(ConfigError, match=expected):
        reverse_etl.validate(project.root, environ=project.env)


def test_targets_need_a_default_and_target_needs_targets(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    with project.config() as config:
        config["targets"] = {"dev": {}}
    with pytest.raises(ConfigError, match=r"targets: needs a default; add `target: NAME`.*\(one of dev\)"):
        reverse_etl.validate(project.root, environ=project.env)
    with project.config() as config:
        del config["targets"]
    result = CliRunner().invoke(main, ["--project", str(project.root), "validate", "--target", "prod"],
                                env=project.env)
    assert result.exit_code == 1 and "this project defines no targets" in result.output


def test_targets_sharing_one_state_path_never_reuse_each_others_snapshot(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=4)
    with project.config() as config:
        config["target"] = "a"
        config["targets"] = {name: {"state": {"path": ".reverse_etl/shared"}} for name in ("a", "b")}
    assert reverse_etl.run(project.root, environ=project.env).syncs[0].counts["acked"] == 4
    switched = reverse_etl.run(project.root, environ=project.env, target="b").syncs[0]
    assert switched.counts["acked"] == 4  # a first run for target b: nothing of a's snapshot reused
    assert switched.full_resend_reason is not None and "first run for this destination" in switched.full_resend_reason
