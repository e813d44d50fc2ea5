"""Column names, one stable schema across driver batches, and JSON-column decoding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa
import pytest

from reverse_etl.errors import SourceError
from reverse_etl.warehouses.normalize import normalize_column_name, one_line, stable_reader
from reverse_etl.warehouses.variant import JsonDecoder, Kind


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CUSTOMER_ID", "customer_id"),
        ("LTV_2024", "ltv_2024"),
        ("_ROW$", "_row$"),
        ("customer_id", "customer_id"),
        ("CustomerId", "CustomerId"),  # only a quoted identifier keeps mixed case
        ("FIRST NAME", "FIRST NAME"),  # a space: it was quoted
        ("1ST", "1ST"),
    ],
)
def test_only_unquoted_upper_case_names_are_lowered(name: str, expected: str) -> None:
    assert normalize_column_name(name) == expected


def test_one_line_masks_secrets() -> None:
    assert one_line("login failed\n  for pw hunter2", secrets=["hunter2", None]) == (
        "login failed for pw ***"
    )


def _batches(*columns: pa.Array) -> Iterator[pa.RecordBatch]:
    for column in columns:
        yield pa.RecordBatch.from_arrays([column], names=["X"])


def test_integer_widths_are_widened_and_batches_sliced() -> None:
    reader = stable_reader(
        _batches(pa.array([1, 2, 3], pa.int8()), pa.array([300] * 5, pa.int16())),
        names=["x"], batch_size=2,
    )
    assert reader.schema == pa.schema([("x", pa.int64())])
    assert [b.num_rows for b in reader] == [2, 1, 2, 2, 1]


def test_a_later_batch_that_does_not_fit_is_a_source_error() -> None:
    reader = stable_reader(
        _batches(pa.array([1]), pa.array(["a"]), pa.array([2]), pa.array([3]), pa.array(["b"])),
        names=["x"], batch_size=10, lookahead=1,
    )
    with pytest.raises(SourceError, match="column 'x' holds string values"):
        reader.read_all()


def _decode(*chunks: Sequence[str | None], default: Kind = "scalar") -> pa.Table:
    decoder = JsonDecoder({0: default}, {0: "v"})
    batches = (pa.RecordBatch.from_arrays([pa.array(c, pa.string())], names=["V"]) for c in chunks)
    try:
        return stable_reader(batches, names=["v"], batch_size=100, decoder=decoder).read_all()
    finally:
        decoder.close()


def test_arrays_of_scalars_become_lists() -> None:
    assert _decode(['["a", "b"]', "[]", None]).to_pylist() == [
        {"v": ["a", "b"]}, {"v": []}, {"v": None},
    ]
    table = _decode(["[1, 2]", "[2.5]"])  # integers and fractions: doubles
    assert table.schema.field("v").type == pa.list_(pa.float64())
    assert table.column("v").to_pylist() == [[1.0, 2.0], [2.5]]


def test_variant_scalars_lose_their_json_quotes_and_json_null_is_null() -> None:
    assert _decode(['"abc"', "null", None]).column("v").to_pylist() == ["abc", None, None]


def test_objects_and_arrays_of_objects_stay_json_text() -> None:
    values = ['{\n  "k": 1\n}', '[{"a": 1}]', "null"]
    assert _decode(values).column("v").to_pylist() == ['{\n  "k": 1\n}', '[{"a": 1}]', None]


def test_a_shape_change_after_the_first_batches_is_refused_not_rounded() -> None:
    with pytest.raises(SourceError, match=r"'v' held arrays of integers .* arrays of numbers later"):
        _decode(["[1, 2]"], ["[1.5]"])
    with pytest.raises(SourceError, match="held strings in the first rows and integers later"):
        _decode(['"a"'], ["5"])
    # integers after doubles fit
    assert _decode(["[2.5]"], ["[1]"]).column("v").to_pylist() == [[2.5], [1.0]]


def test_a_column_of_nulls_takes_its_snowflake_type_default() -> None:
    array_column = _decode([None, None], ['["x"]'], default="list")
    assert array_column.schema.field("v").type == pa.list_(pa.string())
    assert array_column.column("v").to_pylist() == [None, None, ["x"]]
    assert _decode([None], default="scalar").schema.field("v").type == pa.string()


def test_unconstrained_numeric_keeps_later_batches_exact() -> None:
    from decimal import Decimal

    # psycopg gives each batch of an unconstrained NUMERIC the scale of its own values.
    reader = stable_reader(
        _batches(pa.array([Decimal("10"), Decimal("20.5")]), pa.array([Decimal("1.25")]),
                 pa.array([Decimal("0.000000001")])),
        names=["ltv"], batch_size=10, lookahead=1,
    )
    values = reader.read_all().column("ltv").to_pylist()
    assert values == [Decimal("10"), Decimal("20.5"), Decimal("1.25"), Decimal("0.000000001")]
