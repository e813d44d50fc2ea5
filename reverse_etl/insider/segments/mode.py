"""``mode: first_party_segment``: the model's member values, uploaded as one segment.

A run: the model's one column is encoded and validated like an identifier
(``segment.attribute`` em/pn/uuid) or like that attribute (any other name:
Insider segments by "either an identifier or any attribute"; ``cur``; invalid
values are counted and left out) → the member set's digest is
compared with the last upload's → if it changed, the values become headerless
one-column CSV files (split at ``max_file_bytes``, or refused) → each is served
(local server or presigned S3 URL) and registered with ``POST /fps/v1/upload``
→ the run waits up to ``wait_seconds`` for Insider's callback and records its
valid / invalid counts in the run ledger.

Segment names are unique in an Insider account and the emulator refuses a
second upload of a name, so the first upload uses ``segment.name`` and each
later one (membership changed) ``<name>_v2``, ``_v3``...; split files append
``_1``, ``_2``. The version counter lives in ``<state>/<sync>/segment.json``.

A callback that does not arrive in time leaves the upload *pending*. The local
receiver dies with the run, so a later run cannot collect it: it records the
pending upload as ``unknown`` (sent, counts never seen) and does not upload the
same members again. In production set ``segment.callback_url`` to an endpoint
of yours: the run then does not wait and the counts arrive there.
"""

from __future__ import annotations

from typing import Any

import duckdb

from reverse_etl.diff.fields import Field
from reverse_etl.diff.sqltext import first_row, scalar
from reverse_etl.errors import DeliveryError
from reverse_etl.insider.audience_config import SEGMENT_NAME_MAX, SegmentConfig
from reverse_etl.insider.config import SyncConfig
from reverse_etl.insider.fields import identifier_fields
from reverse_etl.insider.modes.base import Mode
from reverse_etl.insider.rules import DEFAULT_ATTRIBUTES
from reverse_etl.insider.segments.server import SegmentServer
from reverse_etl.insider.segments.upload import presigned_s3_url, upload_segment
from reverse_etl.project.model_sql import ResolvedModel
from reverse_etl.run.destination import ModelResolver, SyncRecords
from reverse_etl.run.results import SyncResult

STATE_FILE = "segment.json"
COUNT_KEYS = ("valid_values_count", "invalid_values_count", "total_entered_values")


