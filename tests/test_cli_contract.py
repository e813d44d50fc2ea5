"""The CLI's contract: documented exit codes, one error line, conventions (issue 13)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from project_factory import ProjectUnderTest, make_project

from reverse_etl.cli import main
from reverse_etl.insider.emulator.server import Emulator


def invoke(args: list[str], env: dict[str, str] | None = None, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, env=env, input=input)
    return result.exit_code, result.stdout, result.stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture()
def project(tmp_path: Path) -> ProjectUnderTest:
    return make_project(tmp_path / "proj")


def _broken_sql(p: ProjectUnderTest) -> None:
    p.write_model("customers", "select customer_id, from raw_customers where")


def _state_path_is_a_file(p: ProjectUnderTest) -> None:
    (p.root / "state_file").write_text("not a directory")
    with p.config() as c:
        c["state"] = {"path": "state_file"}


def _no_change(p: ProjectUnderTest) -> None:
    return None


def _typo(p: ProjectUnderTest) -> None:
    with p.config() as c:
        c["syncs"][0]["modle"] = c["syncs"][0].pop("model")


EXIT_CASES: list[tuple[str, list[str], Callable[[ProjectUnderTest], None], int, str]] = [
    ("ok", ["validate"], _no_change, 0, ""),
    ("unknown option", ["run", "--dry-run"], _no_change, 1, "No such option '--dry-run'"),
    ("unknown command", ["frobnicate"], _no_change, 1, "No such command 'frobnicate'"),
    ("bad group option", ["--bogus", "validate"], _no_change, 1, "No such option '--bogus'"),
    ("missing argument", ["rejected"], _no_change, 1, "Missing argument 'SYNC'"),
    ("bad option value", ["history", "--limit", "many"], _no_change, 1, "'many' is not a valid integer"),
    ("unknown sync", ["rejected", "nope"], _no_change, 1, "no sync named 'nope'"),
    ("config error", ["validate"], _typo, 1, "did you mean 'model'?"),
    ("source error", ["plan"], _broken_sql, 2, "model 'customers' (models/customers.sql) failed"),
    ("state unusable", ["history"], _state_path_is_a_file, 4, "state.path 'state_file' is a file"),
    ("reset off a terminal", ["reset", "customers"], _no_change, 1, "pass --yes"),
]


@pytest.mark.parametrize(("args", "change", "code", "text"),
                         [case[1:] for case in EXIT_CASES], ids=[case[0] for case in EXIT_CASES])
def test_exit_codes(project: ProjectUnderTest, args: list[str], change: Callable[[ProjectUnderTest], None],
                    code: int, text: str) -> None:
    change(project)
    exit_code, _, err = invoke(["-p", str(project.root), *args], env=project.env)
    assert exit_code == code, err
    assert "Traceback" not in err and "internal error" not in err
    if code:
        assert len(error_lines(err)) == 1, err
        assert text in err


def test_partial_delivery_exits_3(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", api_url=insider_emulator.url, rows=5)
    insider_emulator.set_faults(reject=["u2"])
    code, out, _ = invoke(["-p", str(project.root), "run"], env=project.env)
    assert code == 3
    assert "customers: partial:" in out


def test_interrupt_exits_130(project: ProjectUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    from reverse_etl import api

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "validate", interrupted)
    code, _, err = invoke(["-p", str(project.root), "validate"], env=project.env)
    assert code == 130
    assert error_lines(err) == ["error: interrupted; acknowledged rows are journaled and the next run resumes"]


def test_usage_error_exits_1_from_the_installed_command() -> None:
    command = Path(sys.executable).parent / "reverse-etl"
    done = subprocess.run([str(command), "run", "--dry-run"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["error: No such option '--dry-run'; see 'reverse-etl run --help'"]


def test_project_option_after_the_command_and_from_the_environment(project: ProjectUnderTest) -> None:
    code, out, err = invoke(["validate", "-p", str(project.root)], env=project.env)
    assert code == 0, err
    assert "syncs.yml is valid" in out
    code, out, err = invoke(["validate"], env={**project.env, "REVERSE_ETL_PROJECT": str(project.root)})
    assert code == 0, err
    assert "syncs.yml is valid" in out


def test_init_writes_a_project_that_validates(tmp_path: Path) -> None:
    target = tmp_path / "starter"
    code, out, err = invoke(["init", str(target)])
    assert code == 0, err
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        ".env.example", ".gitignore", "models/customers.sql", "syncs.yml", "warehouse.duckdb"]
    assert ".env" in (target / ".gitignore").read_text().splitlines()
    assert ".reverse_etl/" in (target / ".gitignore").read_text().splitlines()
    (target / ".env").write_text((target / ".env.example").read_text())
    code, out, err = invoke(["-p", str(target), "validate", "--check-source"], env={"INSIDER_API_KEY": None})  # type: ignore[dict-item]
    assert code == 0, err
    assert "ok: syncs.yml is valid (1 syncs: customers)" in out
    code, _, err = invoke(["init", str(target)])
    assert code == 1 and "already holds syncs.yml" in err


def test_init_project_plans_against_the_emulator(tmp_path: Path) -> None:
    target = tmp_path / "starter"
    assert invoke(["init", str(target)])[0] == 0
    with Emulator(partner="local", api_key="local-key") as emu:
        env = {"INSIDER_API_KEY": "local-key", "INSIDER_API_URL": emu.url}
        code, out, err = invoke(["-p", str(target), "run"], env=env)
    assert code == 0, err
    assert "customers: success:" in out and "acknowledged 10" in out


def test_reset_with_yes_off_a_terminal(project: ProjectUnderTest) -> None:
    code, out, err = invoke(["-p", str(project.root), "reset", "customers", "--yes"], env=project.env)
    assert code == 0, err
    assert out.strip() in ("customers: had no state", "customers: snapshot forgotten")


def test_emulator_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = invoke(["emulator", "--port", str(port)])
    assert code == 1
    assert error_lines(err) == [f"error: --port {port}: 127.0.0.1:{port} is already in use; "
                                "pass --port with a free port"]


def test_rejected_into_a_closed_pipe_ends_quietly(project: ProjectUnderTest) -> None:
    state = project.root / ".reverse_etl" / "customers"
    state.mkdir(parents=True)
    script = (
        "import sys, reverse_etl.api as api\n"
        "rows = [{'key': f'u{i}', 'kind': 'rejected', 'attempts': 1, 'reason': 'x' * 50} for i in range(20000)]\n"
        "api.rejected_rows = lambda *a, **k: (len(rows), rows)\n"
        "from reverse_etl.cli import main\n"
        "main(['-p', sys.argv[1], 'rejected', 'customers', '--limit', '20000'])\n"
    )
    shell = f"{sys.executable} -c \"$SCRIPT\" {project.root} | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True,
                          env={"SCRIPT": script, "INSIDER_API_KEY": "test-key", "PATH": "/usr/bin:/bin"},
                          timeout=60)
    assert done.stdout.startswith("customers: 20000 rejected row(s)")
    assert done.stderr == ""
    assert done.returncode == 0


def test_warnings_are_logged_to_stderr_and_quiet_hides_them(project: ProjectUnderTest,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from reverse_etl import api

    real = api.validate

    def noisy(*args: object, **kwargs: object) -> object:
        logging.getLogger("reverse_etl.insider.http").warning("retrying after 503 (attempt 1)")
        logging.getLogger("reverse_etl.insider.http").info("sent 3 batches")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(api, "validate", noisy)
    base = ["-p", str(project.root)]
    _, _, err = invoke([*base, "validate"], env=project.env)
    assert err.splitlines() == ["warning: retrying after 503 (attempt 1)"]
    _, _, err = invoke([*base, "-v", "validate"], env=project.env)
    assert err.splitlines() == ["warning: retrying after 503 (attempt 1)", "info: sent 3 batches"]
    _, _, err = invoke([*base, "-q", "validate"], env=project.env)
    assert err == ""
    _, _, err = invoke([*base, "--log-format", "json", "validate"], env=project.env)
    assert '"level":"warning"' in err and '"logger":"reverse_etl.insider.http"' in err


def test_model_ending_in_a_comment_can_be_wrapped(project: ProjectUnderTest) -> None:
    project.write_model("base", "select * from raw_customers -- all of them")
    project.write_model("customers", "select * from {{ ref('base') }} -- via base")
    code, out, err = invoke(["-p", str(project.root), "validate", "--check-source"], env=project.env)
    assert code == 0, err
    code, out, err = invoke(["-p", str(project.root), "plan"], env=project.env)
    assert code == 0, err
    assert "customers: added 10" in out
