"""How snapshots store a row's digest: 128 bits as DuckDB's ``UUID``, not 32-char hex text.

A row digest is the md5 of the row's tracked raw values (``diff.compare.row_digest_sql``).
Snapshots written by earlier versions (up to December 2026) held it as hex text; now
it is DuckDB's ``md5_number`` of the same string, cast to ``UUID``: the same 128 bits
in 16 fixed bytes instead of a 32-byte string (plus its 16-byte header). That halves
what the diff's (key, digest) anti join and ``cur_raw`` hold per row, which at 10M rows
is the difference between fitting the memory budget and spilling. ``UUID``, not
``UHUGEINT``: Parquet has no 128-bit integer and DuckDB writes (U)HUGEINT there as
DOUBLE, 53 bits of the 128; a ``UUID`` is a 16-byte fixed-length Parquet column and
reads back bit for bit.

``md5_number`` reads the md5's bytes little-endian, so the hex text of an older
snapshot, byte-reversed, converts to exactly the digest the engine computes now
(:func:`from_hex_sql`): upgrading resends nothing. Warehouses that digest rows
themselves (``engine: warehouse``) keep hex text in their own snapshot table; the
local state converts at that boundary both ways.

Two values mark rows that must be diffed again; an md5 is one of them with
probability 2**-127, the same odds as two different rows sharing a digest.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

DIGEST_TYPE = "UUID"
"""The SQL type of every ``digest`` column of the engine's tables and snapshot files."""

RESEND_DIGEST = "CAST('00000000-0000-0000-0000-000000000000' AS UUID)"
"""SQL for the digest of a snapshot row kept only as knowledge for a full resend."""

DRIFT_DIGEST = "CAST('00000000-0000-0000-0000-000000000001' AS UUID)"
"""SQL for the digest of a row an audit observed to differ in Insider (repair resends it)."""

NULL_DIGEST = "CAST(NULL AS UUID)"
"""SQL for "no digest": the key is diffed again on the next run."""

_LEGACY_MARKS = {"full-resend": RESEND_DIGEST, "audit-drift": DRIFT_DIGEST}
"""Text sentinels of those earlier snapshots, and what they became."""


def _casts_uhugeint_to_uuid(version: str) -> bool:
    """DuckDB 2.0 casts ``UHUGEINT`` to ``UUID``; 1.x has no such cast."""
    major = version.split(".", 1)[0]
    return major.isdigit() and int(major) >= 2


_CASTS_UHUGEINT_TO_UUID = _casts_uhugeint_to_uuid(duckdb.__version__)


def md5_digest_sql(text: str) -> str:
    """SQL for the stored digest of the string ``text``: its md5, read little-endian, as a ``UUID``.

    On DuckDB 1.x (no ``UHUGEINT`` to ``UUID`` cast) the same 16 bytes are spelled out
    from the md5's hex text, slower but bit for bit the same digest, so snapshots
    move between DuckDB versions unchanged.
    """
    if _CASTS_UHUGEINT_TO_UUID:
        return f"CAST(md5_number({text}) AS UUID)"
    return f"CAST({_byte_reversed(f'md5({text})')} AS UUID)"


def from_hex_sql(expr: str) -> str:
    """SQL turning an md5's hex text (``expr``) into the stored digest; NULL stays NULL.

    The hex is read byte-reversed (``md5_number`` is little-endian). Text that is
    neither hex of 32 digits nor an old sentinel becomes NULL: that key is diffed
    again, never taken as unchanged.
    """
    marks = " ".join(f"WHEN {expr} = '{text}' THEN {sql}" for text, sql in _LEGACY_MARKS.items())
    return (f"(CASE {marks} WHEN length({expr}) = 32 THEN TRY_CAST({_byte_reversed(expr)} AS UUID) END)")


def to_hex_sql(expr: str) -> str:
    """SQL for a stored digest as an md5's lower-case hex text (what a warehouse computes)."""
    return _byte_reversed(f"replace(CAST({expr} AS VARCHAR), '-', '')")


def _byte_reversed(hex_text: str) -> str:
    # Each pair of hex digits is a byte; ``hex_text`` is written once (it may be costly).
    return f"array_to_string(list_reverse(regexp_extract_all({hex_text}, '..')), '')"


def holds_hex_digests(path: str | Path) -> bool:
    """True when the Parquet file at ``path`` stores ``digest`` as text (an earlier version wrote it).

    Reads the file's footer only. A missing file, or one without a digest column,
    answers False (reading it then fails, or needs no conversion).
    """
    try:
        schema = pq.read_schema(str(path))
    except (OSError, pa.ArrowInvalid):
        return False
    index = schema.get_field_index("digest")
    if index < 0:
        return False
    kind = schema.field(index).type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))


def read_parquet_sql(path: str | Path, quoted_path: str) -> str:
    """``read_parquet(<quoted_path>)``, with a hex ``digest`` converted when the file holds one."""
    source = f"read_parquet({quoted_path})"
    if not holds_hex_digests(path):
        return source
    return f"(SELECT * REPLACE ({from_hex_sql('digest')} AS digest) FROM {source})"
