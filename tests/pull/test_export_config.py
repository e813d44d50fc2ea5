"""The ``exports:`` section: bad definitions are refused by ``validate`` with file:line: field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from project_factory import base_config, make_project
from pull_helpers import dump

import reverse_etl
from reverse_etl.cli import main
from reverse_etl.errors import ConfigError
from reverse_etl.insider.pull.config import resolve_time

GOOD = """\
exports:
  - name: activity
    segment_id: 123456789
    attributes: ["*"]
    events:
      start: 2024-05-01
      end: 2024-05-08 12:00:00
      wanted:
        - name: item_added_to_cart
          params: [product_id, timestamp]
          filter: {key: product_id, operator: eq, values: [P1, P2]}
        - name: purchase
          filter: {key: unit_price, operator: gt, values_url: "https://me.example/v.csv"}
    format: csv
    destination: {table: insider_activity, mode: append}
    webhook: {host: 0.0.0.0, port: 8788, public_url: "https://me.example/hook", wait_seconds: 60}
"""


def write(tmp_path: Path, exports_yaml: str) -> tuple[Path, int]:
    """A project whose syncs.yml ends with ``exports_yaml``; the line the exports start on."""
    project = make_project(tmp_path / "p")
    head = dump(base_config("http://127.0.0.1:9"))
    (project.root / "syncs.yml").write_text(head + exports_yaml)
    return project.root, head.count("\n") + 1


def refused(root: Path) -> str:
    with pytest.raises(ConfigError) as error:
        reverse_etl.validate(root, environ={"INSIDER_API_KEY": "k"})
    return str(error.value)


def test_a_full_definition_is_valid(tmp_path: Path) -> None:
    root, _ = write(tmp_path, GOOD)
    project = reverse_etl.validate(root, environ={"INSIDER_API_KEY": "k"})
    (export,) = project.config.exports
    assert export.events is not None
    assert [w.filter.operator for w in export.events.wanted if w.filter] == ["eq", "gt"]
    assert export.events.epoch_range(datetime.now(UTC)) == (1714521600, 1715169600)
    assert export.webhook.public_url == "https://me.example/hook"
    assert export.destination.mode == "append"


@pytest.mark.parametrize(("change", "line", "field", "says"), [
    (("values: [P1, P2]}", "values: [P1], values_url: 'https://x.example/v.csv'}"), 10,
     "exports[0].events.wanted[0].filter", "exactly one of values"),
    (("operator: eq", "operator: like"), 10, "exports[0].events.wanted[0].filter.operator",
     "'eq', 'ne', 'lt', 'gt', 'lteq' or 'gteq'"),
    (('operator: gt, values_url: "https://me.example/v.csv"', "operator: gt, values: [1, 2]"),
     12, "exports[0].events.wanted[1].filter", "operator gt compares with exactly one value"),
    (("format: csv", "format: xml"), 13, "exports[0].format", "'csv', 'parquet' or 'json'"),
    (("name: activity", "name: Activity-1"), 1, "exports[0].name", "must match"),
    (("destination: {table: insider_activity", "destination: {table: 'drop table; x'"), 14,
     "exports[0].destination.table", "plain identifier"),
    (("start: 2024-05-01", "start: last tuesday"), 5, "exports[0].events.start",
     "not a date"),
    (("start: 2024-05-01", "start: 2024-06-01"), 4, "exports[0].events",
     "is after end"),
    (("segment_id: 123456789", "segment_id: -4"), 2, "exports[0].segment_id", "greater than 0"),
    (("- name: purchase", "- name: Purchase!"), 11, "exports[0].events.wanted[1].name",
     "must match"),
])
def test_bad_definitions_are_refused_with_file_line_field(
        tmp_path: Path, change: tuple[str, str], line: int, field: str, says: str) -> None:
    old, new = change
    assert old in GOOD
    root, first = write(tmp_path, GOOD.replace(old, new))
    message = refused(root)
    assert message.startswith(f"syncs.yml:{first + line}: {field}: "), message
    assert says in message


def test_no_attributes_and_no_events_is_refused(tmp_path: Path) -> None:
    text = ("exports:\n  - name: empty\n    segment_id: 1\n    attributes: []\n"
            "    destination: {table: t}\n")
    root, first = write(tmp_path, text)
    message = refused(root)
    assert message.startswith(f"syncs.yml:{first + 1}: exports[0]: ")
    assert "needs attributes (a list, or ['*']) or events" in message


def test_duplicate_export_names_are_refused(tmp_path: Path) -> None:
    one = "  - {name: a, segment_id: 1, attributes: [name], destination: {table: t}}\n"
    root, first = write(tmp_path, "exports:\n" + one + one)
    message = refused(root)
    assert message.startswith(f"syncs.yml:{first}: exports: ")
    assert "export name 'a' is used twice" in message


def test_unknown_field_in_an_export(tmp_path: Path) -> None:
    root, first = write(tmp_path, GOOD.replace("    format: csv\n", "    formatt: csv\n"))
    assert refused(root).startswith(
        f"syncs.yml:{first + 13}: exports[0].formatt: unknown field; did you mean 'format'?")


def test_cli_validate_prints_the_line(tmp_path: Path) -> None:
    root, first = write(tmp_path, GOOD.replace("format: csv", "format: xml"))
    out = CliRunner().invoke(main, ["--project", str(root), "validate"],
                             env={"INSIDER_API_KEY": "k"})
    assert out.exit_code == 1
    assert f"error: syncs.yml:{first + 13}: exports[0].format: " in out.output


@pytest.mark.parametrize(("text", "expected"), [
    ("now", 1_715_000_000),
    ("-7d", 1_715_000_000 - 7 * 86400),
    ("-12h", 1_715_000_000 - 12 * 3600),
    ("-30m", 1_715_000_000 - 1800),
    ("-2w", 1_715_000_000 - 14 * 86400),
    ("2024-05-01", 1_714_521_600),
    ("2024-05-01T08:00:00Z", 1_714_521_600 + 8 * 3600),
    ("2024-05-01T08:00:00+02:00", 1_714_521_600 + 6 * 3600),
    ("2024-05-01 08:00:00", 1_714_521_600 + 8 * 3600),
])
def test_resolve_time(text: str, expected: int) -> None:
    assert resolve_time(text, datetime.fromtimestamp(1_715_000_000, UTC)) == expected
