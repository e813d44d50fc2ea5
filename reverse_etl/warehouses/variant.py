"""Decode semi-structured columns (Snowflake VARIANT, OBJECT, ARRAY) that arrive as JSON text.

Decoding runs in DuckDB on whole columns (``json_group_structure`` to learn the
shape, ``json_transform_strict`` to convert), never value by value in Python:

- arrays of strings / numbers / booleans → Arrow ``list<string|int64|double|bool>``
- scalars in a VARIANT (``"abc"``, ``5``) → ``string`` / ``int64`` / ``double`` / ``bool``
- objects, arrays of objects, nested or mixed arrays → the JSON text, as the
  warehouse sent it (Insider accepts no objects; the engine rejects those rows)

The shape of a column is learnt from the first batches and then fixed, because a
stream has one schema. A later batch whose values have another shape (strings
after numbers, objects after arrays) is a SourceError telling the user to cast
the column in the model; it is never silently converted or rounded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from reverse_etl.errors import SourceError
from reverse_etl.warehouses.normalize import one_line

Kind = Literal["text", "scalar", "list"]

# DuckDB's inferred JSON types → the type a column is decoded to.
_SCALARS = {
    "VARCHAR": "VARCHAR",
    "BOOLEAN": "BOOLEAN",
    "DOUBLE": "DOUBLE",
    "UBIGINT": "BIGINT",
    "BIGINT": "BIGINT",
    "HUGEINT": "BIGINT",  # what DuckDB infers for integers of both signs
}
_ARROW = {"VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "DOUBLE": pa.float64(), "BIGINT": pa.int64()}


@dataclass(frozen=True)
class Shape:
    """What a JSON column holds: raw text, one scalar type, or a list of one scalar type."""

    kind: Kind
    type: str | None = None  # DuckDB type name of the scalar / list element

    @property
    def structure(self) -> str:
        """The ``json_transform`` structure that decodes this shape."""
        return json.dumps([self.type] if self.kind == "list" else self.type)

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type of the decoded column."""
        if self.kind == "text" or self.type is None:
            return pa.string()
        scalar = _ARROW[self.type]
        return pa.list_(scalar) if self.kind == "list" else scalar

    def describe(self) -> str:
        """Human words for error messages."""
        if self.kind == "text":
            return "JSON objects or mixed values"
        word = {"VARCHAR": "strings", "BOOLEAN": "booleans", "DOUBLE": "numbers", "BIGINT": "integers"}
        what = word.get(self.type or "", "values")
        return f"arrays of {what}" if self.kind == "list" else what


TEXT = Shape("text")
EMPTY_LIST = Shape("list", None)  # only empty arrays seen: element type still unknown


def shape_of(structure: str | None) -> Shape | None:
    """The shape of DuckDB's ``json_group_structure``; None when only NULLs were seen."""
    if structure is None:
        return None
    parsed: Any = json.loads(structure)
    if parsed == "NULL":
        return None
    if isinstance(parsed, str):
        return Shape("scalar", _SCALARS[parsed]) if parsed in _SCALARS else TEXT
    if isinstance(parsed, list) and len(parsed) == 1 and isinstance(parsed[0], str):
        if parsed[0] == "NULL":
            return EMPTY_LIST
        return Shape("list", _SCALARS[parsed[0]]) if parsed[0] in _SCALARS else TEXT
    return TEXT  # objects, arrays of objects, nested arrays


