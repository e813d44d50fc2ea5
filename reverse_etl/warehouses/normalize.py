"""Shared plumbing of the warehouse sources: names, one stable Arrow schema, one-line errors.

Drivers hand results over in chunks whose Arrow types drift: Snowflake picks the
narrowest integer width per chunk, a DB-API driver infers ``null`` for a column
that happens to be empty in the first rows, and so on. A ``RecordBatchReader``
must declare one schema up front, so :func:`stable_reader` looks at the first
batch (and a few more while some column's type is still unknown), fixes the
schema, and casts every later batch to it, raising :class:`SourceError` when a
later value cannot be cast without loss.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from reverse_etl.errors import SourceError

_UNQUOTED_UPPER = re.compile(r"^[A-Z_][A-Z0-9_$]*$")
LOOKAHEAD_BATCHES = 4
"""Batches held back at most while some column's type is still unknown."""


def normalize_column_name(name: str) -> str:
    """Lower-case a name the warehouse folded to upper case (an unquoted identifier).

    ``CUSTOMER_ID`` becomes ``customer_id``; ``CustomerId`` and ``"first name"``
    (names that can only come from a quoted identifier) are kept as they are.
    """
    return name.lower() if _UNQUOTED_UPPER.match(name) else name


def result_names(names: Sequence[str], *, fold_upper: bool) -> list[str]:
    """Column names of a result, optionally case-folded; duplicates are a SourceError."""
    out = [normalize_column_name(n) if fold_upper else n for n in names]
    seen: dict[str, str] = {}
    for original, name in zip(names, out, strict=True):
        if name in seen:
            raise SourceError(
                f"the model returns two columns named {name!r} ({seen[name]!r} and "
                f"{original!r}); give one of them another alias"
            )
        seen[name] = original
    return out


def one_line(text: object, *, secrets: Iterable[str | None] = (), limit: int = 400) -> str:
    """A driver message squeezed into one line, with every secret in it masked."""
    line = " ".join(str(text).split())
    for secret in secrets:
        if secret:
            line = line.replace(secret, "***")
    return line if len(line) <= limit else line[: limit - 1] + "…"


class BatchDecoder(Protocol):
    """Turns raw driver batches into the values the engine wants (e.g. JSON text → lists).

    ``observe`` sees raw batches before the schema is fixed and answers whether
    it has learnt enough; ``finish`` is called once, then ``decode`` per batch.
    """

    def observe(self, batch: pa.RecordBatch) -> bool:
        """Learn from a raw batch; True once every decoded type is known."""
        ...

    def finish(self) -> None:
        """Fix the decoded types (defaults for columns never seen with a value)."""
        ...

    def decode(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Decode one raw batch; raises SourceError if it does not fit the fixed types."""
        ...


def stable_reader(
    batches: Iterator[pa.RecordBatch],
    *,
    names: Sequence[str],
    batch_size: int,
    decoder: BatchDecoder | None = None,
    type_hints: Mapping[int, pa.DataType] | None = None,
    lookahead: int = LOOKAHEAD_BATCHES,
) -> pa.RecordBatchReader:
    """Stream ``batches`` under one schema, with columns renamed to ``names``.

    Batches are sliced to at most ``batch_size`` rows. ``type_hints`` (column
    position → type) type columns that stay NULL in every batch looked at.
    """
    buffered: list[pa.RecordBatch] = []
    untyped: set[int] | None = None
    exhausted = True
    for raw in batches:
        buffered.append(raw)
        nulls = {i for i, f in enumerate(raw.schema) if pa.types.is_null(f.type)}
        untyped = nulls if untyped is None else untyped & nulls
        settled = decoder.observe(raw) if decoder is not None else True
        if (settled and not untyped) or len(buffered) >= lookahead:
            exhausted = False
            break
    if decoder is not None:
        decoder.finish()
    decoded = [decoder.decode(b) for b in buffered] if decoder is not None else buffered
    if decoded:
        schema = _unify([b.schema for b in decoded], names, type_hints or {}, exhausted)
    else:  # the sources send an empty batch for an empty result; this is a fallback
        schema = pa.schema([(n, pa.null()) for n in names])

    def stream() -> Iterator[pa.RecordBatch]:
        for batch in decoded:
            yield from _slices(_conform(batch, schema), batch_size)
        decoded.clear()  # let the lookahead batches go once they are sent
        if exhausted:
            return
        for raw in batches:
            batch = decoder.decode(raw) if decoder is not None else raw
            yield from _slices(_conform(batch, schema), batch_size)

    return pa.RecordBatchReader.from_batches(schema, stream())


def _unify(
    schemas: list[pa.Schema],
    names: Sequence[str],
    hints: Mapping[int, pa.DataType],
    exhausted: bool,
) -> pa.Schema:
    try:
        merged = pa.unify_schemas(
            [_rename(s, names) for s in schemas], promote_options="permissive"
        )
    except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        raise SourceError(
            f"the model's columns change type between the first batches ({one_line(exc)}); "
            "CAST the column in the model"
        ) from None
    fields = []
    for i, f in enumerate(merged):
        if pa.types.is_null(f.type) and (i in hints or not exhausted):
            # Still NULL after the lookahead: take the driver's type hint, else text,
            # which every later value can be cast to.
            f = f.with_type(hints.get(i, pa.string()))
        fields.append(f)
    return _widen(pa.schema(fields))


def _rename(schema: pa.Schema, names: Sequence[str]) -> pa.Schema:
    return pa.schema([f.with_name(n) for f, n in zip(schema, names, strict=True)])


def _widen(schema: pa.Schema) -> pa.Schema:
    """Widest type of a family, so a later batch with larger values still fits."""
    return pa.schema([f.with_type(_wide_type(f.type)) for f in schema])


def _wide_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_integer(t) and t != pa.uint64():
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_decimal(t) and t.precision <= 38 and t.scale <= 38:
        # Drivers of unconstrained NUMERIC (psycopg) give each batch the scale of its
        # own values; at least 9 decimal places keeps later batches' values exact.
        return pa.decimal128(38, max(t.scale, 9))
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_wide_type(t.value_type))
    return t


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    columns = []
    for column, field in zip(batch.columns, schema, strict=True):
        if column.type == field.type:
            columns.append(column)
            continue
        try:
            columns.append(pc.cast(column, field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise SourceError(
                f"column {field.name!r} holds {column.type} values after the first rows, which "
                f"do not fit its type {field.type}; CAST the column in the model"
            ) from None
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _slices(batch: pa.RecordBatch, size: int) -> Iterator[pa.RecordBatch]:
    if batch.num_rows <= size:
        if batch.num_rows:
            yield batch
        return
    for offset in range(0, batch.num_rows, size):
        yield batch.slice(offset, size)  # zero-copy