class FirstPartySegment(Mode):
    """``mode: first_party_segment``."""

    custom_delivery = True

    def __init__(self, sync: SyncConfig) -> None:
        super().__init__(sync)
        assert sync.segment is not None
        self.segment: SegmentConfig = sync.segment
        if self.segment.identifier is None:
            # An attribute segment: the column is validated as that attribute (its type and
            # format rules), so a value Insider would count invalid is refused locally.
            attribute = self.segment.attribute
            column = self.segment.column or attribute
            fields = [Field("attributes", attribute, attribute not in DEFAULT_ATTRIBUTES, column)]
        else:
            fields, _ = identifier_fields(sync)
        self.fields = fields
        self.tracked = fields  # never committed: the member set's digest lives in segment.json
        self.key_field = fields[0]

    def prepare_model(self, model: ResolvedModel, resolve: ModelResolver) -> ResolvedModel:
        """The model's distinct values: a value listed twice is one member, not a duplicate key."""
        return ResolvedModel(name=model.name, sql=f"SELECT DISTINCT * FROM ({model.sql}) m", origin=model.origin)

    def build_changes(self, con: duckdb.DuckDBPyConnection) -> None:
        """No row operations: the whole member set is one upload."""
        con.execute("CREATE OR REPLACE TABLE changes AS SELECT NULL::BIGINT AS row_id, NULL::VARCHAR AS key, "
                    "NULL::VARCHAR AS change, NULL::VARCHAR AS op, NULL::VARCHAR AS payload WHERE FALSE")

    # ------------------------------------------------------------ delivery
    def deliver_custom(self, con: duckdb.DuckDBPyConnection, records: SyncRecords,
                       result: SyncResult) -> None:
        """Upload the members if they changed since the last upload; record Insider's counts."""
        record: dict[str, Any] = records.read_record(STATE_FILE)
        if record.get("pending"):
            # Its receiver ended with its run: the counts can no longer arrive here.
            record["last"] = {**record.pop("pending"), "status": "unknown"}
        row = first_row(con, "SELECT count(*), md5(coalesce(string_agg(key, chr(10) ORDER BY key), '')) "
                             "FROM cur WHERE reason IS NULL")
        members, digest = (int(row[0]), str(row[1])) if row else (0, "")
        result.counts["members"] = members
        last = record.get("last") or {}
        if last.get("digest") == digest:
            result.outcome = "success"
            result.message = f"segment {last.get('names')} unchanged since run {last.get('run_id')}; nothing uploaded"
            records.write_record(STATE_FILE, record)
            return
        version = int(record.get("version", 0)) + 1
        name = self.segment.name if version == 1 else f"{self.segment.name}_v{version}"
        parts = self._files(con, name)
        too_long = [n for n, _ in parts if len(n) > SEGMENT_NAME_MAX]
        if too_long:
            raise DeliveryError(f"segment name {too_long[0]!r} would exceed {SEGMENT_NAME_MAX} characters "
                                "(versions add _vN, split files _N); shorten segment.name")
        uploaded = {"digest": digest, "names": [n for n, _ in parts], "run_id": result.run_id,
                    "members": members, "version": version}
        # Taken before the first request: a name Insider may have accepted is never reused.
        record["version"] = version
        records.write_record(STATE_FILE, record)
        assert self.destination is not None, "mode_for sets the destination"
        callbacks = self._upload(self.destination, parts, result)
        if callbacks is None:
            record["last"] = {**uploaded, "status": "sent"}
            result.message = f"uploaded {len(parts)} file(s); Insider reports to {self.segment.callback_url}"
        elif len(callbacks) == len(parts):
            totals = {k: sum(int(c.get(k, 0)) for c in callbacks.values()) for k in COUNT_KEYS}
            record["last"] = {**uploaded, "status": "processed", **totals}
            result.counts.update(totals)
        else:
            record["pending"] = uploaded
            result.message = (f"segment {uploaded['names']} uploaded; Insider's callback did not arrive within "
                              f"{self.segment.wait_seconds:g}s: recorded as pending (counts unknown)")
        result.counts["segment_uploads"] = len(parts)
        result.requests = len(parts)
        result.outcome = "success"
        records.write_record(STATE_FILE, record)

    def _files(self, con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, bytes]]:
        """(segment name, CSV bytes) per file; split at ``max_file_bytes`` or refused above it."""
        budget = self.segment.max_file_bytes
        # Bytes per value: its text plus the newline. A part holds the values whose
        # running end falls in one window of (budget - longest + 1) bytes, so no part
        # exceeds the budget even when a value straddles a window's edge.
        longest = scalar(con, "SELECT coalesce(max(octet_length(encode(key)) + 1), 1) FROM cur WHERE reason IS NULL")
        if longest > budget:
            raise DeliveryError(f"segment {name!r}: a value of {longest} bytes exceeds segment.max_file_bytes")
        window = budget - longest + 1
        con.execute(f"""
            CREATE OR REPLACE TABLE segment_parts AS
            WITH v AS (SELECT key, sum(octet_length(encode(key)) + 1) OVER (ORDER BY key) AS upto
                       FROM cur WHERE reason IS NULL)
            SELECT ((upto - 1) // {int(window)})::BIGINT AS part,
                   string_agg(key, chr(10) ORDER BY key) || chr(10) AS body
            FROM v GROUP BY part ORDER BY part
        """)
        rows = con.execute("SELECT part, body FROM segment_parts ORDER BY part").fetchall()
        if len(rows) > 1 and self.segment.on_oversize == "refuse":
            raise DeliveryError(f"segment {name!r}: the member file would exceed {budget} bytes; set "
                                "segment.on_oversize: split or raise segment.max_file_bytes")
        if len(rows) <= 1:
            return [(name, rows[0][1].encode() if rows else b"")]
        return [(f"{name}_{i + 1}", body.encode()) for i, (_, body) in enumerate(rows)]

    def _upload(self, destination: Any, parts: list[tuple[str, bytes]],
                result: Any) -> dict[str, dict[str, Any]] | None:
        """Upload every part; the callbacks that arrived in time, or None when not awaited."""
        seg = self.segment
        server = None
        if seg.storage == "local" or seg.callback_url is None:
            server = SegmentServer(seg.host, seg.port, seg.public_url)
        try:
            for name, data in parts:
                file_name = f"{name}.csv"
                if seg.storage == "s3":
                    assert seg.s3_bucket is not None
                    key = f"{seg.s3_prefix.strip('/')}/{self.sync.name}/{result.run_id}/{file_name}"
                    file_url = presigned_s3_url(seg.s3_bucket, key, data, seg.url_expiry_seconds)
                else:
                    assert server is not None
                    server.files[file_name] = data
                    file_url = server.file_url(file_name)
                callback = seg.callback_url or (server.callback_url if server else "")
                upload_segment(destination, {"segmentName": name,
                                             "attributeName": seg.attribute_name or seg.attribute,
                                             "fileUrl": file_url, "callbackUrl": callback})
            if seg.callback_url is not None or server is None:
                return None
            # Local files must stay downloadable until Insider has processed them:
            # the server keeps serving until the callbacks arrive or the wait ends.
            return server.wait_for({n for n, _ in parts}, seg.wait_seconds)
        finally:
            if server is not None:
                server.close()

