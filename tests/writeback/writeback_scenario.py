"""One write-back scenario for every warehouse: three runs (partial, success, refused credentials).

Each warehouse test seeds its own ``raw_customers``, runs :func:`three_runs`,
then reads the write-back tables back and hands them to :func:`check_tables`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from project_factory import ProjectUnderTest

import reverse_etl
from reverse_etl.insider.emulator import Emulator

ROWS = 12
MODEL_SQL = "select customer_id, email, first_name, city, lifetime_value from raw_customers"
ATTRIBUTES = {"name": "first_name", "city": "city", "ltv": "lifetime_value"}
TABLES = ("sync_runs", "sync_rejected_rows", "sync_changes")


def seed_rows(n: int = ROWS) -> list[tuple[Any, ...]]:
    """raw_customers rows: (customer_id, email, first_name, city, lifetime_value)."""
    return [(f"u{i}", f"user{i}@example.com", f"Name{i}", f"City{i % 4}", i * 10.5) for i in range(1, n + 1)]


def values_sql(rows: list[tuple[Any, ...]]) -> str:
    """The rows as a SQL VALUES list (test data only: no quotes inside)."""
    return ", ".join("(" + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in row) + ")"
                     for row in rows)


def three_runs(project: ProjectUnderTest, emulator: Emulator,
               execute: Callable[[str], None]) -> list[reverse_etl.SyncResult]:
    """Run 1 partial (u3 rejected), run 2 success (u1, u2 changed, u5 removed, u3 retried),
    run 3 failed (refused credentials, u4 changed but not sent)."""
    emulator.set_faults(reject=["u3"])
    first = reverse_etl.run(project.root, environ=project.env).syncs[0]
    assert first.outcome == "partial", first.message
    emulator.set_faults({})
    execute("UPDATE raw_customers SET city = 'Oslo' WHERE customer_id IN ('u1', 'u2')")
    execute("DELETE FROM raw_customers WHERE customer_id = 'u5'")
    second = reverse_etl.run(project.root, environ=project.env).syncs[0]
    assert second.outcome == "success", second.message
    execute("UPDATE raw_customers SET city = 'Rome' WHERE customer_id = 'u4'")
    third = reverse_etl.run(project.root, environ={**project.env, "INSIDER_API_KEY": "wrong-Key-42"}).syncs[0]
    assert third.outcome == "failed" and third.failure == "auth"
    return [first, second, third]


def lower_keys(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Snowflake answers upper-case column names."""
    return [{k.lower(): v for k, v in row.items()} for row in rows]


def check_tables(results: list[reverse_etl.SyncResult], runs: list[dict[str, Any]],
                 rejected: list[dict[str, Any]], changes: list[dict[str, Any]],
                 emulator: Emulator) -> None:
    """The tables hold every run, rejected row and change of :func:`three_runs`, once."""
    first, second, third = (r.run_id for r in results)
    # Every run, once, with its outcome and counts.
    assert sorted(r["run_id"] for r in runs) == sorted([first, second, third])
    by_run = {r["run_id"]: r for r in runs}
    for result in results:
        row = by_run[result.run_id]
        assert row["outcome"] == result.outcome and row["sync"] == "customers"
        assert row["failure"] == result.failure
        for count in ("to_send", "acked", "rejected", "added", "changed", "removed"):
            assert row[count] == result.counts.get(count), (count, row, result.counts)
        assert row["started_at"] <= row["finished_at"]
    assert "wrong-Key-42" not in json.dumps(runs, default=str)
    # The rejected row, with Insider's reason.
    insider = [r for r in rejected if r["kind"] == "insider"]
    assert [(r["run_id"], r["row_key"]) for r in insider] == [(first, "u3")]
    assert insider[0]["reason"] and insider[0]["attempts"] == 1
    # Every change, with what became of it.
    by = {run: {c["row_key"]: c for c in changes if c["run_id"] == run} for run in (first, second, third)}
    assert len(changes) == sum(len(v) for v in by.values())  # nothing duplicated or foreign
    assert set(by[first]) == {f"u{i}" for i in range(1, ROWS + 1)}
    assert Counter(c["outcome"] for c in by[first].values()) == {"acked": ROWS - 1, "rejected": 1}
    assert by[first]["u3"]["outcome"] == "rejected" and by[first]["u3"]["reason"] == insider[0]["reason"]
    assert {c["change"] for c in by[first].values()} == {"added"}
    assert set(json.loads(by[first]["u1"]["changed_fields"])) >= {"attributes.city", "attributes.name"}
    assert {k: (c["change"], c["outcome"]) for k, c in by[second].items()} == {
        "u1": ("changed", "acked"), "u2": ("changed", "acked"), "u3": ("added", "acked"),
        "u5": ("removed", by[second]["u5"]["outcome"])}
    assert json.loads(by[second]["u1"]["changed_fields"]) == ["attributes.city"]
    assert {k: (c["change"], c["outcome"]) for k, c in by[third].items()} == {"u4": ("changed", "not_sent")}
    # What the change log says was acknowledged is what Insider holds.
    assert emulator.profile(uuid="u1")["attributes"]["city"] == "Oslo"  # type: ignore[index]
    assert emulator.profile(uuid="u4")["attributes"]["city"] != "Rome"  # type: ignore[index]
    assert emulator.profile(uuid="u3") is not None
