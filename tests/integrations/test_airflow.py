"""Airflow: the README's DAG run with ``dag.test()`` against the emulator, in its own process.

Airflow reads its configuration when first imported, so each DAG runs in a
child process whose AIRFLOW_HOME, dags folder and sqlite metadata database are
in the test's tmp dir; :mod:`airflow_harness` prints what Airflow recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import require, write_env
from project_factory import ProjectUnderTest

import reverse_etl
from reverse_etl.insider.emulator import Emulator

require("airflow.sdk")

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "examples" / "airflow_dag.py"


def airflow_env(home: Path) -> dict[str, str]:
    return {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated Airflow metadata database (``airflow db migrate`` once; each test copies it)."""
    home = tmp_path_factory.mktemp("airflow")
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], env=airflow_env(home), check=True,
                   capture_output=True, timeout=240)
    return home / "airflow.db"


def dag_test(tmp_path: Path, migrated_db: Path, project: ProjectUnderTest,
             dag_source: Path = EXAMPLE) -> tuple[dict[str, Any], str]:
    """``dag.test()`` of a DAG file (the README's): (what Airflow recorded, the task's log output)."""
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    shutil.copyfile(migrated_db, home / "airflow.db")
    dag_file = home / "dags" / dag_source.name
    shutil.copyfile(dag_source, dag_file)
    done = subprocess.run([sys.executable, str(HERE / "airflow_harness.py"), str(dag_file)],
                          env={**airflow_env(home), "ETL_PROJECT": str(project.root)},
                          capture_output=True, text=True, timeout=240, check=False)
    output = done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("HARNESS ")]
    assert lines, output[-3000:]
    return json.loads(lines[-1].removeprefix("HARNESS ")), output


def test_the_operator_runs_the_selected_syncs_and_returns_the_result_to_xcom(
        tmp_path: Path, migrated_db: Path, project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    recorded, _ = dag_test(tmp_path, migrated_db, project)

    assert recorded["state"] == "success"
    assert recorded["tasks"] == {"sync_daily": "success"}
    xcom = recorded["xcom"]["sync_daily"]
    (last,) = reverse_etl.history(project.root)  # tag:daily: only `customers` ran
    assert xcom["exit_code"] == 0
    (sync,) = xcom["syncs"]
    assert (sync["sync"], sync["run_id"], sync["outcome"]) == ("customers", last.run_id, "success")
    assert (sync["counts"]["added"], sync["counts"]["acked"], sync["counts"]["rejected"]) == (10, 10, 0)
    assert len(insider_emulator.profiles()) == 10
    assert "test-key" not in json.dumps(recorded)


def test_a_failed_sync_fails_the_task_with_the_tools_one_line_reason(
        tmp_path: Path, migrated_db: Path, project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    write_env(project, "wrong-key")

    recorded, output = dag_test(tmp_path, migrated_db, project)

    assert recorded["state"] == "failed"
    assert recorded["tasks"] == {"sync_daily": "failed"}
    assert recorded["xcom"] == {}
    (last,) = reverse_etl.history(project.root)
    assert f"AirflowException: customers: failed: {last.error}" in output
    assert "Insider refused the credentials" in (last.error or "")
    assert "wrong-key" not in output
    assert insider_emulator.profiles() == []


def test_partial_runs_pass_when_allowed_and_downstream_tasks_read_the_xcom(
        tmp_path: Path, migrated_db: Path, project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(reject=["u2"])

    recorded, _ = dag_test(tmp_path, migrated_db, project, HERE / "dags" / "partial_dag.py")

    assert recorded["state"] == "success"
    assert recorded["tasks"] == {"sync": "success", "rejected": "success"}
    (sync,) = recorded["xcom"]["sync"]["syncs"]  # the templated select chose `cities`
    assert (sync["sync"], sync["outcome"], recorded["xcom"]["sync"]["exit_code"]) == ("cities", "partial", 3)
    assert recorded["xcom"]["rejected"] == sync["counts"]["rejected"] == 1
    assert reverse_etl.rejected_rows(project.root, "cities")[0] == 1
    assert len(insider_emulator.profiles()) == 9
