"""One run, one owner: every way a run ends gives one result and one ledger record, same run id.

What an orchestrator sees (``--json``, the exit code) and what ``history``
shows must agree for each outcome: success, a config error found at run time,
a warehouse error, refused credentials, a held lock, and Ctrl-C.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from project_factory import ProjectUnderTest, make_project

import reverse_etl
from reverse_etl.cli import main
from reverse_etl.insider.emulator import Emulator
from reverse_etl.run.events import RowsSent, RunEvent, RunFinished, RunStarted, StageFinished
from reverse_etl.state import SyncState


@pytest.fixture
def project(tmp_path: Path, insider_emulator: Emulator) -> ProjectUnderTest:
    return make_project(tmp_path / "proj", insider_emulator.url, rows=20)


def _cli_json(project: ProjectUnderTest, *args: str) -> tuple[int, dict]:
    runner = CliRunner()
    out = runner.invoke(main, ["--project", str(project.root), *args, "--json"], env=project.env)
    return out.exit_code, orjson.loads(out.stdout.strip().splitlines()[-1])


def _last_record(project: ProjectUnderTest) -> reverse_etl.state.RunRecord:
    records = reverse_etl.history(project.root, environ=project.env)
    assert records, "the run is missing from the ledger"
    return records[-1]


def _assert_same_run(project: ProjectUnderTest, summary: dict, *, code: int, outcome: str,
                     failure: str | None, message_part: str | None) -> None:
    sync = summary["syncs"][0]
    record = _last_record(project)
    assert summary["exit_code"] == code
    assert (sync["outcome"], sync["failure"]) == (outcome, failure)
    assert record.run_id == sync["run_id"]
    assert (record.outcome, record.failure) == (outcome, failure)
    assert record.error == sync["message"]
    if message_part is not None:
        assert message_part in (record.error or "")


def test_success_is_recorded_under_the_run_id_json_shows(project: ProjectUnderTest) -> None:
    code, summary = _cli_json(project, "run")
    assert code == 0
    _assert_same_run(project, summary, code=0, outcome="success", failure=None, message_part=None)


def test_config_error_found_at_run_time_is_exit_1_and_recorded_with_its_message(
        project: ProjectUnderTest) -> None:
    with project.config() as config:
        config["syncs"][0]["attributes"]["surname"] = "no_such_column"
    code, summary = _cli_json(project, "run")
    assert code == 1
    _assert_same_run(project, summary, code=1, outcome="failed", failure="config",
                     message_part="no_such_column")


def test_source_error_is_exit_2_and_recorded(project: ProjectUnderTest) -> None:
    project.write_model("customers", "select * from table_that_is_not_there")
    code, summary = _cli_json(project, "run")
    assert code == 2
    _assert_same_run(project, summary, code=2, outcome="failed", failure="source",
                     message_part="table_that_is_not_there")


def test_refused_credentials_are_exit_4_auth_and_recorded(project: ProjectUnderTest) -> None:
    project.env["INSIDER_API_KEY"] = "wrong-key"
    code, summary = _cli_json(project, "run")
    assert code == 4
    _assert_same_run(project, summary, code=4, outcome="failed", failure="auth", message_part=None)
    assert "wrong-key" not in (_last_record(project).error or "")


def test_lock_refusal_is_recorded_and_names_the_holder(project: ProjectUnderTest) -> None:
    state = SyncState((project.root / ".reverse_etl").resolve(), "customers")
    state.prepare()
    with state.lock():
        code, summary = _cli_json(project, "run")
    assert code == 4
    _assert_same_run(project, summary, code=4, outcome="failed", failure="lock", message_part=None)


def test_ctrl_c_is_exit_130_interrupted_and_recorded(project: ProjectUnderTest) -> None:
    def press_ctrl_c(event: RunEvent) -> None:
        if isinstance(event, StageFinished) and event.stage == "diff":
            raise KeyboardInterrupt

    result = reverse_etl.run(project.root, environ=project.env, hooks=[press_ctrl_c])
    assert result.exit_code == 130
    sync = result.syncs[0]
    assert sync.outcome == "interrupted"
    record = _last_record(project)
    assert (record.run_id, record.outcome, record.failure) == (sync.run_id, "interrupted", "interrupted")
    assert "interrupted" in (record.error or "")
    # Nothing was lost: the next run sends every row.
    again = reverse_etl.run(project.root, environ=project.env)
    assert again.exit_code == 0 and again.syncs[0].counts["acked"] == 20


def test_hooks_see_the_run_and_a_failing_hook_never_fails_it(project: ProjectUnderTest) -> None:
    seen: list[RunEvent] = []

    def broken(event: RunEvent) -> None:
        raise RuntimeError("hook bug")

    result = reverse_etl.run(project.root, environ=project.env, hooks=[broken, seen.append])
    assert result.exit_code == 0
    kinds = [type(e) for e in seen]
    assert kinds[0] is RunStarted and kinds[-1] is RunFinished
    stages = [e.stage for e in seen if isinstance(e, StageFinished)]
    assert stages == ["source", "diff", "deliver", "commit"]
    assert any(isinstance(e, RowsSent) and e.done == e.total == 20 for e in seen)
    finished = seen[-1]
    assert isinstance(finished, RunFinished) and finished.result.run_id == result.syncs[0].run_id


def test_plan_is_not_recorded(project: ProjectUnderTest) -> None:
    reverse_etl.plan(project.root, environ=project.env)
    assert reverse_etl.history(project.root, environ=project.env) == []
