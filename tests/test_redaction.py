"""Secrets never reach the terminal, --json output or the state directory (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from project_factory import ProjectUnderTest, make_project

from reverse_etl.cli import main
from reverse_etl.redact import forget_secrets, redact, register_secret

MARK = "SWEEP"
"""Every secret in these tests holds it; its count in all output must stay 0."""

COMMANDS = (
    ["validate"], ["validate", "--check-source"], ["plan"], ["plan", "--json"], ["run"], ["run", "--json"],
    ["history"], ["history", "--json"], ["rejected", "customers"], ["rejected", "customers", "--json"],
)


@pytest.fixture(autouse=True)
def _fresh_registry() -> None:
    forget_secrets()


def sweep(project: ProjectUnderTest, env: dict[str, str]) -> tuple[str, set[int]]:
    """All output of every command, and the exit codes seen."""
    output, codes = "", set()
    for args in COMMANDS:
        result = CliRunner().invoke(main, ["-p", str(project.root), *args], env=env)
        output += result.stdout + result.stderr
        codes.add(result.exit_code)
    return output, codes


def state_bytes(project: ProjectUnderTest) -> bytes:
    state = project.root / ".reverse_etl"
    return b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())


def test_api_key_swept_through_every_command_against_a_failing_destination(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", api_url="http://127.0.0.1:9", rows=3)
    with project.config() as c:
        c["destination"].update(max_retries=0, timeout_seconds=1)
    output, codes = sweep(project, {"INSIDER_API_KEY": f"Zq9{MARK}api-key"})
    assert codes & {3, 4}  # the run failed on the destination
    assert output.count(MARK) == 0
    assert state_bytes(project).count(MARK.encode()) == 0
    assert (project.root / ".reverse_etl" / "runs.jsonl").is_file()


def test_url_password_and_env_var_default_swept(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", rows=3)
    with project.config() as c:
        c["destination"]["api_key"] = f'{{{{ env_var("UNSET_KEY", "Dflt9{MARK}key") }}}}'
        c["source"] = {"type": "sqlalchemy",
                       "url": f"sqlite:///{project.root}/w.db?password={{{{ env_var('DB_PASSWORD') }}}}"}
    output, codes = sweep(project, {"DB_PASSWORD": f"Pw9{MARK}db"})
    assert 2 in codes, output  # the model's table is not in this database: a source error quoting the URL
    assert "password=***" in output
    assert output.count(MARK) == 0
    assert state_bytes(project).count(MARK.encode()) == 0


@pytest.mark.parametrize(("text", "expected"), [
    ("https://user:pa55word@host/x", "https://user:***@host/x"),
    ("postgresql://u:p/w@db:5432/x", "postgresql://u:***@db:5432/x"),
    ("see https://host/x?password=hunter2&a=1", "see https://host/x?password=***&a=1"),
    ("url?token=abc;api_key=def&secret=ghi", "url?token=***;api_key=***&secret=***"),
    ("https://host/x?user=a", "https://host/x?user=a"),
    ("key registered-secret-value here", "key *** here"),
])
def test_redact(text: str, expected: str) -> None:
    register_secret("registered-secret-value")
    assert redact(text) == expected


@pytest.mark.parametrize("line", [
    "  api_key: sk-live-SWEEP # env_var(",
    "  api_key: \"sk-SWEEP{{ env_var('INSIDER_API_KEY') }}\"",
])
def test_literal_api_key_cannot_hide_behind_env_var_text(project_with_line: ProjectUnderTest, line: str) -> None:
    text = (project_with_line.root / "syncs.yml").read_text()
    project_with_line.write_config(
        "\n".join(line if row.startswith("  api_key:") else row for row in text.splitlines()) + "\n")
    result = CliRunner().invoke(main, ["-p", str(project_with_line.root), "validate"], env=project_with_line.env)
    assert result.exit_code == 1
    assert "destination.api_key is a secret written literally" in result.stderr
    assert MARK not in result.stdout + result.stderr


@pytest.mark.parametrize(("url", "connect_args"), [
    ("postgresql://u:pa/SWEEP@localhost/db", None),
    ("postgresql://localhost/db?password=SWEEP", None),
    ("postgresql://u:SWEEP{{ env_var('INSIDER_API_KEY') }}@localhost/db", None),
    ("postgresql://localhost/db", {"password": "SWEEP"}),
])
def test_literal_source_secrets_refused(project_with_line: ProjectUnderTest, url: str,
                                        connect_args: dict[str, str] | None) -> None:
    with project_with_line.config() as c:
        c["source"] = {"type": "sqlalchemy", "url": url, **({"connect_args": connect_args} if connect_args else {})}
    result = CliRunner().invoke(main, ["-p", str(project_with_line.root), "validate"], env=project_with_line.env)
    assert result.exit_code == 1
    assert "source." in result.stderr and "env_var(" in result.stderr
    assert MARK not in result.stdout + result.stderr


def test_secret_from_env_var_in_url_is_accepted(project_with_line: ProjectUnderTest) -> None:
    with project_with_line.config() as c:
        c["source"] = {"type": "sqlalchemy",
                       "url": "postgresql://u:{{ env_var('INSIDER_API_KEY') }}@localhost/db?sslmode=require"}
    result = CliRunner().invoke(main, ["-p", str(project_with_line.root), "validate"], env=project_with_line.env)
    assert result.exit_code == 0, result.stderr


@pytest.fixture()
def project_with_line(tmp_path: Path) -> ProjectUnderTest:
    return make_project(tmp_path / "p", rows=1)
