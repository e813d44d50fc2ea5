"""Local rules at least as strict as Insider's: bad values are refused, never sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from project_factory import make_project
from test_sync_engine import UPSERT, run, sent

import reverse_etl
from reverse_etl.insider.emulator import Emulator

# (attribute, custom?, bad SQL literal, good SQL literal, text in the reason, value Insider holds for good)
CASES: list[tuple[str, str, str, str, str, Any]] = [
    ("age_fraction", "age", "36.5::DOUBLE", "36.0::DOUBLE", "age: must be an integer: 36.5", 36),
    ("age_decimal", "age", "36.5::DECIMAL(5,1)", "36.0::DECIMAL(5,1)", "age: must be an integer: 36.5", 36),
    ("age_text", "age", "'thirty'", "'41'", "age: must be an integer: thirty", 41),
    ("gender_integer", "gender", "1", "NULL::INTEGER", "gender: must be text, not INTEGER: 1", None),
    ("gender_boolean", "gender", "true", "NULL::BOOLEAN", "gender: must be text, not BOOLEAN: true", None),
    ("birthday_integer", "birthday", "19800101", "NULL::INTEGER", "birthday: expected a date or timestamp, not INTEGER: 19800101", None),
    ("birthday_infinity", "birthday", "'infinity'::DATE", "DATE '1980-01-01'", "birthday: outside years 0001-9999 (RFC 3339): infinity", "1980-01-01T00:00:00Z"),
    ("birthday_minus_infinity", "birthday", "'-infinity'::TIMESTAMP", "TIMESTAMP '1980-01-01 10:00:00'", "birthday: outside years 0001-9999 (RFC 3339): -infinity", "1980-01-01T10:00:00Z"),
    ("birthday_bc", "birthday", "DATE '0044-03-15 (BC)'", "DATE '0001-01-01'", "birthday: outside years 0001-9999 (RFC 3339): 0044-03-15 (BC)", "0001-01-01T00:00:00Z"),
    ("birthday_year_10000", "birthday", "DATE '12000-01-01'", "DATE '9999-12-31'", "birthday: outside years 0001-9999 (RFC 3339): 12000-01-01", "9999-12-31T00:00:00Z"),
    ("birthday_text_infinity", "birthday", "'infinity'", "'1980-01-01T00:00:00Z'", "birthday: outside years 0001-9999 (RFC 3339): infinity", "1980-01-01T00:00:00Z"),
    ("custom_date_bc", "signup", "TIMESTAMP '0100-01-01 (BC)'", "TIMESTAMP '2020-01-01 00:00:00'", "signup: outside years 0001-9999 (RFC 3339): 0100-01-01 (BC)", "2020-01-01T00:00:00Z"),
    ("hugeint", "big", "9007199254740993::HUGEINT", "9007199254740992::HUGEINT", "big: beyond 2^53, Insider would round it: 9007199254740993", 2**53),
    ("ubigint", "big", "18446744073709551615::UBIGINT", "42::UBIGINT", "big: beyond 2^53, Insider would round it: 18446744073709551615", 42),
    ("uhugeint", "big", "1152921504606846976::UHUGEINT", "7::UHUGEINT", "big: beyond 2^53, Insider would round it: 1152921504606846976", 7),
    ("bigint_array_element", "ids", "[1, 9007199254740993]::BIGINT[]", "[1, 2]::BIGINT[]", "ids: an element is beyond 2^53, Insider would round it: 9007199254740993", [1, 2]),
    ("double_array_nan", "scores", "[1.5, 'nan'::DOUBLE]", "[1.5, 2.5]::DOUBLE[]", "scores: an element is not a finite number: nan", [1.5, 2.5]),
    ("double_array_infinity", "scores", "['-infinity'::DOUBLE]", "[0.25::DOUBLE]", "scores: an element is not a finite number: -inf", [0.25]),
    ("decimal_array_digits", "amounts", "[1234567890123456789.1234567891::DECIMAL(38,10)]", "[12.5::DECIMAL(38,10)]", "amounts: an element has too many significant digits for a double, Insider would round it: 1234567890123456789.1234567891", [12.5]),
    ("text_array_big_integer", "codes", "'[1, 123456789012345678901234567890]'", "'[1, 2]'", "codes: an element is beyond 2^53, Insider would round it: 123456789012345678901234567890", [1, 2]),
    ("timestamptz_year_10000_in_utc", "signup", "TIMESTAMPTZ '9999-12-31 23:30:00-02'", "TIMESTAMPTZ '9999-12-31 21:30:00-02'", "signup: outside years 0001-9999 (RFC 3339): 10000-01-01 01:30:00+00", "9999-12-31T23:30:00Z"),
    ("timestamptz_year_0_in_utc", "signup", "TIMESTAMPTZ '0001-01-01 00:30:00+02'", "TIMESTAMPTZ '0001-01-01 02:30:00+02'", "signup: outside years 0001-9999 (RFC 3339): 0001-12-31 (BC) 22:30:00+00", "0001-01-01T00:30:00Z"),
    ("text_timestamptz_year_10000_in_utc", "birthday", "'9999-12-31T23:30:00-02:00'", "'9999-12-31T21:30:00-02:00'", "birthday: outside years 0001-9999 (RFC 3339): 9999-12-31T23:30:00-02:00", "9999-12-31T23:30:00Z"),
    ("decimal_digits", "ltv_exact", "1234567890123456789.1234567891::DECIMAL(38,10)", "12.5::DECIMAL(38,10)", "ltv_exact: too many significant digits for a double, Insider would round it: 1234567890123456789.1234567891", 12.5),
]


def _held(profile: dict[str, Any], name: str) -> Any:
    attributes = profile["attributes"]
    return attributes[name] if name in attributes else attributes.get("custom", {}).get(name)


@pytest.mark.parametrize(("case", "name", "bad", "good", "reason", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_value_is_rejected_good_one_arrives(tmp_path: Path, insider_emulator: Emulator, case: str, name: str,
                                                bad: str, good: str, reason: str, expected: Any) -> None:
    project = make_project(tmp_path / case, insider_emulator.url, rows=1)
    project.write_model("strict", f"select 'bad' as customer_id, 'Bad' as n, {bad} as v union all select 'good', 'Good', {good}")
    with project.config() as config:
        config["syncs"] = [{"name": "strict", "model": "strict", "identifiers": {"uuid": "customer_id"},
                            "attributes": {"name": "n", name: "v"}}]
    result = run(project)
    assert result.outcome == "partial", result.message
    assert result.counts["invalid"] == 1
    assert not [u for u in sent(insider_emulator, UPSERT) if u["identifiers"] == {"uuid": "bad"}]
    bad_profile = insider_emulator.profile(uuid="bad")
    assert bad_profile is None or _held(bad_profile, name) is None
    total, rows = reverse_etl.rejected_rows(project.root, "strict", environ=project.env)
    assert total == 1 and rows[0]["key"] == "bad"
    assert reason in rows[0]["reason"]
    good_profile = insider_emulator.profile(uuid="good")
    # (A column of the wrong type refuses every non-null value: its good row is NULL.)
    assert good_profile is not None and good_profile["attributes"]["name"] == "Good"
    assert _held(good_profile, name) == expected


def test_integer_event_timestamp_and_infinite_timestamp_rejected(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "ev", insider_emulator.url, rows=1)
    project.write_model("events", """
        select 'e1' as event_id, 'u1' as customer_id, 'page_viewed' as event_name,
               'infinity'::TIMESTAMP as occurred_at
        union all select 'e2', 'u1', 'page_viewed', now()::TIMESTAMP
    """)
    with project.config() as config:
        config["syncs"] = [{"name": "events", "model": "events", "mode": "user_events",
                            "identifiers": {"uuid": "customer_id"},
                            "event": {"name_column": "event_name", "timestamp": "occurred_at", "key": "event_id"}}]
    result = run(project)
    assert result.outcome == "partial" and result.counts["acked"] == 1 and result.counts["invalid"] == 1
    _, rows = reverse_etl.rejected_rows(project.root, "events", environ=project.env)
    assert rows[0]["key"] == "e1" and "outside years 0001-9999" in rows[0]["reason"] and "infinity" in rows[0]["reason"]
    assert len(insider_emulator.profile(uuid="u1")["events"]) == 1  # type: ignore[index]

    project.write_model("events", "select 'e3' as event_id, 'u1' as customer_id, 'page_viewed' as event_name, "
                                  "20200101 as occurred_at")
    result = run(project)
    assert result.outcome == "partial" and result.counts["invalid"] == 1
    _, rows = reverse_etl.rejected_rows(project.root, "events", environ=project.env)
    assert any(r["key"] == "e3" and "expected a date or timestamp, not INTEGER" in r["reason"] for r in rows)


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Tokyo", "UTC"])
def test_the_year_range_of_a_timestamptz_is_judged_in_utc_whatever_the_session_zone(zone: str) -> None:
    import duckdb

    from reverse_etl.insider.fields import Field, encode_field

    encoded = encode_field(Field("attributes", "signup", True, "v"), "v", "TIMESTAMP WITH TIME ZONE")
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{zone}'")
    values = ["9999-12-31 23:30:00-02", "0001-01-01 00:30:00+02", "9999-12-31 21:30:00-02", "0001-01-01 02:30:00+02"]
    rows = con.execute(f"SELECT {encoded.value_sql}, {encoded.reason_sql} FROM "
                       "(SELECT unnest(?)::TIMESTAMPTZ AS v)", [values]).fetchall()
    assert [r[0] for r in rows] == [None, None, '"9999-12-31T23:30:00Z"', '"0001-01-01T00:30:00Z"']
    assert [r[1] is not None and "outside years 0001-9999" in r[1] for r in rows] == [True, True, False, False]


def test_text_that_becomes_an_array_on_a_later_run_is_sent_as_one(tmp_path: Path, insider_emulator: Emulator) -> None:
    # A later run encodes only its changed rows, in the short form when none of them holds
    # a text that may be an array: the full rules must still apply once one does.
    project = make_project(tmp_path / "arrays", insider_emulator.url, rows=1)
    with project.config() as config:
        config["syncs"] = [{"name": "tags", "model": "tags", "identifiers": {"uuid": "customer_id"},
                            "attributes": {"name": "n", "tags": "t"}}]

    def model(a: str, b: str) -> None:
        project.write_model("tags", f"select 'a' as customer_id, 'A' as n, {a} as t "
                                    f"union all select 'b', 'B', {b} union all select 'c', 'C', 'steady [x]'")

    def held(key: str) -> Any:
        profile = insider_emulator.profile(uuid=key)
        assert profile is not None
        return _held(profile, "tags")

    model("'red'", "'plain'")
    assert run(project).outcome == "success"
    assert (held("a"), held("b"), held("c")) == ("red", "plain", "steady [x]")

    model("'[''red'', ''blue'']'", "'[1, \"x\"]'")
    result = run(project)
    assert result.outcome == "partial" and result.counts["invalid"] == 1
    assert held("a") == ["red", "blue"] and held("b") == "plain"
    _, rows = reverse_etl.api.rejected_rows(project.root, "tags", environ=project.env)
    assert [r["key"] for r in rows] == ["b"]
    assert "tags: arrays must hold only strings or only numbers" in rows[0]["reason"]

    model("'green'", "'[3, 4]'")  # a changed row with an array, the other one without
    assert run(project).outcome == "success"
    assert (held("a"), held("b")) == ("green", [3, 4])

    model("'blue'", "'[3, 4]'")  # the only changed row holds no '[': the short form
    assert run(project).outcome == "success"
    assert (held("a"), held("b"), held("c")) == ("blue", [3, 4], "steady [x]")
