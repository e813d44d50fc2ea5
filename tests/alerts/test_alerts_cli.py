"""`reverse-etl run` raises alerts and writes back like the API, and prints what it could not deliver."""

from __future__ import annotations

from pathlib import Path

import duckdb
from alert_receivers import WebhookReceiver
from click.testing import CliRunner
from project_factory import make_project

from reverse_etl.cli import main
from reverse_etl.insider.emulator import Emulator

TOKEN = "cli-Hook-Token-77aa"


def test_cli_run_alerts_and_writes_back_and_keeps_its_exit_code(
        tmp_path: Path, insider_emulator: Emulator, webhook: WebhookReceiver) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=6)
    project.env["HOOK_URL"] = webhook.url(f"/hook?api_key={TOKEN}")
    project.env["DEAD_URL"] = f"http://127.0.0.1:9/dead?token={TOKEN}"
    with project.config() as config:
        config["alerts"] = {"destinations": [{"type": "webhook", "url": '{{ env_var("HOOK_URL") }}'},
                                             {"type": "webhook", "url": '{{ env_var("DEAD_URL") }}'}],
                            "timeout_seconds": 2}
        config["writeback"] = {}
    insider_emulator.set_faults(reject=["u2"])
    result = CliRunner().invoke(main, ["-p", str(project.root), "run"], env=project.env)
    assert result.exit_code == 3, result.output  # partial, as without alerts
    (alert,) = [r["body"] for r in webhook.received]
    assert alert["kind"] == "partial" and alert["counts"]["rejected"] == 1
    assert alert["command"] == "reverse-etl rejected customers"
    # The dead destination is reported on the run's output, its token masked.
    assert "not delivered" in result.output and "127.0.0.1" in result.output
    assert TOKEN not in result.output
    with duckdb.connect(str(project.warehouse), read_only=True) as con:
        runs = con.execute("SELECT outcome, rejected, notes FROM reverse_etl.sync_runs").fetchall()
        refused = con.execute("SELECT row_key, kind FROM reverse_etl.sync_rejected_rows").fetchall()
    assert [(o, r) for o, r, _ in runs] == [("partial", 1)] and refused == [("u2", "insider")]
    assert TOKEN not in runs[0][2] and "not delivered" in runs[0][2]  # notes, redacted
