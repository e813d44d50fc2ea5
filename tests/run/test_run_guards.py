"""Guards and verdicts: a run never reports success while Insider holds something else.

Switching destination is a first run there; invalid or held-back rows make a
run partial; too many invalid rows or removals refuse the run before anything
is sent.
"""

from __future__ import annotations

from pathlib import Path

from project_factory import make_project

import reverse_etl
from reverse_etl.insider.emulator import Emulator

UPSERT = "/api/user/v1/upsert"


def test_pointing_at_another_insider_is_a_first_run_there(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=30)
    assert reverse_etl.run(project.root, environ=project.env).exit_code == 0
    with Emulator(partner="acme", api_key="test-key") as production:
        with project.config() as config:
            config["destination"].update(api_base_url=production.url, fps_base_url=production.url)
        planned = reverse_etl.plan(project.root, environ=project.env).syncs[0]
        assert "first run for this destination" in (planned.full_resend_reason or "")
        assert planned.counts["to_send"] == 30
        result = reverse_etl.run(project.root, environ=project.env).syncs[0]
        assert result.outcome == "success" and result.counts["acked"] == 30
        assert len(production.profiles()) == 30
        # ... and the next run there is incremental again.
        assert reverse_etl.plan(project.root, environ=project.env).syncs[0].counts["to_send"] == 0


def test_invalid_rows_make_the_run_partial_unless_fail_on_never(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=20)
    project.sql("UPDATE raw_customers SET email = 'not-an-email' WHERE customer_id IN ('u1', 'u2')")
    result = reverse_etl.run(project.root, environ=project.env)
    sync = result.syncs[0]
    assert (result.exit_code, sync.outcome, sync.counts["invalid"]) == (3, "partial", 2)
    assert "2 invalid" in (sync.message or "")
    total, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
    assert total == 2 and {r["key"] for r in rows} == {"u1", "u2"}
    with project.config() as config:
        config["syncs"][0]["options"] = {"fail_on": "never"}
    again = reverse_etl.run(project.root, environ=project.env)
    assert (again.exit_code, again.syncs[0].outcome) == (0, "success")


def test_too_many_invalid_rows_refuse_the_run_before_sending(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=20)
    project.sql("UPDATE raw_customers SET email = 'bad' WHERE customer_id <= 'u2'")  # u1, u10..u19, u2
    with project.config() as config:
        config["syncs"][0]["options"] = {"max_invalid_ratio": 0.1}
    result = reverse_etl.run(project.root, environ=project.env)
    sync = result.syncs[0]
    assert result.exit_code == 4 and sync.failure == "refused"
    assert "max_invalid_ratio" in (sync.message or "")
    assert not any(r["path"] == UPSERT for r in insider_emulator.requests())


def test_a_truncated_model_does_not_delete_most_users(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=200, on_removed="delete_user")
    assert reverse_etl.run(project.root, environ=project.env).exit_code == 0
    project.sql("DELETE FROM raw_customers WHERE customer_id NOT IN ('u1', 'u2')")
    result = reverse_etl.run(project.root, environ=project.env)
    sync = result.syncs[0]
    assert result.exit_code == 4 and sync.failure == "refused"
    assert "198 of 200" in (sync.message or "") and "max_removed_ratio" in (sync.message or "")
    assert len(insider_emulator.profiles()) == 200  # nobody was deleted
    # Allowed explicitly, the removal goes through.
    with project.config() as config:
        config["syncs"][0]["options"] = {"max_removed_ratio": 1.0}
    assert reverse_etl.run(project.root, environ=project.env).exit_code == 0
    assert len(insider_emulator.profiles()) == 2


def test_a_few_removals_pass_the_guard(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=200, on_removed="delete_user")
    assert reverse_etl.run(project.root, environ=project.env).exit_code == 0
    project.sql("DELETE FROM raw_customers WHERE customer_id IN ('u1', 'u2', 'u3')")
    assert reverse_etl.run(project.root, environ=project.env).exit_code == 0
    assert len(insider_emulator.profiles()) == 197
