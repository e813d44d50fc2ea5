"""Run a DAG file with ``dag.test()`` and print what Airflow recorded, as one JSON line.

Run as a script in a process whose AIRFLOW_HOME and sqlite metadata database
the test set up (Airflow reads its configuration when it is first imported).
Prints ``{"state": dag run state, "tasks": {task_id: state}, "xcom": {task_id:
return_value}}``, read back from Airflow's metadata database.
"""

from __future__ import annotations

import json
import runpy
import sys


def main(dag_file: str) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dag = runpy.run_path(dag_file)["dag"]
    run = dag.test()
    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == run.run_id).all()
        tasks = {ti.task_id: str(ti.state) for ti in tis}
        xcoms = session.query(XComModel).filter(XComModel.run_id == run.run_id,
                                                XComModel.key == "return_value").all()
        values = {x.task_id: XComModel.deserialize_value(x) for x in xcoms}
    print("HARNESS " + json.dumps({"state": str(run.state), "tasks": tasks, "xcom": values}))


if __name__ == "__main__":
    main(sys.argv[1])