def merge(a: Shape | None, b: Shape | None) -> Shape | None:
    """The shape that holds both (used while the schema is still open)."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if a.kind == b.kind == "list" and (a.type is None or b.type is None):
        return a if b.type is None else b
    if a.kind == b.kind and {a.type, b.type} == {"BIGINT", "DOUBLE"}:
        return Shape(a.kind, "DOUBLE")
    return TEXT


def fits(target: Shape, seen: Shape | None) -> bool:
    """Whether values of shape ``seen`` decode into ``target`` without loss."""
    if seen is None or target.kind == "text" or seen == target:
        return True
    if target.kind == "list" and seen == EMPTY_LIST:
        return True
    return target.kind == seen.kind and target.type == "DOUBLE" and seen.type == "BIGINT"


class JsonDecoder:
    """A :class:`~reverse_etl.warehouses.normalize.BatchDecoder` for JSON-text columns.

    ``columns`` maps a column position to the default shape used when the column
    holds nothing but NULLs in the batches looked at: ``"list"`` for a Snowflake
    ARRAY, ``"scalar"`` for a VARIANT, ``"text"`` for an OBJECT (which is never
    decoded at all).
    """

    def __init__(self, columns: Mapping[int, Kind], names: Mapping[int, str]) -> None:
        self._defaults = {i: d for i, d in columns.items() if d != "text"}
        self._names = names
        self._seen: dict[int, Shape | None] = dict.fromkeys(self._defaults)
        self._shapes: dict[int, Shape] = {}
        self._con = duckdb.connect()

    def observe(self, batch: pa.RecordBatch) -> bool:
        """Merge the shapes of this batch into what is known; True once all are known."""
        for i, shape in self._batch_shapes(batch).items():
            self._seen[i] = merge(self._seen[i], shape)
        return all(s is not None and s != EMPTY_LIST for s in self._seen.values())

    def finish(self) -> None:
        """Fix every column's shape; unknown ones take their default."""
        for i, seen in self._seen.items():
            if seen is None or seen == EMPTY_LIST:
                seen = Shape(self._defaults[i], "VARCHAR")
            self._shapes[i] = seen

    def decode(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Decode this batch's JSON columns into their fixed shapes."""
        if not self._shapes or batch.num_rows == 0:
            return self._retype_empty(batch) if batch.num_rows == 0 else batch
        seen = self._batch_shapes(batch)
        for i, target in self._shapes.items():
            shape = seen[i]
            if shape is not None and not fits(target, shape):
                got = shape.describe()
                raise SourceError(
                    f"column {self._names[i]!r} held {target.describe()} in the first rows and "
                    f"{got} later; cast it in the model (e.g. TO_JSON(col) to keep JSON text)"
                )
        columns = list(batch.columns)
        to_transform = {i: s for i, s in self._shapes.items() if s.kind != "text"}
        if to_transform:
            selects = ", ".join(
                f"json_transform_strict(c{i}, '{s.structure}') AS c{i}" for i, s in to_transform.items()
            )
            table = self._run(f"SELECT {selects} FROM batch", batch, to_transform)
            for i, s in to_transform.items():
                columns[i] = pc.cast(table.column(f"c{i}").combine_chunks(), s.arrow_type)
        for i, s in self._shapes.items():
            if s.kind == "text":
                # JSON null is a missing value, not the text "null".
                columns[i] = pc.if_else(pc.equal(columns[i], "null"), None, columns[i])
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)

    def close(self) -> None:
        """Close the in-memory DuckDB used for decoding."""
        self._con.close()

    def _retype_empty(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = list(batch.columns)
        for i, s in self._shapes.items():
            columns[i] = pa.array([], s.arrow_type)
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)

    def _batch_shapes(self, batch: pa.RecordBatch) -> dict[int, Shape | None]:
        if not self._seen or batch.num_rows == 0:
            return dict.fromkeys(self._seen)
        selects = ", ".join(f"json_group_structure(c{i}::JSON) AS c{i}" for i in self._seen)
        row = self._run(f"SELECT {selects} FROM batch", batch, self._seen).to_pylist()[0]
        return {i: shape_of(row[f"c{i}"]) for i in self._seen}

    def _run(self, sql: str, batch: pa.RecordBatch, positions: Mapping[int, Any]) -> pa.Table:
        # Positional aliases (c0, c1, ...) keep any column name safe inside SQL.
        table = pa.table({f"c{i}": batch.column(i) for i in positions})
        try:
            self._con.register("batch", table)
            relation = self._con.sql(sql)
            to_arrow = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
            return to_arrow()
        except duckdb.Error as exc:
            raise SourceError(f"cannot decode a JSON column of the result: {one_line(exc)}") from None
        finally:
            self._con.unregister("batch")
