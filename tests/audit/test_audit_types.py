"""No false positives: 10k unchanged users of every value type, and values Insider echoes
differently but that mean the same (1 vs 1.0, another zone or precision, array order and
duplicates, null vs absent); real differences of the same types are still found."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_helpers import audit, drift, found, next_export_day
from project_factory import ProjectUnderTest, make_project

import reverse_etl
from reverse_etl.insider.emulator import Emulator

TYPED_ATTRIBUTES = {"name": "first_name", "n_int": "n_int", "n_float": "n_float", "n_dec": "n_dec",
                    "ts": "ts", "d": "d", "flag": "flag", "tags": "tags", "note": "note"}


def typed_project(tmp_path: Path, emu: Emulator, rows: int) -> ProjectUnderTest:
    """``rows`` users with integers, whole doubles, decimals, timestamps, dates, booleans,
    arrays and a column NULL on every other row; synced once."""
    project = make_project(tmp_path / "p", emu.url, rows=1, attributes=TYPED_ATTRIBUTES)
    project.sql(f"""CREATE TABLE typed AS SELECT 'u' || i AS customer_id, 'user' || i || '@example.com' AS email,
          'Name' || i AS first_name, i::INTEGER AS n_int, (i % 5)::DOUBLE AS n_float,
          (i / 4)::DECIMAL(10, 2) AS n_dec,
          TIMESTAMPTZ '2024-05-01 10:00:00+00' + i * INTERVAL 1 MINUTE AS ts,
          DATE '2024-01-01' + (i % 300)::INTEGER AS d, i % 2 = 0 AS flag, ['b' || (i % 3), 'a'] AS tags,
          CASE WHEN i % 2 = 0 THEN NULL ELSE 'n' || i END AS note
        FROM range(1, {rows + 1}) t(i)""")
    project.write_model("customers", "select * from typed")
    assert reverse_etl.run(project.root, environ=project.env).exit_code == 0
    return project


def test_ten_thousand_unchanged_users_are_no_drift(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = typed_project(tmp_path, insider_emulator, 10_000)
    full = audit(project, "full")
    assert (full.exit_code, full.drifted_users, full.checked, full.found) == (0, 0, 10_000, 10_000)
    sample = audit(project, "sample", sample=50)
    assert (sample.exit_code, sample.drifted_users, sample.checked, sample.found) == (0, 0, 50, 50)
    assert sample.cost["profile_reads"] == 50


@pytest.mark.parametrize("method", ["sample", "full"])
def test_same_meaning_is_no_drift_and_real_differences_are(tmp_path: Path, insider_emulator: Emulator,
                                                           method: str) -> None:
    emu = insider_emulator
    project = typed_project(tmp_path, emu, 20)
    # u4 holds n_int 4, n_float 4.0, n_dec 1.00, ts 10:04Z, d 2024-01-05, flag true, tags [b1, a], no note.
    drift(emu, "set_attributes", user={"uuid": "u4"}, custom={
        "n_int": 4.0, "n_float": 4, "n_dec": 1, "ts": "2024-05-01T13:04:00.000+03:00",
        "d": "2024-01-05T00:00:00.000000Z", "tags": ["a", "b1", "a"], "note": None})
    assert audit(project, method).drifted_users == 0
    if method == "full":
        next_export_day(emu)
    # The same types, really different: each is found, and nothing else.
    drift(emu, "set_attributes", user={"uuid": "u6"}, custom={
        "n_int": 6.5, "ts": "2024-05-01T10:06:01Z", "tags": ["a"], "flag": False, "note": "set elsewhere"})
    result = audit(project, method)
    assert found(result) == {("attribute", "u6", f"attributes.{name}")
                             for name in ("n_int", "ts", "tags", "flag", "note")}
