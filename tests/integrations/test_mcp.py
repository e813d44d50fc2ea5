"""MCP: ``reverse-etl mcp`` driven over stdio by the official MCP client SDK (the README's client)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import require, write_env
from project_factory import ProjectUnderTest

import reverse_etl
from reverse_etl.insider.emulator import Emulator

require("mcp")

from reverse_etl.mcp.server import RUNS_DISABLED  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent / "examples" / "mcp_client.py"
BIN = Path(sys.executable).parent  # this venv's reverse-etl script


def ask(project: ProjectUnderTest, tool: str, *flags: str, **arguments: Any) -> dict[str, Any]:
    """One tool call through the README's client; what it printed, plus the raw output."""
    done = subprocess.run([sys.executable, str(EXAMPLE), str(project.root), tool, json.dumps(arguments), *flags],
                          env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "test-key" not in done.stdout + done.stderr  # the API key never leaves
    return answer


def test_list_syncs_shows_each_sync_without_the_destinations_settings(
        project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    answer = ask(project, "list_syncs")

    assert not answer["error"]
    syncs = answer["data"]["syncs"]
    assert [(s["name"], s["model"], s["tags"]) for s in syncs] == [
        ("customers", "customers", ["daily"]), ("cities", "customers", ["weekly"])]
    assert syncs[1]["identifiers"] == {"uuid": "customer_id"} and syncs[1]["attributes"] == {"city": "city"}
    assert insider_emulator.url not in json.dumps(answer)


def test_plan_sync_shows_what_a_run_would_send_and_sends_nothing(
        project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    answer = ask(project, "plan_sync", sync="cities")

    assert not answer["error"]
    (sync,) = answer["data"]["syncs"]
    assert (sync["sync"], sync["outcome"], sync["counts"]["added"]) == ("cities", "planned", 10)
    assert any('"city"' in payload for payloads in sync["samples"].values() for payload in payloads)
    assert insider_emulator.requests() == [] and insider_emulator.profiles() == []
    assert reverse_etl.history(project.root) == []


def test_run_sync_needs_the_flag_and_a_confirmation_then_runs(
        project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    refused = ask(project, "run_sync", sync="customers", confirm=True)
    assert refused["error"] and RUNS_DISABLED in refused["text"][0]
    unconfirmed = ask(project, "run_sync", "--allow-runs", sync="customers")
    assert unconfirmed["error"] and "confirm=true" in unconfirmed["text"][0]
    assert insider_emulator.profiles() == [] and reverse_etl.history(project.root) == []

    answer = ask(project, "run_sync", "--allow-runs", sync="customers", confirm=True)

    assert not answer["error"]
    (sync,) = answer["data"]["syncs"]
    (last,) = reverse_etl.history(project.root)
    assert (sync["run_id"], sync["outcome"], sync["counts"]["acked"]) == (last.run_id, "success", 10)
    assert len(insider_emulator.profiles()) == 10
    runs = ask(project, "history", sync="customers")["data"]["runs"]
    assert [(r["run_id"], r["outcome"], r["counts"]["acked"]) for r in runs] == [(last.run_id, "success", 10)]


def test_a_selector_is_not_a_sync_name(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    answer = ask(project, "run_sync", "--allow-runs", sync="tag:daily", confirm=True)

    assert answer["error"] and "not a selector" in answer["text"][0]
    assert insider_emulator.requests() == []


def test_rejected_rows_says_why_insider_refused_them(project: ProjectUnderTest,
                                                    insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(reject=["u2"])
    partial = ask(project, "run_sync", "--allow-runs", sync="cities", confirm=True)
    assert partial["data"]["syncs"][0]["outcome"] == "partial"

    answer = ask(project, "rejected_rows", sync="cities")

    assert not answer["error"]
    total, expected = reverse_etl.rejected_rows(project.root, "cities")
    assert answer["data"]["total"] == total == 1
    (row,) = answer["data"]["rows"]
    assert row["key"] == expected[0]["key"] and row["reason"] == expected[0]["reason"]
    assert "u2" in json.dumps(row)


def test_lookup_answers_for_one_key_what_the_state_and_insider_said(project: ProjectUnderTest,
                                                                     insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(reject=["u2"])
    assert ask(project, "run_sync", "--allow-runs", sync="cities", confirm=True)["data"]["syncs"][0][
        "outcome"] == "partial"

    acked = ask(project, "lookup", sync="cities", key="u1")["data"]
    refused = ask(project, "lookup", sync="cities", key="u2")["data"]
    unknown = ask(project, "lookup", sync="cities", key="nobody")["data"]

    expected = reverse_etl.lookup(project.root, "cities", "u1")
    assert acked["answer"] == "acknowledged" and acked["snapshot"] == expected.snapshot
    assert acked["snapshot_run"]["run_id"] == expected.snapshot_run.run_id  # type: ignore[union-attr]
    assert refused["answer"].startswith("Insider rejected it: ") and refused["rejected"]["attempts"] == 1
    assert not unknown["found"] and unknown["answer"].startswith("not known")


def test_a_failed_run_is_a_tool_error_with_the_tools_one_line_reason(
        project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    write_env(project, "wrong-key")

    answer = ask(project, "run_sync", "--allow-runs", sync="cities", confirm=True)

    assert answer["error"]
    (last,) = reverse_etl.history(project.root)
    assert answer["text"][0].endswith(f"cities: failed: {last.error} (exit code 4)")
    assert "wrong-key" not in json.dumps(answer)
    assert insider_emulator.profiles() == []


def test_a_broken_project_stops_the_server_with_one_line(project: ProjectUnderTest) -> None:
    (project.root / "syncs.yml").write_text("version: 1\nsyncs: [\n")
    done = subprocess.run([str(BIN / "reverse-etl"), "--project", str(project.root), "mcp"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 1
    assert "syncs.yml" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
