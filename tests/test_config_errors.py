"""Bad input ends in one clear line naming the file, line and field, with an exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from project_factory import ProjectUnderTest, make_project

from reverse_etl.cli import main
from reverse_etl.insider.emulator import Emulator


def cli(project: ProjectUnderTest, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(main, ["--project", str(project.root), *args],
                           env=env if env is not None else project.env)
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {stderr!r}"
    assert "Traceback" not in stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture()
def project(tmp_path: Path) -> ProjectUnderTest:
    return make_project(tmp_path / "proj")


def test_valid_project_validates(project: ProjectUnderTest) -> None:
    code, out, _ = cli(project, "validate")
    assert code == 0
    assert "syncs.yml is valid" in out


def test_bad_yaml_names_line(project: ProjectUnderTest) -> None:
    text = (project.root / "syncs.yml").read_text().replace("syncs:", "syncs:\n  - name: [unclosed", 1)
    project.write_config(text)
    code, _, err = cli(project, "validate")
    line = one_error_line(err)
    assert code == 1
    assert "syncs.yml:" in line and "invalid YAML" in line


def test_unknown_field_names_file_line_and_field(project: ProjectUnderTest) -> None:
    text = (project.root / "syncs.yml").read_text()
    text = text.replace("  model: customers\n", "  model: customers\n  modle_typo: x\n")
    project.write_config(text)
    code, _, err = cli(project, "validate")
    line = one_error_line(err)
    assert code == 1
    expected_line = text.splitlines().index("  modle_typo: x") + 1
    assert f"syncs.yml:{expected_line}:" in line
    assert "syncs[0].modle_typo" in line and "unknown field" in line


def test_missing_env_var_says_how_to_set_it(project: ProjectUnderTest) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--project", str(project.root), "validate"], env={"INSIDER_API_KEY": None})  # type: ignore[dict-item]
    line = one_error_line(result.stderr)
    assert result.exit_code == 1
    assert "INSIDER_API_KEY is not set" in line and "syncs.yml:" in line and ".env" in line


def test_env_var_from_dotenv_file(project: ProjectUnderTest) -> None:
    (project.root / ".env").write_text("INSIDER_API_KEY=from-dotenv\n")
    runner = CliRunner()
    result = runner.invoke(main, ["--project", str(project.root), "validate"], env={"INSIDER_API_KEY": None})  # type: ignore[dict-item]
    assert result.exit_code == 0, result.stderr


def test_literal_secret_is_refused_without_echoing_it(project: ProjectUnderTest) -> None:
    text = (project.root / "syncs.yml").read_text()
    text = text.replace('{{ env_var("INSIDER_API_KEY") }}', 'sk-live-very-secret')
    project.write_config(text)
    code, out, err = cli(project, "validate")
    line = one_error_line(err)
    assert code == 1
    assert "destination.api_key is a secret written literally" in line
    assert "sk-live-very-secret" not in err + out


def test_uppercase_partner_refused(project: ProjectUnderTest) -> None:
    text = (project.root / "syncs.yml").read_text().replace("partner: acme", "partner: ACME")
    project.write_config(text)
    code, _, err = cli(project, "validate")
    line = one_error_line(err)
    assert code == 1
    assert "destination.partner" in line and "lowercase" in line


def test_missing_model_names_sync_and_file(project: ProjectUnderTest) -> None:
    text = (project.root / "syncs.yml").read_text().replace("model: customers", "model: custmers")
    project.write_config(text)
    code, _, err = cli(project, "validate")
    line = one_error_line(err)
    assert code == 1
    assert "models/custmers.sql" in line and "did you mean 'customers'" in line


def test_unmapped_column_names_mapping_and_columns(project: ProjectUnderTest) -> None:
    text = (project.root / "syncs.yml").read_text().replace("city: city", "city: town")
    project.write_config(text)
    code, _, err = cli(project, "plan")
    assert code == 1, (code, err)
    assert "attributes.city maps column 'town', which model 'customers' does not return" in err
    assert "columns: " in err and "Traceback" not in err


def test_broken_sql_is_a_source_error_naming_the_model(project: ProjectUnderTest) -> None:
    project.write_model("customers", "select customer_id, from raw_customers where")
    code, _, err = cli(project, "plan")
    assert code == 2
    assert "model 'customers' (models/customers.sql) failed" in err
    assert "Traceback" not in err


def test_ref_cycle_and_unknown_template(project: ProjectUnderTest) -> None:
    project.write_model("a", "select * from {{ ref('b') }}")
    project.write_model("b", "select * from {{ ref('a') }}")
    text = (project.root / "syncs.yml").read_text().replace("model: customers", "model: a")
    project.write_config(text)
    code, _, err = cli(project, "validate")
    assert code == 1 and "cycle" in one_error_line(err)
    project.write_model("a", "select {{ config(x) }} from t")
    code, _, err = cli(project, "validate")
    assert code == 1 and "unsupported template" in one_error_line(err)


def test_model_must_be_a_name_not_a_path(project: ProjectUnderTest) -> None:
    text = (project.root / "syncs.yml").read_text().replace("model: customers", "model: ../../etc/passwd")
    project.write_config(text)
    code, _, err = cli(project, "validate")
    line = one_error_line(err)
    assert code == 1 and "syncs[0].model" in line and "not a path" in line


def test_a_secret_with_yaml_characters_loads_unchanged_and_is_never_echoed(project: ProjectUnderTest) -> None:
    from reverse_etl.api import load_project

    secret = '*Sup3r\\Sec"ret!'
    loaded = load_project(project.root, {"INSIDER_API_KEY": secret})
    assert loaded.config.destination.api_key.get_secret_value() == secret
    # A line that breaks once its value is filled in says so without quoting the value.
    text = (project.root / "syncs.yml").read_text()
    project.write_config(text.replace('\'{{ env_var("INSIDER_API_KEY") }}\'', 'x {{ env_var("INSIDER_API_KEY") }}: y'))
    code, out, err = cli(project, "validate", env={"INSIDER_API_KEY": "*alias"})
    assert code == 1 and "alias" not in err + out and "env_var() value" in err


def test_a_memory_budget_too_small_for_the_model_is_one_line_naming_the_setting(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "big", insider_emulator.url, rows=20_000)
    with project.config() as config:
        config["state"] = {"memory_limit": "2MB"}
    code, _, err = cli(project, "run")
    line = one_error_line(err)
    assert code != 0 and "state.memory_limit: 2MB" in line and "raise state.memory_limit" in line
    assert insider_emulator.profiles() == []
    # Raised, the same project runs: nothing was half-committed by the failed run.
    with project.config() as config:
        config["state"] = {"memory_limit": "256MB"}
    code, _, err = cli(project, "run")
    assert code == 0, err
    assert len(insider_emulator.profiles()) == 20_000
