"""``reverse-etl pull`` end to end: the emulator's raw export loaded into the DuckDB warehouse.

Each test requests an export over real HTTP on 127.0.0.1, receives the hook on
the pull's own receiver, downloads the file and checks what the warehouse table
holds against what the emulator holds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pull_helpers import (
    HEADERS,
    export_def,
    export_requests,
    norm,
    pull_project,
    seed,
    table_rows,
)

import reverse_etl
from reverse_etl.cli import main
from reverse_etl.errors import DeliveryError
from reverse_etl.insider.emulator import Emulator

EVENT_COLUMNS = {"event_name", "timestamp", "product_id", "unit_price", "coupon"}
LAYOUT = {"insider_id", "loyalty_id", "segment_anonymous_id"}
IDENTIFIERS = {"uuid", "email", "phone_number"}


def expected_users(emu: Emulator) -> dict[str, dict[str, Any]]:
    """uuid → non-null attributes as the table should name them (custom c_ prefix dropped)."""
    out: dict[str, dict[str, Any]] = {}
    for p in emu.profiles():
        attrs = {k: v for k, v in p["attributes"].items() if k != "custom" and k not in IDENTIFIERS}
        for k, v in p["attributes"]["custom"].items():
            # product_id is also a standard event parameter: that one keeps its prefix.
            attrs["c_product_id" if k == "product_id" else k] = v
        out[p["identifiers"]["uuid"]] = {k: norm(v) for k, v in attrs.items() if v is not None}
    return out


def expected_events(emu: Emulator) -> list[tuple[Any, ...]]:
    """(uuid, time, product_id, unit_price, coupon) of the cart events of the last 7 days."""
    since = (datetime.now(UTC) - timedelta(days=7)).timestamp()
    out = []
    for p in emu.profiles():
        for ev in p["events"]:
            when = norm(ev["timestamp"])
            if ev["event_name"] != "item_added_to_cart" or when < since:
                continue
            params = ev["event_params"]
            out.append((p["identifiers"]["uuid"], when, params["product_id"],
                        float(params["unit_price"]), (params.get("custom") or {}).get("coupon")))
    return sorted(out)


def loaded_users(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in rows:
        if r["event_name"] is not None:  # v1 has no row-kind column: event rows name their event
            continue
        out[r["uuid"]] = {k: norm(v) for k, v in r.items() if v is not None
                          and k not in LAYOUT | EVENT_COLUMNS | IDENTIFIERS}
    return out


def loaded_events(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((r["uuid"], norm(r["timestamp"]), r["product_id"], float(r["unit_price"]),
                   r["coupon"]) for r in rows if r["event_name"] is not None)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_pull_loads_what_insider_holds(fmt: str, tmp_path: Path,
                                       insider_emulator: Emulator) -> None:
    seed(insider_emulator)
    project = pull_project(tmp_path / "p", insider_emulator.url, export_def(fmt=fmt))

    result = reverse_etl.pull(project.root, "activity", environ=project.env)

    assert (result.rows, result.format, result.table, result.requested) == (
        6, fmt, "insider_activity", True)  # 3 user rows, 3 cart events in the window
    rows = table_rows(project, "insider_activity")
    assert loaded_users(rows) == expected_users(insider_emulator)
    assert loaded_events(rows) == expected_events(insider_emulator)
    ids = {p["identifiers"]["uuid"]: p["insider_id"] for p in insider_emulator.profiles()}
    assert all(ids[r["uuid"]] == r["insider_id"] for r in rows)
    assert {r["email"] for r in rows if r["uuid"] == "u1"} == {"ada@example.com"}
    # Insider's v1 columns (iid, a_, a_c_, e_, e_c_) come back under clean names; the
    # custom attribute product_id meets the standard event parameter and keeps c_.
    assert result.renamed == {
        "iid": "insider_id", "a_uuid": "uuid", "a_email": "email", "a_phone_number": "phone_number",
        "a_c_loyalty_id": "loyalty_id", "a_c_segment_anonymous_id": "segment_anonymous_id",  # custom ids
        "a_name": "name", "a_surname": "surname", "a_city": "city", "a_c_colors": "colors",
        "a_c_product_id": "c_product_id", "a_c_tier": "tier", "a_c_visits": "visits",
        "e_event_name": "event_name", "e_timestamp": "timestamp", "e_product_id": "product_id",
        "e_unit_price": "unit_price", "e_c_coupon": "coupon"}
    assert result.kept_prefix == ["c_product_id"]
    assert set(rows[0]) == set(result.renamed.values())
    # One request, as Insider documents it; the hook is the pull's own loopback receiver.
    (request,) = export_requests(insider_emulator)
    body = request["body"]
    assert request["status"] == 200
    assert body["segment"] == {"segment_id": 123456789} and body["format"] == fmt
    assert body["attributes"] == ["*"]
    assert body["events"]["end_date"] - body["events"]["start_date"] == 7 * 86400
    assert body["hook"].startswith("http://127.0.0.1:")
    assert "test-key" not in str(body)


def test_second_pull_the_same_utc_day_is_refused_before_sending(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    seed(insider_emulator)
    project = pull_project(tmp_path / "p", insider_emulator.url, export_def(),
                           export_def("other", fmt="json"))
    reverse_etl.pull(project.root, "activity", environ=project.env)

    with pytest.raises(DeliveryError) as refused:
        reverse_etl.pull(project.root, "other", environ=project.env)
    message = str(refused.value)
    assert "\n" not in message
    assert "already requested today's raw export (export 'activity' at" in message
    assert "run it again after" in message and "UTC (in " in message and "--force" in message
    assert len(export_requests(insider_emulator)) == 1  # nothing was sent
    state = (project.root / ".reverse_etl" / "exports.json").read_text()
    assert datetime.now(UTC).date().isoformat() in state and "acme" in state

    # --force skips the local guard; Insider then answers 429, in one line.
    with pytest.raises(DeliveryError) as limited:
        reverse_etl.pull(project.root, "other", environ=project.env, force=True)
    assert "\n" not in str(limited.value)
    assert "Insider answered 429" in str(limited.value)
    assert "one raw export per UTC day" in str(limited.value)
    assert [r["status"] for r in export_requests(insider_emulator)] == [200, 429]


def test_429_is_explained_and_remembered(tmp_path: Path, insider_emulator: Emulator) -> None:
    """Another machine used today's export: Insider's 429 becomes one line, then a local refusal."""
    seed(insider_emulator)
    elsewhere = {"segment": {"segment_id": 123456789}, "attributes": ["name"], "format": "csv",
                 "hook": "http://127.0.0.1:9/unused"}
    assert httpx.post(insider_emulator.url + "/api/raw/v1/export", headers=HEADERS,
                      json=elsewhere).status_code == 200
    project = pull_project(tmp_path / "p", insider_emulator.url)

    with pytest.raises(DeliveryError, match=r"^export 'activity': Insider answered 429 .*"
                       r"run it again after \d{4}-\d\d-\d\d 00:00 UTC"):
        reverse_etl.pull(project.root, "activity", environ=project.env)
    with pytest.raises(DeliveryError, match="already requested today's raw export"):
        reverse_etl.pull(project.root, "activity", environ=project.env)
    assert [r["status"] for r in export_requests(insider_emulator)] == [200, 429]


def test_expired_link_is_one_clear_line(tmp_path: Path, insider_emulator: Emulator) -> None:
    seed(insider_emulator)
    project = pull_project(tmp_path / "p", insider_emulator.url)
    first = reverse_etl.pull(project.root, "activity", environ=project.env)

    again = reverse_etl.pull(project.root, "activity", environ=project.env, from_url=first.url)
    assert (again.rows, again.requested) == (first.rows, False)

    insider_emulator.advance_clock(24 * 3600 + 60)
    with pytest.raises(DeliveryError) as expired:
        reverse_etl.pull(project.root, "activity", environ=project.env, from_url=first.url)
    message = str(expired.value)
    assert "\n" not in message
    assert message.startswith("export 'activity': the file link answered 410")
    assert "expire 24 hours after the export was produced" in message
    assert len(export_requests(insider_emulator)) == 1


def test_no_hook_within_the_wait_says_how_to_resume(tmp_path: Path) -> None:
    with Emulator(partner="acme", api_key="test-key", export_delay=5) as emu:
        project = pull_project(tmp_path / "p", emu.url,
                               export_def(webhook={"wait_seconds": 0.3}))
        with pytest.raises(DeliveryError) as late:
            reverse_etl.pull(project.root, "activity", environ=project.env)
    assert "no hook reached http://127.0.0.1:" in str(late.value)
    assert "reverse-etl pull activity --from-url URL" in str(late.value)


def test_append_mode_adds_rows_and_new_columns(tmp_path: Path,
                                               insider_emulator: Emulator) -> None:
    seed(insider_emulator)
    project = pull_project(tmp_path / "p", insider_emulator.url, export_def(
        attributes=["name", "tier"], events=None,
        destination={"table": "raw.insider_users", "mode": "append"}))
    assert reverse_etl.pull(project.root, "activity", environ=project.env).rows == 3

    httpx.post(f"{insider_emulator.url}/api/user/v1/upsert", headers=HEADERS, json={"users": [
        {"identifiers": {"uuid": "u4"}, "attributes": {"custom": {"tier": "new"}}}]})
    insider_emulator.advance_clock(86400)  # Insider's next UTC day
    result = reverse_etl.pull(project.root, "activity", environ=project.env, force=True)
    assert result.rows == 4
    rows = table_rows(project, "raw.insider_users")
    assert len(rows) == 7
    assert sorted(r["tier"] or "" for r in rows) == sorted(
        ["gold", "silver", "", "gold", "silver", "", "new"])


def test_cli_pull_prints_one_line_and_refuses_the_second(tmp_path: Path,
                                                         insider_emulator: Emulator) -> None:
    seed(insider_emulator)
    project = pull_project(tmp_path / "p", insider_emulator.url)
    runner = CliRunner()
    args = ["--project", str(project.root), "pull", "activity"]

    ok = runner.invoke(main, args, env=project.env)
    assert ok.exit_code == 0, ok.output
    assert "activity: loaded 6 row(s) into duckdb table insider_activity (replace, parquet" \
        in ok.output
    assert "a_c_tier -> tier" in ok.output and "kept a prefix" in ok.output

    refused = runner.invoke(main, args, env=project.env)
    assert refused.exit_code == 4
    lines = [x for x in refused.output.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "already requested today's raw export" in lines[0]
    assert "Traceback" not in refused.output

    unknown = runner.invoke(main, ["--project", str(project.root), "pull", "nope"],
                            env=project.env)
    assert unknown.exit_code == 1
    assert "no export named 'nope' in syncs.yml (known: activity)" in unknown.output
